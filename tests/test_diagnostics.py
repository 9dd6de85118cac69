"""rx.diagnostics: the metrics on hand-made gradients, and the drivers on estimators
whose answers are known (RTRL exact, SnAp-1 approximate, UORO random)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlax as rx
from rtrlax import diagnostics as dg


def test_metrics_on_hand_made_pytrees():
    ref = {"a": jnp.array([1.0, -2.0, 0.0]), "b": jnp.array([[3.0]])}
    assert float(dg.cosine_similarity(ref, ref)) == pytest.approx(1.0)
    neg = jax.tree_util.tree_map(lambda x: -x, ref)
    assert float(dg.cosine_similarity(neg, ref)) == pytest.approx(-1.0)
    est = {"a": jnp.array([1.0, 2.0, 5.0]), "b": jnp.array([[3.0]])}
    # signs: agree on entries 0 and 3, disagree on 1; entry 2 (true gradient 0) excluded
    assert float(dg.sign_agreement(est, ref)) == pytest.approx(2 / 3)
    diff = np.array([0.0, 4.0, 5.0, 0.0])
    assert float(dg.relative_error(est, ref)) == pytest.approx(np.linalg.norm(diff) / np.sqrt(14))
    assert float(dg.mean_abs_difference(est, ref)) == pytest.approx(diff.mean())
    zero = jax.tree_util.tree_map(jnp.zeros_like, ref)
    assert float(dg.cosine_similarity(zero, ref)) == 0.0


def mse(y, t):
    return jnp.sum((y - t) ** 2)


def make_problem(key, cell=rx.GRU, hidden=5, steps=12):
    k = jax.random.split(key, 4)
    model = rx.Readout(cell(3, hidden, key=k[0]), 2, key=k[1])
    xs = jax.random.bernoulli(k[2], 0.5, (steps, 3)).astype(jnp.float64)
    ts = jax.random.normal(k[3], (steps, 2))
    return model, xs, ts, mse


def test_gradient_fidelity_of_exact_and_approximate_estimators():
    model, xs, ts, loss = make_problem(jax.random.key(0))
    exact = dg.gradient_fidelity(rx.RTRL(), model, xs, ts, loss)
    assert float(exact.cosine) == pytest.approx(1.0, abs=1e-12)
    assert float(exact.relative_error) < 1e-10
    assert float(exact.sign_agreement) == 1.0
    approx = dg.gradient_fidelity(rx.SnAp(1), model, xs, ts, loss)
    assert 0.0 < float(approx.cosine) < 1.0 - 1e-6
    assert float(approx.relative_error) > 1e-6


def test_fidelity_over_problems_summarises_each_problem():
    keys = jax.random.split(jax.random.key(1), 3)
    summary = dg.fidelity_over_problems(rx.SnAp(1), make_problem, keys)
    assert summary.per_problem.cosine.shape == (3,)
    np.testing.assert_allclose(summary.mean.cosine, summary.per_problem.cosine.mean())
    np.testing.assert_allclose(summary.std.relative_error, summary.per_problem.relative_error.std())
    # each problem's value matches a direct call with the same derived keys
    k_problem, k_est = jax.random.split(keys[1])
    model, xs, ts, loss = make_problem(k_problem)
    direct = dg.gradient_fidelity(rx.SnAp(1), model, xs, ts, loss, key=k_est)
    np.testing.assert_allclose(summary.per_problem.cosine[1], direct.cosine, rtol=1e-12)


def test_bias_variance_of_deterministic_and_random_estimators():
    model, xs, ts, loss = make_problem(jax.random.key(2), cell=rx.VanillaRNN)
    keys = jax.random.split(jax.random.key(3), 64)
    exact = dg.bias_variance(rx.RTRL(), model, xs, ts, loss, keys)
    assert float(exact.relative_variance) < 1e-20
    assert float(exact.relative_bias) < 1e-10
    assert float(exact.deterministic_error) < 1e-10
    uoro = dg.bias_variance(rx.UORO(), model, xs, ts, loss, keys)
    assert float(uoro.relative_variance) > 1e-4
    assert uoro.seeds == 64
    with pytest.raises(ValueError, match="at least 2 seeds"):
        dg.bias_variance(rx.UORO(), model, xs, ts, loss, keys[:1])
