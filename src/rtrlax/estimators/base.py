"""The estimator protocol: a pure state machine over one stream (optax-style).

An online estimator builds its *carry* (the model state plus whatever traces it keeps)
with :meth:`init`, and :meth:`step` advances the carry by one input, returning that
step's output, loss and gradient estimate.  Nothing is mutated; a learner vmaps the
carry over streams and scans the step over time.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._types import LossFn, Params


class StepOutput(NamedTuple):
    """What one online step returns besides the new carry."""

    y: Array  #: the model's output y_t
    loss: Float[Array, ""]  #: loss_fn(y_t, target_t)
    grads: Params  #: the estimate of d loss_t / d theta, shaped like eqx.filter(model, eqx.is_inexact_array)


class AbstractEstimator(eqx.Module):
    """Base of every gradient estimator (online or not)."""


class AbstractOnlineEstimator(AbstractEstimator):
    """An estimator that learns online: ``init`` a carry, then ``step`` it."""

    @abc.abstractmethod
    def init(self, model: eqx.Module, *, key: PRNGKeyArray | None = None) -> PyTree:
        """The carry at the start of a stream (model state from ``model.initial_state()``)."""

    @abc.abstractmethod
    def step(
        self, model: eqx.Module, carry: PyTree, x: Array, target: Any, loss_fn: LossFn
    ) -> tuple[PyTree, StepOutput]:
        """Advance ``carry`` by input ``x``; return the new carry and this step's output."""


    def scan_unroll(self, model: eqx.Module) -> int:
        """How many steps a ``lax.scan`` over :meth:`step` should take per iteration
        (its ``unroll``) for ``model``: 1 unless the estimator's in-place updates need two
        buffers to alternate between (dense RTRL).  rtrlax's own scans use it."""
        return 1

    def batch_step(
        self, model: eqx.Module, carry: PyTree, x: Array, target: Any, loss_fn: LossFn
    ) -> tuple[PyTree, StepOutput]:
        """``step`` for a batch of independent streams (every argument but ``model`` has a
        leading stream axis); the returned ``grads`` are the mean over streams, the
        returned ``y`` and ``loss`` stay per stream.  The default vmaps :meth:`step`;
        estimators may override it with something cheaper."""
        carry, out = jax.vmap(self.step, in_axes=(None, 0, 0, 0, None))(
            model, carry, x, target, loss_fn
        )
        return carry, out._replace(grads=jax.tree_util.tree_map(mean_over_streams, out.grads))


def sum_over_streams(g: Array, weight: float = 1.0) -> Array:
    """``weight ×`` the sum over the leading (stream) axis, written as a ``tensordot`` with
    a weight vector: XLA on CPU reduces a large ``[B, ...]`` array along its major axis
    several times slower than it runs the equivalent matrix-vector product."""
    return jnp.tensordot(jnp.full((g.shape[0],), weight, g.dtype), g, axes=1)


def mean_over_streams(g: Array) -> Array:
    """Mean over the leading (stream) axis (see :func:`sum_over_streams`)."""
    return sum_over_streams(g, 1.0 / g.shape[0])


def split_params(model: eqx.Module):
    """``(params, static)``: the inexact arrays of ``model`` (its trainable parameters;
    boolean masks stay static) and the rest."""
    return eqx.partition(model, eqx.is_inexact_array)


def bind_estimator(estimator: AbstractEstimator, model: eqx.Module) -> AbstractEstimator:
    """Give an estimator the chance to read host-side facts of ``model`` before ``jit``
    (e.g. SnAp-n's pattern sizes from the masks): calls ``estimator.bind(model)`` when
    the estimator defines it.  ``accumulate_grads`` and ``OnlineLearner`` do this for you."""
    bind = getattr(estimator, "bind", None)
    return estimator if bind is None else bind(model)


def check_sequence(model, xs, targets) -> None:
    """A ValueError unless ``xs`` is ``[T, input_size]`` and every target leaf has leading axis T."""
    xs_shape = jnp.shape(xs)
    input_size = getattr(model, "input_size", None)
    if len(xs_shape) != 2 or (input_size is not None and xs_shape[1] != input_size):
        want = f"[T, {input_size}]" if input_size is not None else "[T, input_size]"
        raise ValueError(f"xs must have shape {want} (time first, unbatched), got {xs_shape}.")
    for leaf in jax.tree_util.tree_leaves(targets):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != xs_shape[0]:
            raise ValueError(
                f"every leaf of targets needs leading axis T = {xs_shape[0]} (one target "
                f"per input step), got a leaf of shape {jnp.shape(leaf)}."
            )
