"""The exact offline reference the cost tables compare the chunked online step with."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def bptt_chunk_grads(model, state, xs, ts, loss_fn):
    """Backprop through one chunk: ``(loss, state_K, grads)``, where ``grads`` is the
    gradient of the chunk's stream-mean summed loss, ``jax.grad`` through a ``lax.scan``
    of the model over the chunk's K steps from ``state`` (one per stream; no gradient
    flows into it).  ``xs``, ``ts``: ``[B, K, …]``.  What a learner that updates every K
    steps would spend on exact backprop instead of an online estimator."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    time_major = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731

    def chunk_loss(params):
        m = eqx.combine(params, static)

        def body(s, xt):
            s, y = jax.vmap(m)(s, xt[0])
            return s, jax.vmap(loss_fn)(y, xt[1])

        end, losses = jax.lax.scan(body, jax.lax.stop_gradient(state), (time_major(xs), time_major(ts)))
        return losses.sum() / xs.shape[0], end

    (loss, end), grads = jax.value_and_grad(chunk_loss, has_aux=True)(params)
    return loss, end, grads
