"""Truncated BPTT over a sliding window, online.

At every step the loss ℓ_t is backpropagated through the last ``T`` steps only: the
carry keeps the state :math:`s_{t-T}` that entered the window and the last ``T``
inputs, re-runs the window forward with the current parameters and differentiates.
``T = 1`` gives the instantaneous gradient (the past state treated as a constant);
``T`` at least the sequence length gives exactly BPTT's gradient.

Memory: ``T`` inputs plus one state.  Time: ``T + 1`` forward steps and ``T``
backward steps per step.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._types import State
from .base import AbstractOnlineEstimator, StepOutput, split_params


class TBPTTCarry(NamedTuple):
    state: State  #: s_t
    window_start: State  #: s_{t-T}: the state the window starts from
    inputs: Float[Array, "T ..."]  #: x_{t-T+1..t}, oldest first
    valid: Bool[Array, " T"]  #: which window slots hold real inputs (the stream may be younger than T)


class TBPTT(AbstractOnlineEstimator):
    """Online truncated BPTT over a sliding window of ``truncation`` steps."""

    truncation: int = eqx.field(static=True)

    def __init__(self, truncation: int):
        if not isinstance(truncation, int) or isinstance(truncation, bool) or truncation < 1:
            raise ValueError(f"TBPTT truncation must be a positive integer, got {truncation!r}.")
        self.truncation = truncation

    def init(self, model, *, key=None) -> TBPTTCarry:
        state = model.initial_state()
        dtype = jax.tree_util.tree_leaves(state)[0].dtype
        inputs = jnp.zeros((self.truncation, model.input_size), dtype)
        return TBPTTCarry(state, state, inputs, jnp.zeros(self.truncation, bool))

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)
        # Slide the window: the oldest input leaves it and advances the window start.
        model_now = eqx.combine(params, static)
        advanced, _ = model_now(carry.window_start, carry.inputs[0])
        window_start = _select(carry.valid[0], advanced, carry.window_start)
        inputs = jnp.concatenate([carry.inputs[1:], x[None].astype(carry.inputs.dtype)])
        valid = jnp.concatenate([carry.valid[1:], jnp.ones(1, bool)])
        window_start = jax.lax.stop_gradient(window_start)

        def window_loss(params):
            m = eqx.combine(params, static)

            def body(state, xv):
                xt, ok = xv
                new_state, y = m(state, xt)
                return _select(ok, new_state, state), y

            state, ys = jax.lax.scan(body, window_start, (inputs, valid))
            y = ys[-1]
            return loss_fn(y, target), (state, y)

        (loss, (state, y)), grads = jax.value_and_grad(window_loss, has_aux=True)(params)
        return TBPTTCarry(state, window_start, inputs, valid), StepOutput(y, loss, grads)


def _select(pred, on_true, on_false):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)
