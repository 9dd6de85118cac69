"""Helpers shared by the benchmark scripts (they run with this folder on ``sys.path``)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree


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


def materialize(tree: PyTree) -> PyTree:
    """Compute each (small) array of ``tree`` into its own buffer before it is used.
    The estimators used this barrier until the fifth session (see ``docs/guide.md``,
    "Performance notes"); ``snap_floor.py`` and ``stream_sum.py`` keep it to reproduce
    their tables.

    The per-unit coefficients of a trace update are O(k) numbers that multiply O(p)
    trace entries.  XLA's CPU fusion otherwise inlines their whole (cheap but long)
    computation into the trace update's loop and redoes it for every trace entry —
    several times the cost of the update itself.  A scatter is never fused into its
    consumers, so passing each array through an identity scatter stops that;
    ``jax.lax.optimization_barrier`` does not (XLA CPU drops it before fusion).
    """

    def one(a):
        if a is None or jnp.ndim(a) == 0:
            return a
        flat = a.reshape(-1)
        return jnp.zeros_like(flat).at[jnp.arange(flat.shape[0])].set(flat, unique_indices=True).reshape(a.shape)

    return jax.tree_util.tree_map(one, tree)
