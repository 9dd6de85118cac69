"""LSTM; gates ordered ``(i, f, g, o)``; state ``(h, c)``.

.. math::

    c_t = \\sigma(a_f) \\odot c_{t-1} + \\sigma(a_i) \\odot \\tanh(a_g),\\qquad
    h_t = \\sigma(a_o) \\odot \\tanh(c_t),\\qquad a = a^x + a^h
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell


class LSTM(AbstractGatedCell):
    """Long short-term memory cell; state ``(h, c)``, output ``h``."""

    weight_ih: Float[Array, "4 hidden input"]
    weight_hh: Float[Array, "4 hidden hidden"] | None
    bias_ih: Float[Array, "4 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "4 hidden input"] | None
    mask_hh: Bool[Array, "4 hidden hidden"] | None
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
            gates=4,
            input_size=input_size,
            hidden_size=hidden_size,
            density=density,
            input_density=input_density,
            dtype=dtype,
        )
        self.weight_ih, self.weight_hh, self.bias_ih = p["weight_ih"], p["weight_hh"], p["bias_ih"]
        self.bias_hh, self.mask_ih, self.mask_hh = None, p["mask_ih"], p["mask_hh"]
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]

    def pointwise(self, ax, ah, state):
        return lstm_pointwise(ax, ah, state)

    def output(self, state):
        return state[0]


def lstm_pointwise(ax, ah, state):
    """The LSTM's element-wise update (gates ``i, f, g, o``), shared with the columnar cell."""
    _, c = state
    a = ax + ah
    i, f, o = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[3])
    c = f * c + i * jnp.tanh(a[2])
    return (o * jnp.tanh(c), c)
