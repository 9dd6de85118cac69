"""minGRU (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi, 2024: "Were RNNs all we needed?").

.. math::

    z_t &= \\sigma(W_z x_t + b_z), \\qquad \\tilde h_t = W_h x_t + b_h\\\\
    h_t &= (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t

The gates read the input only, so the state is linear in itself, element-wise: SnAp-1
is exact RTRL, and a whole sequence runs as a parallel scan
(:class:`~rtrlax.cells.base.AbstractLinearGatedCell`).  Variant: the paper's plain
(sequential-mode) minGRU, real-valued, no log-space reparameterisation of ``h̃``.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractLinearGatedCell


class MinGRU(AbstractLinearGatedCell):
    """minGRU; gates ``(z, h̃)``; state ``(h,)``, output ``h``.

    ``input_density`` keeps that fraction of the input weights (a fixed random mask).
    """

    weight_ih: Float[Array, "2 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "2 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "2 hidden input"] | None
    mask_hh: None
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, dtype=None,
    ):  # fmt: skip
        p = gated_parameters(
            key, gates=2, input_size=input_size, hidden_size=hidden_size, density=1.0,
            input_density=input_density, recurrent=False, dtype=dtype,
        )  # fmt: skip
        self.weight_ih, self.bias_ih, self.mask_ih = p["weight_ih"], p["bias_ih"], p["mask_ih"]
        self.weight_hh = self.bias_hh = self.mask_hh = None
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array]:
        return zeros_state(self.hidden_size, 1, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]  # unused: no weight_hh

    def transition(self, ax):
        z = jax.nn.sigmoid(ax[0])
        return 1 - z, z * ax[1]

    def pointwise(self, ax, ah, state):
        (h,) = state
        z = jax.nn.sigmoid(ax[0])
        return ((1 - z) * h + z * ax[1],)

    def output(self, state):
        return state[0]
