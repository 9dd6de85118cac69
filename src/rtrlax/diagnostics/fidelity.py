"""Gradient fidelity: how close an online estimator's gradient is to the true one.

Everything is built on :func:`rtrlax.accumulate_grads`: an estimator's gradient summed
over a sequence (parameters held fixed) is compared with ``rx.BPTT()``'s, which is
exactly ``jax.grad`` of the summed loss.

* :func:`cosine_similarity`, :func:`sign_agreement`, :func:`relative_error`,
  :func:`mean_abs_difference` — metrics on two gradient pytrees;
* :func:`gradient_fidelity` — all of them for one model and sequence;
* :func:`fidelity_over_problems` — their mean and spread over random models/sequences;
* :func:`bias_variance` — for stochastic estimators (UORO, KF-RTRL): the seed-average
  against the truth (relative bias, per-entry z-scores using the measured standard
  error) and the variance over seeds.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..estimators.bptt import BPTT
from ..learning.accumulate import accumulate_grads


def flatten(grads: PyTree) -> Float[Array, " params"]:
    """All leaves of a gradient pytree as one vector (``None`` leaves skipped)."""
    return ravel_pytree(grads)[0]


def cosine_similarity(estimate: PyTree, reference: PyTree) -> Float[Array, ""]:
    """``⟨g, g*⟩ / (‖g‖ ‖g*‖)`` (0 when either is zero)."""
    a, b = flatten(estimate), flatten(reference)
    denom = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    return jnp.where(denom > 0, jnp.dot(a, b) / jnp.where(denom > 0, denom, 1), 0.0)


def sign_agreement(estimate: PyTree, reference: PyTree) -> Float[Array, ""]:
    """Share of parameters whose estimated gradient has the true gradient's sign,
    among the parameters whose true gradient is non-zero (masked weights excluded)."""
    a, b = flatten(estimate), flatten(reference)
    live = b != 0
    agree = (jnp.sign(a) == jnp.sign(b)) & live
    return agree.sum() / jnp.maximum(live.sum(), 1)


def relative_error(estimate: PyTree, reference: PyTree) -> Float[Array, ""]:
    """``‖g − g*‖ / ‖g*‖``."""
    a, b = flatten(estimate), flatten(reference)
    return jnp.linalg.norm(a - b) / jnp.linalg.norm(b)


def mean_abs_difference(estimate: PyTree, reference: PyTree) -> Float[Array, ""]:
    """Mean over parameters of ``|g − g*|`` (the ColoR paper's second metric)."""
    a, b = flatten(estimate), flatten(reference)
    return jnp.mean(jnp.abs(a - b))


class Fidelity(NamedTuple):
    cosine: Float[Array, "..."]
    sign_agreement: Float[Array, "..."]
    relative_error: Float[Array, "..."]
    mean_abs_difference: Float[Array, "..."]


def _metrics(estimate, reference) -> Fidelity:
    return Fidelity(
        cosine_similarity(estimate, reference),
        sign_agreement(estimate, reference),
        relative_error(estimate, reference),
        mean_abs_difference(estimate, reference),
    )


def gradient_fidelity(
    estimator,
    model,
    xs: Array,
    targets: PyTree,
    loss_fn: Callable,
    *,
    key: PRNGKeyArray | None = None,
    reference: PyTree | None = None,
) -> Fidelity:
    """The estimator's summed gradient over ``xs`` against BPTT's (or ``reference``)."""
    if reference is None:
        reference, _ = accumulate_grads(BPTT(), model, xs, targets, loss_fn)
    estimate, _ = accumulate_grads(estimator, model, xs, targets, loss_fn, key=key)
    return _metrics(estimate, reference)


class FidelitySummary(NamedTuple):
    mean: Fidelity  #: each metric's mean over problems
    std: Fidelity  #: and its standard deviation
    per_problem: Fidelity  #: each metric for every problem (leading axis)


def fidelity_over_problems(
    estimator,
    make_problem: Callable[[PRNGKeyArray], tuple],
    keys: PRNGKeyArray,
) -> FidelitySummary:
    """Fidelity over random problems.

    ``make_problem(key) -> (model, xs, targets, loss_fn)`` draws a random model and
    sequence; ``keys`` (a batch of keys) gives one problem each, and the estimator's
    own randomness (if any) uses a key derived from the same key.
    """
    rows = []
    for key in keys:
        k_problem, k_est = jax.random.split(key)
        model, xs, targets, loss_fn = make_problem(k_problem)
        rows.append(gradient_fidelity(estimator, model, xs, targets, loss_fn, key=k_est))
    per = Fidelity(*(jnp.stack(col) for col in zip(*rows)))
    return FidelitySummary(
        Fidelity(*(jnp.mean(c) for c in per)), Fidelity(*(jnp.std(c) for c in per)), per
    )


class BiasVariance(NamedTuple):
    mean: Float[Array, " params"]  #: the seed-average of the (flattened) estimate
    reference: Float[Array, " params"]  #: the true gradient
    relative_bias: Float[Array, ""]  #: ‖mean − g*‖ / ‖g*‖
    relative_variance: Float[Array, ""]  #: E‖g − mean‖² / ‖g*‖² (per seed)
    max_abs_z: Float[Array, ""]  #: max over stochastic entries of |mean − g*| / standard error
    deterministic_error: Float[Array, ""]  #: max |mean − g*| over entries with no variance
    seeds: int


def bias_variance(
    estimator,
    model,
    xs: Array,
    targets: PyTree,
    loss_fn: Callable,
    keys: PRNGKeyArray,
    *,
    reference: PyTree | None = None,
) -> BiasVariance:
    """Bias and variance of a stochastic estimator over seeds (``keys``, one per seed).

    For an unbiased estimator ``max_abs_z`` behaves like the largest of a few
    standard-normal draws (≲ 4 for tens of entries) and shrinks the relative bias as
    ``1/sqrt(seeds)``; a biased one shows ``max_abs_z`` growing with the seeds.
    """
    if reference is None:
        reference, _ = accumulate_grads(BPTT(), model, xs, targets, loss_fn)
    ref = flatten(reference)
    samples = jax.vmap(
        lambda k: flatten(accumulate_grads(estimator, model, xs, targets, loss_fn, key=k)[0])
    )(keys)
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"bias_variance needs at least 2 seeds (keys), got {n}.")
    mean = samples.mean(0)
    ref_sq = jnp.sum(ref**2)
    se = samples.std(0, ddof=1) / np.sqrt(n)
    stochastic = se > 1e-9 * jnp.sqrt(ref_sq / ref.size)
    z = jnp.where(stochastic, (mean - ref) / jnp.where(stochastic, se, 1), 0)
    det = jnp.where(stochastic, 0, jnp.abs(mean - ref))
    return BiasVariance(
        mean,
        ref,
        jnp.linalg.norm(mean - ref) / jnp.sqrt(ref_sq),
        jnp.mean(jnp.sum((samples - mean) ** 2, axis=1)) / ref_sq,
        jnp.max(jnp.abs(z)),
        jnp.max(det),
        n,
    )
