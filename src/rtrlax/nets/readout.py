"""A recurrent core followed by a linear readout: the usual shape of an online learner."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ..cells.base import AbstractCell, check_size, plain_core_call


def check_core(core, who: str) -> None:
    """A ValueError, at construction, unless ``core`` is a recurrent cell (an
    :class:`~rtrlax.cells.base.AbstractCell` with ``update``/``output``) with at least
    one floating-point parameter."""
    if not isinstance(core, AbstractCell):
        hint = ""
        if hasattr(core, "cores") and callable(core.cores):
            hint = (
                f" {type(core).__name__} is a whole layer or network, not a cell: use its core "
                "(e.g. rx.LRUCore for rx.LRU) or the network as the model itself (rx.LRUNet)."
            )
        raise ValueError(
            f"{who} needs a recurrent cell as its core (rx.VanillaRNN, rx.GRU, rx.LSTM, "
            f"rx.EGRU, rx.Columnar, rx.LRUCore), got {type(core).__name__}.{hint}"
        )
    if not jax.tree_util.tree_leaves(eqx.filter(core, eqx.is_inexact_array)):
        raise ValueError(f"{who}: the core {type(core).__name__} has no floating-point parameters.")


class Readout(eqx.Module):
    """``y_t = W core.output(s_t) + b``, with ``s_t = core(s_{t-1}, x_t)``.

    The readout gets its ordinary instantaneous gradient under every estimator; the
    core's parameters get whatever the estimator carries through time.
    ``zero_init=True`` starts the readout at zero (as the columnar/CCN papers do).
    """

    core: AbstractCell
    weight: Float[Array, "output hidden"]
    bias: Float[Array, " output"]

    def __init__(
        self,
        core: AbstractCell,
        output_size: int,
        *,
        key: PRNGKeyArray,
        zero_init: bool = False,
    ):
        check_core(core, "Readout")
        check_size("output_size", output_size)
        dtype = jax.tree_util.tree_leaves(eqx.filter(core, eqx.is_inexact_array))[0].dtype
        bound = 1.0 / math.sqrt(core.hidden_size)
        # the core's output width (hidden_size for most cells; 2 × hidden for an RTU)
        width = jax.eval_shape(core.output, core.initial_state()).shape[0]
        shape = (output_size, width)
        if zero_init:
            self.weight = jnp.zeros(shape, dtype)
        else:
            self.weight = jax.random.uniform(key, shape, dtype, -bound, bound)
        self.bias = jnp.zeros(output_size, dtype)
        self.core = core

    @property
    def input_size(self) -> int:
        return self.core.input_size

    @property
    def output_size(self) -> int:
        return self.weight.shape[0]

    def initial_state(self) -> State:
        return self.core.initial_state()

    def cores(self) -> tuple[AbstractCell, ...]:
        return (self.core,)

    def forward(self, state: State, x: Array, *, core_call) -> tuple[State, Array]:
        state = core_call(self.core, state, x)
        return state, self.weight @ self.core.output(state) + self.bias

    def __call__(self, state: State, x: Array) -> tuple[State, Array]:
        return self.forward(state, x, core_call=plain_core_call)
