"""A deep LRU network: encoder → N × [norm → LRU → GELU → GLU → residual] → decoder.

.. math::

    z^0_t &= W_{enc} x_t + b_{enc}\\\\
    z^{l}_t &= z^{l-1}_t + \\mathrm{GLU}(\\mathrm{GELU}(\\mathrm{LRU}_l(\\mathrm{LN}_l(z^{l-1}_t))))
        \\qquad \\mathrm{GLU}(v) = a \\odot \\sigma(b),\\ [a; b] = W_l v + c_l\\\\
    y_t &= W_{dec}\\, p_t + b_{dec}

with ``p_t = z^L_t`` (per-step outputs), or with ``pool=True`` the running mean

.. math::  p_t = \\big(\\mathrm{sg}(S_{t-1}) + z^L_t\\big) / t, \\qquad S_t = S_{t-1} + z^L_t

whose gradient flows only to the current step's features (``sg`` = stop-gradient):
the pooled prediction at step t can be trained online, with a loss at every step,
without any memory of past features' Jacobians (the online LRU paper's choice for
sequence classification).  The stop-gradient is part of the model, so BPTT on the same
model is the exact reference for the same objective.

Norm: LayerNorm (per step, per stream — no batch statistics, so the network stays an
unbatched, streamable model).  No dropout (the exactness tests need a deterministic
model; add regularisation in the optimiser).

Since the deep-stack work (nets/deep.py) this is the :class:`~rtrlax.nets.deep.DeepRNN`
stack with the LRU layer and a GLU: ``LRUNet`` keeps its arguments, its parameter
names (``blocks[l].lru``, ``blocks[l].glu``) and its numbers for a given key (no break:
``DeepRNN(..., cell="lru")`` with the same key has the same parameters), and gains the
whole-sequence mode (``sequence``, used by ``rx.BPTT()``).

Only the LRU recurrences are cores (``cores()``); the encoder, norms, C, D, GLUs and
the decoder are glue with instantaneous gradients under trace estimators.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
from jaxtyping import Array, PRNGKeyArray

from ..cells.base import check_size, default_dtype
from ..cells.lru import LRU
from .deep import AbstractBlock, AbstractDeepRNN, DeepState, glu

#: The state of an :class:`LRUNet` (the deep stacks' state).
LRUNetState = DeepState


class LRUBlock(AbstractBlock):
    """``z + GLU(GELU(LRU(LayerNorm(z))))`` (final)."""

    norm: eqx.nn.LayerNorm
    lru: LRU
    glu: eqx.nn.Linear

    def __init__(self, d_model: int, d_hidden: int, *, key, r_min, r_max, max_phase, dtype):
        k_lru, k_glu = jax.random.split(key)
        self.norm = eqx.nn.LayerNorm(d_model, dtype=dtype)
        self.lru = LRU(
            d_model, d_hidden, key=k_lru, r_min=r_min, r_max=r_max, max_phase=max_phase,
            dtype=dtype,
        )  # fmt: skip
        self.glu = eqx.nn.Linear(d_model, 2 * d_model, key=k_glu, dtype=dtype)

    @property
    def layer(self) -> LRU:
        return self.lru

    def mix(self, v: Array) -> Array:
        return glu(self.glu, v)


class LRUNet(AbstractDeepRNN):
    """A stack of LRU blocks with a linear encoder and decoder (see module doc).

    Args:
        input_size: size of ``x_t``.
        output_size: size of ``y_t``.
        d_model: width of the residual stream (LRU input/output size ``H``).
        d_hidden: complex state units per LRU layer (``N``).
        n_layers: number of blocks.
        key: PRNG key.
        r_min, r_max, max_phase: the LRU ring initialisation.
        pool: ``True`` for the running-mean pooled output (sequence classification).
    """

    encoder: eqx.nn.Linear
    blocks: tuple[LRUBlock, ...]
    decoder: eqx.nn.Linear
    pool: bool = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        d_model: int,
        d_hidden: int,
        n_layers: int,
        key: PRNGKeyArray,
        r_min: float = 0.0,
        r_max: float = 1.0 - 1e-3,
        max_phase: float = 2 * math.pi,
        pool: bool = False,
        dtype=None,
    ):
        for name, v in [
            ("input_size", input_size), ("output_size", output_size), ("d_model", d_model),
            ("d_hidden", d_hidden), ("n_layers", n_layers),
        ]:  # fmt: skip
            check_size(name, v)
        dtype = default_dtype(dtype)
        k_enc, k_dec, *k_blocks = jax.random.split(key, 2 + n_layers)
        self.encoder = eqx.nn.Linear(input_size, d_model, key=k_enc, dtype=dtype)
        self.blocks = tuple(
            LRUBlock(
                d_model, d_hidden, key=k, r_min=r_min, r_max=r_max, max_phase=max_phase,
                dtype=dtype,
            )  # fmt: skip
            for k in k_blocks
        )
        self.decoder = eqx.nn.Linear(d_model, output_size, key=k_dec, dtype=dtype)
        self.pool = bool(pool)
