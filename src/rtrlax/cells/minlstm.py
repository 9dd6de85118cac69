"""minLSTM (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi, 2024: "Were RNNs all we needed?").

.. math::

    f_t &= \\sigma(W_f x_t + b_f), \\quad i_t = \\sigma(W_i x_t + b_i), \\quad
        \\tilde h_t = W_h x_t + b_h\\\\
    f'_t &= \\frac{f_t}{f_t + i_t}, \\qquad i'_t = \\frac{i_t}{f_t + i_t}\\\\
    h_t &= f'_t \\odot h_{t-1} + i'_t \\odot \\tilde h_t

Gates read the input only: linear in the state, element-wise (SnAp-1 = RTRL; parallel
scan over a sequence).  Variant: the paper's plain minLSTM with the normalised
(time-independent scale) gates, real-valued, no log-space form.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractLinearGatedCell


def _gates(ax):
    f, i = jax.nn.sigmoid(ax[0]), jax.nn.sigmoid(ax[1])
    total = f + i
    return f / total, i / total


class MinLSTM(AbstractLinearGatedCell):
    """minLSTM; gates ``(f, i, h̃)``; state ``(h,)``, output ``h``."""

    weight_ih: Float[Array, "3 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "3 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "3 hidden input"] | None
    mask_hh: None
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, dtype=None,
    ):  # fmt: skip
        p = gated_parameters(
            key, gates=3, input_size=input_size, hidden_size=hidden_size, density=1.0,
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
        f, i = _gates(ax)
        return f, i * ax[2]

    def pointwise(self, ax, ah, state):
        (h,) = state
        f, i = _gates(ax)
        return (f * h + i * ax[2],)

    def output(self, state):
        return state[0]
