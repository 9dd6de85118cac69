"""The online meta-gradient through LMS head updates (learning/meta.py), float64."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from rtrlax.learning.meta import (
    OnlineMetaGradient,
    exact_meta_gradient,
    meta_objective,
    online_meta_gradient,
    truncated_meta_gradient,
)

ALPHA = 0.1


def episode(seed, columns, T, d=5, density=0.0):
    rng = np.random.RandomState(seed)  # numpy draws: no eager jax ops to dispatch
    cell = rx.Columnar(d, columns, density=density, key=jax.random.key(seed))
    xs = jnp.asarray(rng.binomial(1, 0.5, (T, d)), jnp.float64)
    ys = jnp.asarray(rng.uniform(-5.0, 5.0, T))
    w0 = jnp.asarray(rng.normal(size=columns))
    return cell, xs, ys, w0


def rel(a, b):
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize(
    "seed,columns,T", [(0, 1, 6), (1, 3, 12), pytest.param(2, 5, 20, marks=pytest.mark.slow)]
)
def test_dense_online_meta_gradient_equals_jax_grad_at_rho_zero(seed, columns, T):
    cell, xs, ys, w0 = episode(seed, columns, T)
    ref, ref_losses = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    got, losses = online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, head="dense")
    assert rel(got, ref) <= 1e-10
    assert jnp.allclose(losses, ref_losses, rtol=1e-12, atol=1e-12)


def test_column_local_head_sensitivity_is_exact_for_one_column_and_biased_for_more():
    cell, xs, ys, w0 = episode(3, 1, 6)
    ref, _ = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    got, _ = online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, head="column")
    assert rel(got, ref) <= 1e-10
    cell, xs, ys, w0 = episode(4, 3, 12)
    ref, _ = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    got, _ = online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, head="column")
    assert 1e-6 < rel(got, ref) < 1.0  # an approximation: off, but not unrelated


def test_plain_gradient_is_the_gradient_with_the_head_path_stopped():
    cell, xs, ys, w0 = episode(5, 3, 12)
    params, static = eqx.partition(cell, eqx.is_inexact_array)

    def stopped(p):  # the inner updates' dependence on θ cut: w_t a constant
        c = eqx.combine(p, static)

        def body(carry, xy):
            s, w = carry
            s, h = c(s, xy[0])
            e = xy[1] - jnp.dot(w, h)
            return (s, jax.lax.stop_gradient(w + ALPHA * e * h)), 0.5 * e**2

        return jax.lax.scan(body, (c.initial_state(), w0), (xs, ys))[1].sum()

    ref = jax.grad(stopped)(params)
    got, _ = online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, head="none")
    assert rel(got, ref) <= 1e-10
    full, _ = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    assert rel(got, full) > 1e-3  # the meta-gradient's head path matters here


def test_cross_column_density_makes_the_dense_variant_approximate():
    cell, xs, ys, w0 = episode(6, 3, 12, density=0.5)
    assert cell.weight_hh is not None
    ref, _ = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    got, _ = online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, head="dense")
    assert 1e-6 < rel(got, ref) < 1.0
    masked = jnp.where(cell.mask_hh, 0.0, got.weight_hh)
    assert jnp.all(masked == 0)  # absent connections get no gradient


def test_truncated_meta_gradient_is_exact_with_one_window_and_biased_with_short_ones():
    cell, xs, ys, w0 = episode(7, 3, 12)
    ref, ref_losses = exact_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0)
    whole, _ = truncated_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, truncation=12)
    assert rel(whole, ref) <= 1e-10
    short, losses = truncated_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=w0, truncation=5)
    assert rel(short, ref) > 1e-3
    assert jnp.allclose(losses, ref_losses, rtol=1e-12)  # 2 windows of 5 and one of 2


def test_meta_objective_is_the_unrolled_lms_learner():
    cell, xs, ys, w0 = episode(8, 2, 3)

    @jax.jit
    def both(cell, xs, ys, w0):
        total, (losses, _, w_T) = meta_objective(cell, xs, ys, alpha=ALPHA, w0=w0)
        s, w, by_hand = cell.initial_state(), w0, []
        for x, y in zip(xs, ys):  # unrolled at trace time: the LMS learner written out
            s, h = cell(s, x)
            e = y - w @ h
            by_hand.append(0.5 * e**2)
            w = w + ALPHA * e * h
        return total, losses, w_T, jnp.stack(by_hand), w

    total, losses, w_T, by_hand, w = both(cell, xs, ys, w0)
    assert jnp.allclose(losses, by_hand, rtol=1e-12)
    assert jnp.allclose(w_T, w, rtol=1e-12) and jnp.isclose(total, by_hand.sum())


def test_bad_input_is_rejected_with_the_fix():
    cell, xs, ys, w0 = episode(9, 2, 4)
    with pytest.raises(ValueError, match="rx.Columnar"):
        online_meta_gradient(rx.GRU(5, 2, key=jax.random.key(0)), xs, ys, alpha=ALPHA)
    with pytest.raises(ValueError, match="xs must have shape"):
        online_meta_gradient(cell, xs[:, :3], ys, alpha=ALPHA)
    with pytest.raises(ValueError, match="ys"):
        exact_meta_gradient(cell, xs, ys[:3], alpha=ALPHA)
    with pytest.raises(ValueError, match="alpha"):
        OnlineMetaGradient(-1.0)
    with pytest.raises(ValueError, match="head must be one of"):
        OnlineMetaGradient(0.1, head="diagonal")
    with pytest.raises(ValueError, match="w0"):
        online_meta_gradient(cell, xs, ys, alpha=ALPHA, w0=jnp.zeros(3))
    with pytest.raises(ValueError, match="truncation"):
        truncated_meta_gradient(cell, xs, ys, alpha=ALPHA, truncation=0)
