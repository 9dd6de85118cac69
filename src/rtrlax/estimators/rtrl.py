"""Exact real-time recurrent learning (Williams & Zipser, 1989), dense.

Carries the full influence matrix :math:`M_t = ds_t/d\\theta` (``[S, P]``: every state
scalar of the model against every parameter scalar) with

.. math::

    M_t = D_t M_{t-1} + \\bar I_t, \\qquad
    D_t = \\partial s_t / \\partial s_{t-1}, \\quad \\bar I_t = \\partial s_t / \\partial\\theta,

and reports :math:`d\\ell_t/d\\theta = \\partial\\ell_t/\\partial\\theta
+ (\\partial\\ell_t/\\partial s_{t-1}) M_{t-1}`, the exact gradient of the step-t loss
through the whole past when θ is held fixed.

Works on any model (cell, readout network, stack).  Memory ``S·P`` (≈ k³ for a dense
RNN); time ``S²·P`` per step (≈ k⁴, the "quartic" cost) — the reference every other
estimator is measured against, practical for small models only.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._types import State
from .base import AbstractOnlineEstimator, StepOutput, split_params


class RTRLCarry(NamedTuple):
    state: State  #: s_t
    influence: Float[Array, "state params"]  #: M_t, flattened state x flattened params


class RTRL(AbstractOnlineEstimator):
    """Exact RTRL with a dense influence matrix (see module docstring)."""

    def init(self, model, *, key=None) -> RTRLCarry:
        params, _ = split_params(model)
        theta, _ = ravel_pytree(params)
        state = model.initial_state()
        s_flat, _ = ravel_pytree(state)
        return RTRLCarry(state, jnp.zeros((s_flat.size, theta.size), theta.dtype))

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)
        theta, unravel_params = ravel_pytree(params)
        s_flat, unravel_state = ravel_pytree(carry.state)

        def f(theta, s_flat):
            new_state, y = eqx.combine(unravel_params(theta), static)(unravel_state(s_flat), x)
            return ravel_pytree(new_state)[0], y

        def loss_of(theta, s_flat):
            s_new, y = f(theta, s_flat)
            return loss_fn(y, target), (s_new, y)

        (loss, (s_new, y)), (g_theta, g_state) = jax.value_and_grad(
            loss_of, argnums=(0, 1), has_aux=True
        )(theta, s_flat)
        grad = g_theta + g_state @ carry.influence
        d_t = jax.jacfwd(lambda s: f(theta, s)[0])(s_flat)
        i_t = jax.jacrev(lambda th: f(th, s_flat)[0])(theta)
        influence = d_t @ carry.influence + i_t
        new_carry = RTRLCarry(unravel_state(s_new), influence)
        return new_carry, StepOutput(y, loss, unravel_params(grad))
