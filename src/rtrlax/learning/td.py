"""TD(λ) prediction with any online gradient estimator.

The learner predicts a discounted sum of a cumulant ``c`` carried by the stream,
``G_t = Σ_j γ^j c_{t+1+j}``, with the model's first output ``ŷ_t = y_t[0]``:

.. math::

    \\delta_{t-1} &= c_t + \\gamma\\, \\hat y_t - \\hat y_{t-1}, \\qquad
    \\theta \\leftarrow \\theta + \\alpha\\, \\mathrm{norm}(\\delta_{t-1} e_{t-1}),\\\\
    e_t &= \\gamma\\lambda\\, e_{t-1} + \\nabla_\\theta \\hat y_t .

``∇θ ŷ_t`` comes from ``estimator.step`` with ``loss_fn = lambda y, _: y[0]`` — ColoR,
SnAp-1, RTRL, TBPTT all work.  The update is handed to an optax transformation as the
"gradient" ``−δ e`` (so ``optax.sgd(α)`` is plain TD(λ));
:func:`td_rmsprop` gives the papers' RMSProp-style normalisation (β₂ = 0.9999).  A model
may define ``update_scale(state)`` returning a pytree of factors shaped like its
parameters (used by :class:`~rtrlax.Constructive` to divide the prediction weights'
step size by the number of active features).

Memory: the model, the estimator's carry, one eligibility trace per parameter and the
optimizer state — flat in the number of steps.  Streams are batched by ``jax.vmap``
(:meth:`TDLambda.run` on a batched state: use ``jax.vmap(td.run)``); chunks of steps run
inside one ``lax.scan``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..estimators.base import AbstractOnlineEstimator, split_params


class TDState(NamedTuple):
    model: Any  #: the model (parameters learn; masks ride along)
    carry: PyTree  #: the estimator's carry (model state + traces)
    trace: PyTree  #: eligibility trace e_t, shaped like the parameters
    opt_state: PyTree  #: the optax state
    y_prev: Float[Array, ""]  #: ŷ_{t-1}


def td_rmsprop(learning_rate: float, *, decay: float = 0.9999, eps: float = 1e-8):
    """RMSProp-style normalised TD step: ``θ += α u / (sqrt(v̂) + ε)`` with
    ``v ← β₂ v + (1−β₂) u²`` bias-corrected (Adam with β₁ = 0), ``u = δ e``."""
    return optax.chain(optax.scale_by_adam(b1=0.0, b2=decay, eps=eps), optax.scale(-learning_rate))


def _prediction(y, _):
    return y[0]


class TDLambda(eqx.Module):
    """TD(λ) learner: ``init(model) -> TDState``, ``step(state, x, c) -> (state, ŷ)``,
    ``run(state, xs, cs) -> (state, ŷs)`` (see module docstring)."""

    estimator: AbstractOnlineEstimator
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)

    def __init__(self, estimator, optimizer, *, gamma: float = 0.9, lam: float = 0.99):
        if not isinstance(estimator, AbstractOnlineEstimator):
            raise ValueError(
                f"TDLambda needs an online estimator (rx.ColoR(), rx.SnAp(1), rx.RTRL(), "
                f"rx.TBPTT(T)), got {type(estimator).__name__}."
            )
        if not (0.0 <= gamma < 1.0) or not (0.0 <= lam <= 1.0):
            raise ValueError(f"need 0 <= gamma < 1 and 0 <= lam <= 1, got gamma={gamma}, lam={lam}.")
        self.estimator, self.optimizer = estimator, optimizer
        self.gamma, self.lam = float(gamma), float(lam)

    def init(self, model, *, key: PRNGKeyArray | None = None) -> TDState:
        params, _ = split_params(model)
        carry = self.estimator.init(model, key=key)
        trace = jax.tree_util.tree_map(jnp.zeros_like, params)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        return TDState(model, carry, trace, self.optimizer.init(params), jnp.zeros((), dtype))

    def step(self, state: TDState, x: Array, cumulant) -> tuple[TDState, Array]:
        """Observe ``x_t`` and the cumulant ``c_t`` it carries; update; return ``ŷ_t``."""
        model = state.model
        carry, out = self.estimator.step(model, state.carry, x, None, _prediction)
        y = out.loss  # ŷ_t (computed with θ_{t-1})
        delta = cumulant + self.gamma * y - state.y_prev
        params, static = split_params(model)
        direction = jax.tree_util.tree_map(lambda e: -delta * e, state.trace)
        updates, opt_state = self.optimizer.update(direction, state.opt_state, params)
        if hasattr(model, "update_scale"):
            scale = model.update_scale(carry.state)
            updates = jax.tree_util.tree_map(lambda u, s: u * s, updates, scale)
        params = optax.apply_updates(params, updates)
        trace = jax.tree_util.tree_map(
            lambda e, g: self.gamma * self.lam * e + g, state.trace, out.grads
        )
        new = TDState(eqx.combine(params, static), carry, trace, opt_state, y)
        return new, y

    def run(self, state: TDState, xs: Array, cumulants: Array) -> tuple[TDState, Array]:
        """``n`` steps in one ``lax.scan`` (``xs`` ``[n, input]``, ``cumulants`` ``[n]``)."""

        def body(s, xc):
            return self.step(s, *xc)

        return jax.lax.scan(body, state, (xs, cumulants))
