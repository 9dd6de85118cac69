"""Sequence classification as a stream: labelled sequences fed one step at a time.

The stream protocol for the loaders of ``cifar.py``, ``imdb.py`` and ``lra_listops.py``
(and for the generated ListOps and sequential digits).  Each stream reads whole
sequences of a fixed length ``T`` one after another, each drawn uniformly from the data
set; ``reset`` is set at every sequence's first step.  The target at every step is a
:class:`SequenceTarget` (a ``ClassTarget`` plus a last-step flag): the sequence's label, with loss weight 1 at
every step (the online-LRU paper's pooled, every-step loss; ``every_step=False``
scores the last step only).  The reported ``accuracy`` is read at the last step.

Sequences are stored as token ids (one-hot encoded step by step, so a byte-level
IMDB review costs one ``int32`` per step, not a 257-vector) or as real-valued inputs.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .base import AbstractTask, Sample
from .digits import class_loss


class SequenceTarget(NamedTuple):
    """A :class:`~rtrlax.tasks.digits.ClassTarget` (``label``, ``weight``) that also marks
    the sequence's last step (where accuracy is read)."""

    label: Int[Array, ""]
    weight: Float[Array, ""]
    last: Array


class SequenceState(NamedTuple):
    key: PRNGKeyArray
    index: Int[Array, ""]  #: which sequence this stream is reading
    t: Int[Array, ""]  #: the next step of it


class SequenceClassification(AbstractTask):
    """Labelled sequences streamed one step at a time (see the module docstring).

    Args:
        sequences: ``[n, T]`` integer token ids (with ``vocab_size``) or ``[n, T, d]``
            real-valued inputs.
        labels: ``[n]`` class ids in ``[0, n_classes)``.
        n_classes: number of classes (default ``max(labels) + 1``).
        vocab_size: for token ids: the one-hot size (every id must be below it).
        every_step: score every step (default) or only the last.
    """

    uses_feedback: ClassVar[bool] = False

    sequences: Array
    labels: Int[Array, " n"]
    n_classes: int = eqx.field(static=True)
    vocab_size: int | None = eqx.field(static=True)
    every_step: bool = eqx.field(static=True)

    def __init__(self, sequences, labels, *, n_classes: int | None = None, vocab_size: int | None = None,
                 every_step: bool = True):  # fmt: skip
        sequences, labels = np.asarray(sequences), np.asarray(labels)
        tokens = np.issubdtype(sequences.dtype, np.integer)
        if tokens and (vocab_size is None or sequences.ndim != 2):
            raise ValueError(
                "integer sequences are token ids: pass them as [n, T] with vocab_size=<one-hot size>; "
                f"got shape {sequences.shape}, vocab_size={vocab_size}."
            )
        if not tokens and sequences.ndim != 3:
            raise ValueError(f"real-valued sequences must have shape [n, T, input_size], got {sequences.shape}.")
        if labels.shape != sequences.shape[:1] or len(labels) == 0:
            raise ValueError(f"labels must have shape [n={sequences.shape[0]}] (one per sequence, n ≥ 1), got {labels.shape}.")
        n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"labels must lie in [0, n_classes={n_classes}), got {labels.min()}..{labels.max()}.")
        if tokens and (sequences.min() < 0 or sequences.max() >= vocab_size):
            raise ValueError(f"token ids must lie in [0, vocab_size={vocab_size}), got {sequences.min()}..{sequences.max()}.")
        self.sequences = jnp.asarray(sequences.astype(np.int32) if tokens else sequences)
        self.labels = jnp.asarray(labels.astype(np.int32))
        self.n_classes, self.vocab_size = n_classes, (vocab_size if tokens else None)
        self.every_step = bool(every_step)

    @property
    def sequence_length(self) -> int:
        return self.sequences.shape[1]

    @property
    def input_size(self) -> int:
        return self.vocab_size if self.vocab_size is not None else self.sequences.shape[2]

    @property
    def output_size(self) -> int:
        return self.n_classes

    def inputs(self, index) -> Float[Array, "T input"]:
        """The inputs of sequence ``index``, ``[T, input_size]`` (one-hot for token ids)."""
        s = self.sequences[index]
        return jax.nn.one_hot(s, self.vocab_size, dtype=jnp.result_type(float)) if self.vocab_size else s

    def init(self, key: PRNGKeyArray) -> SequenceState:
        key, sub = jax.random.split(key)
        return SequenceState(key, jax.random.randint(sub, (), 0, self.labels.shape[0]), jnp.zeros((), jnp.int32))

    def sample(self, state: SequenceState) -> tuple[SequenceState, Sample]:
        idx, t = state.index, state.t
        x = self.sequences[idx, t]
        if self.vocab_size is not None:
            x = jax.nn.one_hot(x, self.vocab_size, dtype=jnp.result_type(float))
        last = t == self.sequence_length - 1
        weight = jnp.where(last | self.every_step, 1.0, 0.0).astype(jnp.result_type(float))
        target = SequenceTarget(self.labels[idx], weight, last)
        key, sub = jax.random.split(state.key)
        nxt = jnp.where(last, jax.random.randint(sub, (), 0, self.labels.shape[0]), idx)
        new = SequenceState(key, nxt, jnp.where(last, 0, t + 1).astype(jnp.int32))
        return new, Sample(x, target, t == 0)

    def loss(self, y: Array, target: SequenceTarget) -> Array:
        return class_loss(y, target)

    def metrics(self, y: Array, target: SequenceTarget) -> dict[str, tuple[Array, Array]]:
        last = target.last.astype(y.dtype)
        correct = (jnp.argmax(y) == target.label).astype(y.dtype)
        return {"accuracy": (correct * last, last), "loss": (self.loss(y, target), jnp.ones((), y.dtype))}

    def feedback(self, task_states, losses):
        return task_states
