"""Animal-learning streams: trial structure, distractor rates, the true return."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrlax.tasks.animal import (
    discounted_return,
    noisy_patterning,
    trace_conditioning,
    trace_patterning,
)


def _stream(env, n, seed=0):
    _, smp = jax.jit(env.generate, static_argnums=1)(env.init(jax.random.key(seed)), n)
    return np.asarray(smp.x), np.asarray(smp.cumulant)


@pytest.mark.parametrize("isi", [(14, 26), (24, 36)])
def test_trace_patterning_trials(isi):
    env = trace_patterning(isi=isi)
    assert env.input_size == 12 and env.us_index == 6
    x, c = _stream(env, 20000)
    assert np.array_equal(c, x[:, 6])
    cs_steps = np.where(x[:, :6].sum(1) > 0)[0]
    assert np.all(x[cs_steps, :6].sum(1) == 3)  # 3-of-6 patterns
    gaps = np.diff(cs_steps)
    assert gaps.min() >= isi[0] + 80 and gaps.max() <= isi[1] + 120
    valid = {tuple(p) for p, v in zip(env.patterns, env.us_prob) if v == 1.0}
    assert len(valid) == 10
    us_steps = set(np.where(c > 0)[0].tolist())
    n_valid = 0
    for t in cs_steps[:-1]:
        pattern = tuple(x[t, :6].tolist())
        fired = [t + d for d in range(isi[0], isi[1] + 1) if t + d in us_steps]
        if pattern in valid:
            n_valid += 1
            assert len(fired) == 1
        else:
            assert fired == []
    assert 0.3 < n_valid / (len(cs_steps) - 1) < 0.7
    assert len(us_steps) == n_valid + (1 if max(us_steps) > cs_steps[-1] else 0)
    rates = x[:, 7:].mean(0)
    assert np.allclose(rates, 0.1 / np.arange(1, 6), rtol=0.25)


def test_trace_conditioning_always_fires():
    env = trace_conditioning()
    x, c = _stream(env, 5000, seed=3)
    assert env.input_size == 7
    cs = np.where(x[:, 0] > 0)[0]
    us = np.where(c > 0)[0]
    assert len(us) in (len(cs), len(cs) - 1)
    assert np.all((us - cs[: len(us)] >= 14) & (us - cs[: len(us)] <= 26))


def test_noisy_patterning_fires_on_some_invalid_patterns():
    env = noisy_patterning()
    x, c = _stream(env, 40000, seed=1)
    invalid = {tuple(p) for p, v in zip(env.patterns, env.us_prob) if v < 0.5}
    us = set(np.where(c > 0)[0].tolist())
    cs = np.where(x[:, :6].sum(1) > 0)[0]
    fired_invalid = sum(
        any(t + d in us for d in range(14, 27)) for t in cs[:-1] if tuple(x[t, :6].tolist()) in invalid
    )
    assert fired_invalid > 0


def test_discounted_return_matches_direct_sum():
    c = jax.random.bernoulli(jax.random.key(0), 0.1, (200,)).astype(jnp.float64)
    g = discounted_return(c, 0.9)
    cn = np.asarray(c)
    direct = [np.sum(0.9 ** np.arange(200 - t - 1) * cn[t + 1 :]) for t in range(200)]
    assert np.allclose(g, direct, atol=1e-12)
    assert float(g[-1]) == 0.0


def test_generate_is_a_scan_of_step_with_and_sample_draws_one_step():
    env = trace_patterning()
    state = env.init(jax.random.key(4))
    us = jax.random.uniform(jax.random.key(5), (300, env.n_uniforms))
    _, a = jax.lax.scan(env.step_with, state, us)
    s, step = state, jax.jit(env.step_with)
    for t in range(3):  # the first steps by hand agree with the scan
        s, b = step(s, us[t])
        assert np.array_equal(np.asarray(a.x[t]), np.asarray(b.x))
    s1, smp = jax.jit(env.sample)(state)
    assert smp.x.shape == (12,)
    assert not np.array_equal(np.asarray(jax.random.key_data(s1.key)),
                              np.asarray(jax.random.key_data(state.key)))


def test_bad_configuration():
    with pytest.raises(ValueError, match="isi"):
        trace_patterning(isi=(20, 10))
    with pytest.raises(ValueError, match="gamma"):
        trace_patterning(gamma=1.0)
