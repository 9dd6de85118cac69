"""Backpropagation through time: the offline reference.

``accumulate_grads(BPTT(), ...)`` is ``jax.grad`` of ``Σ_t loss_fn(y_t, targets[t])``
through the model over the whole sequence.  It is not an online estimator (memory
grows with the sequence); use :class:`~rtrlax.TBPTT` for the online truncated variant.

**Sequence mode.**  When the model offers a whole-sequence evaluation
(``model.has_sequence`` and ``model.sequence(state, xs) -> (s_T, ys)``: cells linear in
their state — LRU, RTU, MinGRU, MinLSTM, RG-LRU — and deep stacks of them, see
:class:`~rtrlax.cells.base.AbstractLinearGatedCell`), the forward pass applies every
dense map to all steps at once and each diagonal recurrence with
``jax.lax.associative_scan``, and ``jax.grad`` differentiates that.  The gradient is
the same as through the step-by-step ``lax.scan`` (float64, round-off; tested);
``BPTT(sequence_mode=False)`` forces the stepwise form.  ``chunk`` (default 32) runs
the sequence mode on consecutive chunks of that many steps, carrying the state between
them (:func:`~rtrlax.cells.base.run_sequence`): on CPU that keeps each layer's
activations in cache (``docs/results/lru_sequence.md``); ``chunk=None`` evaluates all
steps at once.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..cells.base import run_sequence
from .base import AbstractEstimator, split_params


class BPTT(AbstractEstimator):
    """Full BPTT over a whole sequence (offline; see module docstring).

    Args:
        sequence_mode: use the model's whole-sequence evaluation when it has one
            (default); ``False`` always steps through time with ``lax.scan``.
        chunk: steps per chunk of the sequence mode (``None``: the whole sequence).
    """

    sequence_mode: bool = eqx.field(default=True, static=True)
    chunk: int | None = eqx.field(default=32, static=True)

    def accumulate(self, model, xs, targets, loss_fn):
        """``(grads, losses)`` of the summed loss over the sequence ``xs``."""
        params, static = split_params(model)
        use_sequence = self.sequence_mode and getattr(model, "has_sequence", False)

        def total(params):
            m = eqx.combine(params, static)
            if use_sequence:
                _, ys = run_sequence(m, xs, chunk=self.chunk)
                losses = jax.vmap(loss_fn)(ys, targets)
                return jnp.sum(losses), losses

            def body(state, xt):
                x, target = xt
                state, y = m(state, x)
                return state, loss_fn(y, target)

            _, losses = jax.lax.scan(body, m.initial_state(), (xs, targets))
            return jnp.sum(losses), losses

        grads, losses = jax.grad(total, has_aux=True)(params)
        return grads, losses
