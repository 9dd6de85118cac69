"""GRU with the reset gate applied after the recurrent matmul (PyTorch / cuDNN form).

.. math::

    r &= \\sigma(a^x_r + a^h_r),\\quad z = \\sigma(a^x_z + a^h_z)\\\\
    n &= \\tanh(a^x_n + r \\odot a^h_n),\\quad a^h_n = W_{hn} h_{t-1} + b_{hn}\\\\
    h_t &= (1 - z) \\odot n + z \\odot h_{t-1}

With this form every parameter of unit ``i`` touches only unit ``i`` in one step, so
SnAp-1 keeps one number per parameter.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell


class GRU(AbstractGatedCell):
    """Gated recurrent unit; gates ordered ``(r, z, n)``; state ``(h,)``, output ``h``."""

    weight_ih: Float[Array, "3 hidden input"]
    weight_hh: Float[Array, "3 hidden hidden"]
    bias_ih: Float[Array, "3 hidden"]
    bias_hh: Float[Array, "3 hidden"]
    mask_ih: Bool[Array, "3 hidden input"] | None
    mask_hh: Bool[Array, "3 hidden hidden"] | None
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key: PRNGKeyArray,
        density: float = 1.0,
        input_density: float = 1.0,
        dtype=None,
    ):
        p = gated_parameters(
            key,
            gates=3,
            input_size=input_size,
            hidden_size=hidden_size,
            density=density,
            input_density=input_density,
            bias_hh=True,
            dtype=dtype,
        )
        self.weight_ih, self.weight_hh = p["weight_ih"], p["weight_hh"]
        self.bias_ih, self.bias_hh = p["bias_ih"], p["bias_hh"]
        self.mask_ih, self.mask_hh = p["mask_ih"], p["mask_hh"]
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array]:
        return zeros_state(self.hidden_size, 1, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]

    def pointwise(self, ax, ah, state):
        (h,) = state
        r = jax.nn.sigmoid(ax[0] + ah[0])
        z = jax.nn.sigmoid(ax[1] + ah[1])
        n = jnp.tanh(ax[2] + r * ah[2])
        return ((1 - z) * n + z * h,)

    def output(self, state):
        return state[0]
