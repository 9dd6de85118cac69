"""UORO: unbiased online recurrent optimisation (Tallec & Ollivier, 2018).

Keeps a rank-one, unbiased estimate of the influence matrix of the whole model,
:math:`M_t \\approx \\tilde u_t \\tilde w_t^\\top` (``ũ`` over the flattened state,
``w̃`` over the flattened parameters).  Each step draws ``ν ∈ {±1}^S`` and

.. math::

    \\tilde u_t = \\rho_0 D_t \\tilde u_{t-1} + \\rho_1 \\nu, \\qquad
    \\tilde w_t = \\tilde w_{t-1}/\\rho_0 + (\\nu^\\top \\bar I_t)/\\rho_1,

    \\rho_0 = \\sqrt{\\frac{\\lVert\\tilde w_{t-1}\\rVert + ε}{\\lVert D_t\\tilde u_{t-1}\\rVert + ε}},\\quad
    \\rho_1 = \\sqrt{\\frac{\\lVert\\nu^\\top\\bar I_t\\rVert + ε}{\\lVert\\nu\\rVert + ε}}

(the ρ's balance the two factors' norms, which minimises the variance; ρ₁ is even in
ν, so the cross terms keep zero mean).  The step-t gradient is
:math:`\\partial\\ell_t/\\partial\\theta + (\\partial\\ell_t/\\partial s_{t-1}\\cdot\\tilde u_{t-1})\\,\\tilde w_{t-1}`,
unbiased for the exact RTRL gradient (non-recurrent parameters such as a readout get
their exact instantaneous gradient: their ``w̃`` entries stay 0).

Works on any model with ``initial_state()`` and ``__call__``.  Memory ``S + P``;
time per step: one forward, one JVP (``D_t ũ``) and two VJPs (``∂ℓ``, ``νᵀĪ``) —
a few inference steps.  High variance: unbiased does not mean accurate.
"""

from __future__ import annotations

import warnings

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from .base import AbstractOnlineEstimator, StepOutput, split_params


class UOROCarry(NamedTuple):
    state: State  #: s_t
    u: Float[Array, " state"]  #: ũ_t (flattened state)
    w: Float[Array, " params"]  #: w̃_t (flattened parameters)
    key: PRNGKeyArray  #: randomness for the next ν


class UORO(AbstractOnlineEstimator):
    """UORO on any model (see module docstring); ``eps`` guards the norm ratios."""

    eps: float = eqx.field(static=True)

    def __init__(self, eps: float = 1e-7):
        if not eps > 0:
            raise ValueError(f"UORO eps must be positive (it guards 0/0 in ρ), got {eps!r}.")
        self.eps = float(eps)

    def init(self, model, *, key=None) -> UOROCarry:
        """``key=None`` uses ``jax.random.key(0)`` and warns (every stream and run would
        then draw the same noise); pass a key per stream / seed.  ``OnlineLearner`` and
        ``accumulate_grads(..., key=...)`` pass one."""
        params, _ = split_params(model)
        theta, _ = ravel_pytree(params)
        state = model.initial_state()
        s_flat, _ = ravel_pytree(state)
        key = _default_key(key)
        return UOROCarry(state, jnp.zeros_like(s_flat), jnp.zeros_like(theta), key)

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)
        theta, unravel_params = ravel_pytree(params)
        s_flat, unravel_state = ravel_pytree(carry.state)

        def f(theta, s_flat):
            new_state, y = eqx.combine(unravel_params(theta), static)(unravel_state(s_flat), x)
            return ravel_pytree(new_state)[0], y

        (s_new, y), vjp = jax.vjp(f, theta, s_flat)
        loss, dl_dy = jax.value_and_grad(loss_fn)(y, target)
        g_theta, g_state = vjp((jnp.zeros_like(s_new), dl_dy))
        grad = g_theta + jnp.dot(g_state, carry.u) * carry.w

        key, sub = jax.random.split(carry.key)
        nu = jax.random.rademacher(sub, s_new.shape, s_new.dtype)
        nu_i, _ = vjp((nu, jax.tree_util.tree_map(jnp.zeros_like, y)))
        _, d_u = jax.jvp(lambda s: f(theta, s)[0], (s_flat,), (carry.u,))
        eps, norm = self.eps, jnp.linalg.norm
        rho0 = jnp.sqrt((norm(carry.w) + eps) / (norm(d_u) + eps))
        rho1 = jnp.sqrt((norm(nu_i) + eps) / (norm(nu) + eps))
        u = rho0 * d_u + rho1 * nu
        w = carry.w / rho0 + nu_i / rho1
        new = UOROCarry(unravel_state(s_new), u, w, key)
        return new, StepOutput(y, loss, unravel_params(grad))


def _default_key(key):
    if key is None:
        warnings.warn(
            "UORO is stochastic and got no key: using jax.random.key(0), so every call draws "
            "the same noise. Pass key=... (e.g. rx.accumulate_grads(..., key=jax.random.key(seed))).",
            stacklevel=3,
        )
        return jax.random.key(0)
    return key
