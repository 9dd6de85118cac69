"""``accumulate_grads``: the function every exactness test and fidelity diagnostic uses."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._types import LossFn, Params
from ..estimators.base import (
    AbstractEstimator,
    AbstractOnlineEstimator,
    bind_estimator,
    check_sequence,
)
from ..estimators.bptt import BPTT
from ._checks import check_finite, check_model, check_output_and_loss, check_steps


def accumulate_grads(
    estimator: AbstractEstimator,
    model: eqx.Module,
    xs: Array,
    targets: PyTree,
    loss_fn: LossFn,
    *,
    key: PRNGKeyArray | None = None,
) -> tuple[Params, Array]:
    """Run ``model`` over ``xs`` with fixed parameters; sum the estimator's gradients.

    Args:
        estimator: e.g. ``rx.RTRL()``, ``rx.SnAp(1)``, ``rx.BPTT()``.
        model: any rtrlax model (cell, ``rx.Readout``, stack), unbatched.
        xs: inputs of shape ``[T, input_size]``.
        targets: a pytree whose leaves have leading axis ``T``.
        loss_fn: ``loss_fn(y_t, targets[t]) -> scalar``.
        key: randomness for stochastic estimators (UORO, KF-RTRL).

    Returns:
        ``(grads, losses)``: ``grads`` is ``Σ_t`` of the estimator's online estimate of
        ``d loss_fn(y_t, targets[t]) / dθ``, shaped like
        ``eqx.filter(model, eqx.is_inexact_array)``; ``losses`` has shape ``[T]``.
        With ``rx.BPTT()`` this is exactly ``jax.grad`` of the summed loss.

    Raises:
        ValueError: before any work, for a sequence of zero steps, inputs or targets
            holding NaN/Inf (naming the step), targets whose per-step shape does not
            match the model's output, or a ``loss_fn`` that fails or is not scalar.
    """
    if not isinstance(estimator, AbstractEstimator):
        raise ValueError(
            f"estimator must be an rtrlax estimator (e.g. rx.RTRL()), got {type(estimator).__name__}."
        )
    check_model(model)
    check_sequence(model, xs, targets)
    check_steps(jnp.shape(xs)[0], "xs")
    check_finite("xs", xs)
    for leaf in jax.tree_util.tree_leaves(targets):
        check_finite("targets", leaf)
    check_output_and_loss(
        model, xs[0], jax.tree_util.tree_map(lambda a: a[0], targets), loss_fn
    )
    return _accumulate(bind_estimator(estimator, model), model, xs, targets, loss_fn, key)


@eqx.filter_jit
def _accumulate(estimator, model, xs, targets, loss_fn, key):
    if isinstance(estimator, BPTT):
        return estimator.accumulate(model, xs, targets, loss_fn)
    if not isinstance(estimator, AbstractOnlineEstimator):
        raise ValueError(f"{type(estimator).__name__} is not an rtrlax estimator.")
    carry = estimator.init(model, key=key)
    zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))

    def body(acc, xt):
        carry, total = acc
        x, target = xt
        carry, out = estimator.step(model, carry, x, target, loss_fn)
        total = jax.tree_util.tree_map(jnp.add, total, out.grads)
        return (carry, total), out.loss

    unroll = estimator.scan_unroll(model)
    (_, grads), losses = jax.lax.scan(body, (carry, zero), (xs, targets), unroll=unroll)
    return grads, losses
