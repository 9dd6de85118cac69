"""Deep stacks of any recurrent cell: encoder → N × [norm → cell → GLU or MLP → residual]
→ decoder (the online LRU's network with the cell as a parameter).

.. math::

    z^0_t &= W_{enc} x_t + b_{enc}\\\\
    z^{l}_t &= z^{l-1}_t + \\mathrm{Mix}_l\\big(\\mathrm{GELU}(\\mathrm{Cell}_l(\\mathrm{LN}_l(z^{l-1}_t)))\\big)\\\\
    y_t &= W_{dec}\\, p_t + b_{dec}

``Mix`` is a GLU, ``a ⊙ σ(b)`` with ``[a; b] = W v + c`` (the online LRU paper's), or a
two-layer MLP ``W_2 GELU(W_1 v + c_1) + c_2``.  ``p_t = z^L_t``, or with ``pool=True``
the running mean ``p_t = (sg(S_{t-1}) + z^L_t) / t``, ``S_t = S_{t-1} + z^L_t``, whose
gradient reaches only the current step's features (``sg`` = stop-gradient), so a loss at
every step of a sequence-classification stream trains online without memory of past
features' Jacobians.  LayerNorm per step and per stream; no dropout.

The cells are the model's cores (``cores()``): a structured estimator keeps per-layer
traces of each cell and backpropagates spatially between layers at every step — with
``rx.SnAp(1)`` on element-wise cells (``RTU``, ``ELSTM``, ``MinGRU``, ``MinLSTM``,
``RGLRU``, ``LRU``) this is the online LRU's scheme (Zucchet et al., 2023): exact for
the last layer, spatial between layers.  ``rx.OnlineLRU()`` is its fast closed form on
LRU stacks.  Everything else (encoder, norms, GLU/MLP, decoder, an LRU's ``C``/``D``)
is glue with instantaneous gradients.

When every cell is linear in its state (``has_sequence``), :meth:`AbstractDeepRNN.sequence`
evaluates a whole sequence at once: every dense map on all steps as one matrix product,
each recurrence as a parallel scan; ``rx.BPTT()`` and :func:`rtrlax.cells.base.run_sequence`
use it (equal to stepping, float64).
"""

from __future__ import annotations

import abc
import math
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..cells.base import check_input, check_inputs, check_size, default_dtype, plain_core_call
from ..cells.elstm import ELSTM
from ..cells.gru import GRU
from ..cells.lru import LRU
from ..cells.lstm import LSTM
from ..cells.mingru import MinGRU
from ..cells.minlstm import MinLSTM
from ..cells.rglru import RGLRU
from ..cells.rtu import RTU, NonlinearRTU
from ..cells.vanilla import VanillaRNN

#: The cells a :class:`DeepRNN` builds by name: ``factory(input_size, hidden_size, *,
#: key, dtype, **cell_options)``.  ``"lru"`` is the full LRU layer (with ``C``, ``D``).
CELLS: dict[str, Callable] = {
    "lru": LRU, "rtu": RTU, "nonlinear-rtu": NonlinearRTU, "elstm": ELSTM,
    "mingru": MinGRU, "minlstm": MinLSTM, "rglru": RGLRU, "gru": GRU, "lstm": LSTM,
    "vanilla": VanillaRNN,
}  # fmt: skip

MIXERS = ("glu", "mlp")


class DeepState(NamedTuple):
    layers: tuple  #: one cell state per layer
    pool: tuple | None  #: (count, running sum of the last features) when pooling


def glu(linear: eqx.nn.Linear, v: Array) -> Array:
    a, b = jnp.split(linear(v), 2)
    return a * jax.nn.sigmoid(b)


class MLP(eqx.Module):
    """``W_2 GELU(W_1 v + c_1) + c_2`` (final)."""

    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, in_size: int, out_size: int, width: int, *, key, dtype):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(in_size, width, key=k1, dtype=dtype)
        self.out = eqx.nn.Linear(width, out_size, key=k2, dtype=dtype)

    def __call__(self, v: Array) -> Array:
        return self.out(jax.nn.gelu(self.hidden(v)))


class AbstractBlock(eqx.Module):
    """``z + Mix(GELU(layer(LN(z))))``; subclasses name the layer and the mixer."""

    norm: eqx.AbstractVar[eqx.nn.LayerNorm]

    @property
    @abc.abstractmethod
    def layer(self) -> eqx.Module:
        """The recurrent layer (a cell, or a layer with glue such as ``rx.LRU``)."""

    @abc.abstractmethod
    def mix(self, v: Array) -> Array:
        """The position-wise map back to the residual stream."""

    def forward(self, state, z, *, core_call):
        state, v = self.layer.forward(state, self.norm(z), core_call=core_call)
        return state, z + self.mix(jax.nn.gelu(v))

    def sequence(self, state, zs):
        state, v = self.layer.sequence(state, jax.vmap(self.norm)(zs))
        return state, zs + jax.vmap(self.mix)(jax.nn.gelu(v))


class Block(AbstractBlock):
    """A :class:`DeepRNN` block: ``norm``, ``cell``, ``mixer`` (a GLU's linear map or an
    :class:`MLP`)."""

    norm: eqx.nn.LayerNorm
    cell: eqx.Module
    mixer: eqx.Module
    kind: str = eqx.field(static=True)

    def __init__(self, norm, cell, mixer, kind):
        self.norm, self.cell, self.mixer, self.kind = norm, cell, mixer, kind

    @property
    def layer(self):
        return self.cell

    def mix(self, v):
        return glu(self.mixer, v) if self.kind == "glu" else self.mixer(v)


class AbstractDeepRNN(eqx.Module):
    """The shared forward pass of :class:`DeepRNN` and :class:`~rtrlax.LRUNet`."""

    encoder: eqx.AbstractVar[eqx.nn.Linear]
    blocks: eqx.AbstractVar[tuple]
    decoder: eqx.AbstractVar[eqx.nn.Linear]
    pool: eqx.AbstractVar[bool]

    @property
    def input_size(self) -> int:
        return self.encoder.in_features

    @property
    def output_size(self) -> int:
        return self.decoder.out_features

    @property
    def d_model(self) -> int:
        return self.encoder.out_features

    def initial_state(self) -> DeepState:
        layers = tuple(b.layer.initial_state() for b in self.blocks)
        if not self.pool:
            return DeepState(layers, None)
        dtype = self.encoder.weight.dtype
        return DeepState(layers, (jnp.zeros((), dtype), jnp.zeros(self.d_model, dtype)))

    def cores(self) -> tuple:
        return tuple(core for b in self.blocks for core in b.layer.cores())

    def forward(self, state: DeepState, x: Float[Array, " input"], *, core_call):
        check_input(x, self.input_size, type(self).__name__)
        z = self.encoder(x)
        layers = []
        for block, s in zip(self.blocks, state.layers):
            s, z = block.forward(s, z, core_call=core_call)
            layers.append(s)
        pool = None
        if self.pool:
            count, total = state.pool
            count = count + 1
            total = jax.lax.stop_gradient(total) + z
            z = total / count
            pool = (count, total)
        return DeepState(tuple(layers), pool), self.decoder(z)

    def __call__(self, state: DeepState, x: Array) -> tuple[DeepState, Array]:
        return self.forward(state, x, core_call=plain_core_call)

    @property
    def has_sequence(self) -> bool:
        """Whether every layer is linear in its state (then :meth:`sequence` exists)."""
        return all(getattr(b.layer, "has_sequence", False) for b in self.blocks)

    def sequence(self, state: DeepState, xs: Float[Array, "time input"]):
        """``(s_T, ys)`` over a whole sequence ``xs`` ``[T, input]``: the same numbers as
        stepping (float64), with every dense map applied to all steps at once and each
        layer's recurrence as a parallel scan.  Needs ``has_sequence``."""
        if not self.has_sequence:
            names = [type(b.layer).__name__ for b in self.blocks
                     if not getattr(b.layer, "has_sequence", False)]  # fmt: skip
            raise ValueError(
                f"sequence mode needs every layer linear in its state; {names} are not. "
                "Step the model with lax.scan (rtrlax.cells.base.run_sequence does)."
            )
        check_inputs(xs, self.input_size, type(self).__name__)
        z = jax.vmap(self.encoder)(xs)
        layers = []
        for block, s in zip(self.blocks, state.layers):
            s, z = block.sequence(s, z)
            layers.append(s)
        pool = None
        if self.pool:
            count, total = state.pool
            steps = count + jnp.arange(1, xs.shape[0] + 1, dtype=z.dtype)
            feats = z
            sums = jnp.cumsum(feats, axis=0)  # S_{t-1} for every t: an exclusive prefix sum
            before = jax.lax.stop_gradient(
                total + jnp.concatenate([jnp.zeros_like(feats[:1]), sums[:-1]])
            )
            z = (before + feats) / steps[:, None]
            pool = (steps[-1], before[-1] + feats[-1])
        return DeepState(tuple(layers), pool), jax.vmap(self.decoder)(z)


def layer_output_size(layer, input_size: int, dtype) -> int:
    """The size of ``layer``'s output for one input of ``input_size``."""
    x = jax.ShapeDtypeStruct((input_size,), dtype)
    out = jax.eval_shape(lambda lay, x: lay(lay.initial_state(), x)[1], layer, x)
    return out.shape[0]


class DeepRNN(AbstractDeepRNN):
    """A stack of ``n_layers`` blocks of any cell (see module doc).

    Args:
        input_size, output_size: sizes of ``x_t`` and ``y_t``.
        cell: a name in :data:`CELLS` (``"lru"``, ``"rtu"``, ``"nonlinear-rtu"``,
            ``"elstm"``, ``"mingru"``, ``"minlstm"``, ``"rglru"``, ``"gru"``, ``"lstm"``,
            ``"vanilla"``) or a factory ``cell(input_size, hidden_size, *, key)`` returning
            a model with ``initial_state``/``forward``/``cores`` (any rtrlax cell class).
        d_model: width of the residual stream (each cell's input size).
        d_hidden: each cell's hidden size.
        n_layers: number of blocks.
        key: PRNG key.
        mixer: ``"glu"`` (default) or ``"mlp"``.
        d_ff: the MLP's width (default ``2 * d_model``).
        pool: the running-mean pooled output (sequence classification).
        cell_options: extra keyword arguments for a cell built by name (e.g. ``r_min``).

    ``DeepRNN(..., cell="lru", mixer="glu")`` has the parameters of ``rx.LRUNet`` with the
    same arguments and key, and computes the same outputs.
    """

    encoder: eqx.nn.Linear
    blocks: tuple[Block, ...]
    decoder: eqx.nn.Linear
    pool: bool = eqx.field(static=True)

    def __init__(
        self, input_size: int, output_size: int, *, cell: str | Callable, d_model: int,
        d_hidden: int, n_layers: int, key: PRNGKeyArray, mixer: str = "glu",
        d_ff: int | None = None, pool: bool = False, cell_options: dict | None = None,
        dtype=None,
    ):  # fmt: skip
        for name, v in [
            ("input_size", input_size), ("output_size", output_size), ("d_model", d_model),
            ("d_hidden", d_hidden), ("n_layers", n_layers),
        ]:  # fmt: skip
            check_size(name, v)
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}.")
        dtype = default_dtype(dtype)
        factory = _cell_factory(cell, dtype, cell_options)
        d_ff = 2 * d_model if d_ff is None else check_size("d_ff", d_ff)
        k_enc, k_dec, *k_blocks = jax.random.split(key, 2 + n_layers)
        self.encoder = eqx.nn.Linear(input_size, d_model, key=k_enc, dtype=dtype)
        blocks = []
        for k in k_blocks:
            k_cell, k_mix = jax.random.split(k)
            layer = factory(d_model, d_hidden, key=k_cell)
            width = layer_output_size(layer, d_model, dtype)
            if mixer == "glu":
                mix = eqx.nn.Linear(width, 2 * d_model, key=k_mix, dtype=dtype)
            else:
                mix = MLP(width, d_model, d_ff, key=k_mix, dtype=dtype)
            blocks.append(Block(eqx.nn.LayerNorm(d_model, dtype=dtype), layer, mix, mixer))
        self.blocks = tuple(blocks)
        self.decoder = eqx.nn.Linear(d_model, output_size, key=k_dec, dtype=dtype)
        self.pool = bool(pool)


def _cell_factory(cell, dtype, options):
    options = dict(options or {})
    if isinstance(cell, str):
        if cell not in CELLS:
            raise ValueError(
                f"unknown cell {cell!r}; DeepRNN builds {sorted(CELLS)} by name, or pass a "
                "factory cell(input_size, hidden_size, *, key) -> cell."
            )
        cls = CELLS[cell]
        return lambda i, h, *, key: cls(i, h, key=key, dtype=dtype, **options)
    if not callable(cell):
        raise ValueError(f"cell must be a name or a callable factory, got {cell!r}.")
    if options:
        return lambda i, h, *, key: cell(i, h, key=key, **options)
    return cell
