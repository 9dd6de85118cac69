"""UORO and KF-RTRL: unbiased (seed-average → true gradient, within the measured
standard error); RFLO: its exact limits; all three: input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlax as rx
from rtrlax.diagnostics import bias_variance, flatten


def mse(y, t):
    return jnp.sum((y - t) ** 2)


def problem(cell=rx.VanillaRNN, hidden=4, steps=8, seed=0, density=1.0):
    k = jax.random.split(jax.random.key(seed), 4)
    core = cell(2, hidden, key=k[0], density=density)
    model = rx.Readout(core, 1, key=k[1])
    xs = jax.random.normal(k[2], (steps, 2))
    ts = jax.random.normal(k[3], (steps, 1))
    return model, xs, ts


SEEDS = jax.random.split(jax.random.key(123), 400)


@pytest.mark.parametrize(
    "estimator,cell,density",
    [
        (rx.UORO(), rx.VanillaRNN, 1.0),
        pytest.param(rx.UORO(), rx.GRU, 1.0, marks=pytest.mark.slow),
        pytest.param(rx.KFRTRL(), rx.VanillaRNN, 1.0, marks=pytest.mark.slow),
        (rx.KFRTRL(), rx.VanillaRNN, 0.5),
    ],
    ids=["uoro-rnn", "uoro-gru", "kf-rnn", "kf-rnn-sparse"],
)
def test_stochastic_estimators_are_unbiased(estimator, cell, density):
    model, xs, ts = problem(cell, density=density)
    bv = bias_variance(estimator, model, xs, ts, mse, SEEDS)
    # every stochastic entry's seed-average lies within a few standard errors of the
    # truth (≈30 entries: |z| < 4.5 has probability > 0.9998 each under unbiasedness)
    assert bv.max_abs_z < 4.5
    # deterministic entries (readout) are exact
    assert bv.deterministic_error < 1e-10
    assert bv.relative_variance > 1e-4  # genuinely random, so the test has teeth
    # the bias is small compared with the spread of one estimate
    assert bv.relative_bias < 3 * np.sqrt(float(bv.relative_variance) / bv.seeds)


def test_the_unbiasedness_check_rejects_a_biased_estimator():
    """The same statistic with a biased mean (RFLO's gradient, measured against UORO's
    standard errors at the same seed count) fails: the test has power."""
    model, xs, ts = problem()
    samples = jax.vmap(
        lambda k: flatten(rx.accumulate_grads(rx.UORO(), model, xs, ts, mse, key=k)[0])
    )(SEEDS)
    truth = flatten(rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)[0])
    biased = flatten(rx.accumulate_grads(rx.RFLO(), model, xs, ts, mse)[0])
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    live = se > 0
    z_biased = jnp.abs((biased - truth) / jnp.where(live, se, 1))
    assert jnp.max(jnp.where(live, z_biased, 0)) > 4.5


def test_stochastic_estimators_depend_on_the_key_and_default_to_one():
    model, xs, ts = problem()
    for est in [rx.UORO(), rx.KFRTRL()]:
        g1 = flatten(rx.accumulate_grads(est, model, xs, ts, mse, key=jax.random.key(1))[0])
        g2 = flatten(rx.accumulate_grads(est, model, xs, ts, mse, key=jax.random.key(2))[0])
        g0 = flatten(rx.accumulate_grads(est, model, xs, ts, mse)[0])
        g0b = flatten(rx.accumulate_grads(est, model, xs, ts, mse, key=jax.random.key(0))[0])
        assert not jnp.allclose(g1, g2)
        np.testing.assert_array_equal(g0, g0b)


def test_rflo_tau_one_is_the_instantaneous_gradient():
    model, xs, ts = problem(hidden=5)
    g = flatten(rx.accumulate_grads(rx.RFLO(), model, xs, ts, mse)[0])
    g1 = flatten(rx.accumulate_grads(rx.TBPTT(1), model, xs, ts, mse)[0])
    assert float(jnp.linalg.norm(g - g1) / jnp.linalg.norm(g1)) < 1e-12


def test_rflo_trace_is_the_leaky_filter_of_the_immediate_jacobian():
    """With tau > 1 the trace equals Σ_s (1-1/τ)^{t-s} Ī_s / τ: check on W_ih of a
    one-step-old contribution against a hand computation on two steps."""
    model, xs, ts = problem(hidden=3, steps=2)
    core = model.core
    tau = 4.0
    carry = rx.RFLO(tau).init(model)
    step = jax.jit(lambda c, x, t: rx.RFLO(tau).step(model, c, x, t, mse)[0])
    for x, t in zip(xs, ts):
        carry = step(carry, x, t)
    # hand computation: Ī_s[c, g, i, j] = tanh'(a_s[i]) x_s[j]
    h = jnp.zeros(3)
    expected = jnp.zeros((1, 1, 3, 2))
    for x in xs:
        a = core.weight_ih[0] @ x + core.bias_ih[0] + core.weight_hh[0] @ h
        imm = (1 - jnp.tanh(a) ** 2)[:, None] * x[None, :]
        expected = (1 - 1 / tau) * expected + imm[None, None] / tau
        h = jnp.tanh(a)
    (trace,) = carry.traces[0].weight_ih  # one state component
    np.testing.assert_allclose(trace, expected[0], rtol=1e-12)


def test_rflo_tau_filters_and_stays_biased_but_aligned():
    model, xs, ts = problem(hidden=5, steps=20, seed=3)
    truth = flatten(rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)[0])
    g = flatten(rx.accumulate_grads(rx.RFLO(3.0), model, xs, ts, mse)[0])
    cos = float(jnp.dot(g, truth) / jnp.linalg.norm(g) / jnp.linalg.norm(truth))
    assert 0.0 < cos < 1 - 1e-6


def test_unsupported_cells_and_bad_arguments_raise():
    gru, xs, ts = problem(rx.GRU)
    with pytest.raises(ValueError, match="VanillaRNN"):
        rx.accumulate_grads(rx.KFRTRL(), gru, xs, ts, mse)
    with pytest.raises(ValueError, match="VanillaRNN"):
        rx.accumulate_grads(rx.RFLO(), gru, xs, ts, mse)
    with pytest.raises(ValueError, match="tau"):
        rx.RFLO(0.5)
    for cls in [rx.UORO, rx.KFRTRL]:
        with pytest.raises(ValueError, match="eps"):
            cls(eps=0.0)


def test_uoro_carry_has_a_key_the_learner_can_redraw():
    model, _, _ = problem()
    carry = rx.UORO().init(model, key=jax.random.key(3))
    assert hasattr(carry, "key") and hasattr(carry, "_replace")
    carry = rx.KFRTRL().init(model, key=jax.random.key(3))
    assert hasattr(carry, "key") and hasattr(carry, "_replace")
