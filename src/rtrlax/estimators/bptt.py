"""Backpropagation through time: the offline reference.

``accumulate_grads(BPTT(), ...)`` is ``jax.grad`` of ``Σ_t loss_fn(y_t, targets[t])``
through a ``lax.scan`` of the model over the whole sequence.  It is not an online
estimator (memory grows with the sequence); use :class:`~rtrlax.TBPTT` for the
online truncated variant.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import AbstractEstimator, split_params


class BPTT(AbstractEstimator):
    """Full BPTT over a whole sequence (offline; see module docstring)."""

    def accumulate(self, model, xs, targets, loss_fn):
        """``(grads, losses)`` of the summed loss over the sequence ``xs``."""
        params, static = split_params(model)

        def total(params):
            m = eqx.combine(params, static)

            def body(state, xt):
                x, target = xt
                state, y = m(state, x)
                return state, loss_fn(y, target)

            _, losses = jax.lax.scan(body, m.initial_state(), (xs, targets))
            return jnp.sum(losses), losses

        grads, losses = jax.grad(total, has_aux=True)(params)
        return grads, losses
