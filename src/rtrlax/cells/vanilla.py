"""Elman RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1})``."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell


class VanillaRNN(AbstractGatedCell):
    """Vanilla tanh RNN; state ``(h,)``, output ``h``.

    ``density``/``input_density`` keep that fraction of the recurrent/input weights
    (fixed random masks drawn from ``key``, zero through training).
    """

    weight_ih: Float[Array, "1 hidden input"]
    weight_hh: Float[Array, "1 hidden hidden"]
    bias_ih: Float[Array, "1 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "1 hidden input"] | None
    mask_hh: Bool[Array, "1 hidden hidden"] | None
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
            gates=1,
            input_size=input_size,
            hidden_size=hidden_size,
            density=density,
            input_density=input_density,
            dtype=dtype,
        )
        self.weight_ih, self.weight_hh, self.bias_ih = p["weight_ih"], p["weight_hh"], p["bias_ih"]
        self.bias_hh, self.mask_ih, self.mask_hh = None, p["mask_ih"], p["mask_hh"]
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array]:
        return zeros_state(self.hidden_size, 1, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]

    def pointwise(self, ax, ah, state):
        return (jnp.tanh(ax[0] + ah[0]),)

    def output(self, state):
        return state[0]
