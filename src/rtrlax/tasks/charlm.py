"""Character-level language modelling on any local text file, streamed online.

The text is split into a training part (the first ``train_fraction``, 90 % by
default) and a held-out part (the rest).  Tokens are either raw bytes (vocabulary
256) or the characters that occur in the training part (plus one ``<unk>`` token when
the held-out part has characters the training part lacks).

Each stream reads the training text in order from a random offset, one character per
step, wrapping around at the end (``reset`` is set when it wraps): the input is the
one-hot current character and the target the next one.  The loss is the
cross-entropy in *bits*, so the mean loss is bits per character (bpc).
:func:`evaluate_bpc` measures bpc on the held-out part with the parameters fixed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from .base import AbstractTask, Sample

LN2 = math.log(2.0)


class CharState(NamedTuple):
    key: PRNGKeyArray
    position: Int[Array, ""]  #: index (in the training tokens) of the current input character


class CharLM(AbstractTask):
    """Next-character prediction on a text; loss in bits per character.

    Args:
        text: the whole text (``str`` or ``bytes``).
        byte_level: tokens are raw bytes (vocabulary 256) instead of characters.
        train_fraction: the leading share of the text used for training (0.9).
    """

    uses_feedback: ClassVar[bool] = False  #: feedback is the identity

    tokens: Int[Array, " n"]  #: the whole text as token ids (training part first)
    n_train: int = eqx.field(static=True)
    vocabulary: tuple = eqx.field(static=True)  #: token id -> character (or byte value)
    unknown: int | None = eqx.field(static=True)  #: id of <unk>, if any

    def __init__(self, text: str | bytes, *, byte_level: bool = False, train_fraction: float = 0.9):
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}.")
        if byte_level:
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            ids = np.frombuffer(data, np.uint8).astype(np.int32)
            vocabulary, unknown = tuple(range(256)), None
        else:
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            n_train = int(len(text) * train_fraction)
            chars = sorted(set(text[:n_train]))
            index = {c: i for i, c in enumerate(chars)}
            unknown = len(chars) if any(c not in index for c in set(text[n_train:])) else None
            vocabulary = tuple(chars) + (("<unk>",) if unknown is not None else ())
            ids = np.fromiter((index.get(c, unknown if unknown is not None else 0) for c in text), np.int32, len(text))
        n_train = int(len(ids) * train_fraction)
        if n_train < 2 or len(ids) - n_train < 2:
            raise ValueError(
                f"the text is too short ({len(ids)} tokens) to split into training and held-out "
                f"parts of at least 2 tokens each with train_fraction={train_fraction}."
            )
        self.tokens = jnp.asarray(ids)
        self.n_train = n_train
        self.vocabulary = vocabulary
        self.unknown = unknown

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "CharLM":
        """Read a local text file (UTF-8, or any bytes with ``byte_level=True``)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no text file at {path}; pass the path of a local UTF-8 text file.")
        data = path.read_bytes()
        return cls(data if kwargs.get("byte_level") else data.decode("utf-8", errors="replace"), **kwargs)

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    def train_tokens(self) -> Int[Array, " n_train"]:
        return self.tokens[: self.n_train]

    def test_tokens(self) -> Int[Array, " n_test"]:
        return self.tokens[self.n_train :]

    def encode(self, text: str) -> Int[Array, " n"]:
        """Token ids of ``text`` (character vocabulary; unknown characters -> <unk> or 0)."""
        index = {c: i for i, c in enumerate(self.vocabulary)}
        fallback = self.unknown if self.unknown is not None else 0
        return jnp.asarray([index.get(c, fallback) for c in text], jnp.int32)

    def init(self, key: PRNGKeyArray) -> CharState:
        key, sub = jax.random.split(key)
        position = jax.random.randint(sub, (), 0, self.n_train - 1)
        return CharState(key, position)

    def sample(self, state: CharState) -> tuple[CharState, Sample]:
        pos = state.position
        dtype = jnp.result_type(float)
        x = jax.nn.one_hot(self.tokens[pos], self.input_size, dtype=dtype)
        target = self.tokens[pos + 1]
        nxt = jnp.where(pos + 2 >= self.n_train, 0, pos + 1)  # the last pair is (n-2, n-1)
        return CharState(state.key, nxt), Sample(x, target, pos == 0)

    def loss(self, y: Array, target: Array) -> Array:
        return -jax.nn.log_softmax(y)[target] / LN2

    def metrics(self, y: Array, target: Array) -> dict[str, tuple[Array, Array]]:
        return {
            "bpc": (self.loss(y, target), jnp.ones(())),
            "accuracy": ((jnp.argmax(y) == target).astype(y.dtype), jnp.ones(())),
        }

    def feedback(self, task_states, losses):
        return task_states


def evaluate_bpc(model: eqx.Module, task: CharLM, *, max_chars: int | None = None) -> Array:
    """Bits per character of ``model`` on the held-out part (fixed parameters, one
    stream from ``model.initial_state()``; the first ``max_chars`` characters only, if given)."""
    tokens = task.test_tokens()
    if max_chars is not None:
        tokens = tokens[: max_chars + 1]
    return _evaluate(model, task, tokens)


@eqx.filter_jit
def _evaluate(model, task, tokens):
    dtype = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype

    def body(state, pair):
        x = jax.nn.one_hot(pair[0], task.input_size, dtype=dtype)
        state, y = model(state, x)
        return state, task.loss(y, pair[1])

    _, bits = jax.lax.scan(body, model.initial_state(), (tokens[:-1], tokens[1:]))
    return jnp.mean(bits)
