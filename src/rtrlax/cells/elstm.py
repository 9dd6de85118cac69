"""The element-wise LSTM, eLSTM (Irie, Gopalakrishnan, Schmidhuber; ICLR 2024,
arXiv 2305.19044): an LSTM-like cell whose recurrent weights are vectors.

.. math::

    f_t &= \\sigma(W_f x_t + b_f + w_f \\odot c_{t-1})\\\\
    z_t &= \\tanh(W_z x_t + b_z + w_z \\odot c_{t-1})\\\\
    c_t &= f_t \\odot c_{t-1} + (1 - f_t) \\odot z_t\\\\
    o_t &= \\sigma(W_o x_t + b_o + w_o \\odot c_t), \\qquad h_t = o_t \\odot c_t

Every recurrent connection is unit-to-itself (``w_f, w_z, w_o`` are ``[k]`` vectors),
so each unit's state depends on its own past only: RTRL needs one trace per parameter
and state component (the paper's tractable exact RTRL), which SnAp-1 keeps — SnAp-1 is
exact on this cell.  Not linear in the state (the gates read ``c_{t-1}``): no
sequence mode.

Checked against the authors' public code: the forget gate and the candidate read the
previous cell state through vectors, the input gate is coupled (``1 − f_t``) and the
output gate is conditioned on the *new* cell state ``c_t``.  One difference, on
purpose: there the output gate is a full linear map of ``[x_t; c_t]``, placed outside
the recurrent layer (it mixes units, so inside the cell it would break the per-unit
structure that makes SnAp-1 exact); here it reads ``c_t`` through a vector ``w_o``, so
the whole cell stays element-wise (in :class:`~rtrlax.DeepRNN` the block after the
cell mixes units).  As a gated cell: ``weight_ih = [W_f; W_z; W_o]`` (G = 3), no
``weight_hh``, unit parameter ``weight_rec = [w_f; w_z; w_o]`` (``[3, k]``), state
``(c, h)`` (m = 2; ``h`` is not fed back).  Initialisation: PyTorch-style
``U(−1/√k, 1/√k)`` for every weight and bias.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell


class ELSTM(AbstractGatedCell):
    """Element-wise LSTM (see module doc); gates ``(f, z, o)``; state ``(c, h)``, output ``h``.

    ``input_density`` keeps that fraction of the input weights (a fixed random mask).
    """

    weight_ih: Float[Array, "3 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "3 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "3 hidden input"] | None
    mask_hh: None
    weight_rec: Float[Array, "3 hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, dtype=None,
    ):  # fmt: skip
        k_p, k_r = jax.random.split(key)
        p = gated_parameters(
            k_p, gates=3, input_size=input_size, hidden_size=hidden_size, density=1.0,
            input_density=input_density, recurrent=False, dtype=dtype,
        )  # fmt: skip
        self.weight_ih, self.bias_ih, self.mask_ih = p["weight_ih"], p["bias_ih"], p["mask_ih"]
        self.weight_hh = self.bias_hh = self.mask_hh = None
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_rec = jax.random.uniform(
            k_r, (3, hidden_size), self.weight_ih.dtype, -bound, bound
        )
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]  # unused: no weight_hh

    def pointwise(self, ax, ah, state):
        c, _ = state
        f = jax.nn.sigmoid(ax[0] + self.weight_rec[0] * c)
        z = jnp.tanh(ax[1] + self.weight_rec[1] * c)
        c = f * c + (1 - f) * z
        o = jax.nn.sigmoid(ax[2] + self.weight_rec[2] * c)
        return c, o * c

    def output(self, state):
        return state[1]
