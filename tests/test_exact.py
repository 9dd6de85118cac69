"""Exact estimators equal jax.grad through the unrolled sequence (float64)."""

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtrlax as rx
from helpers import CELLS, bptt, diagonal_recurrence, make_cell, mse, rel_err, sequence


def unrolled_grad(model, xs, ts):
    """jax.grad of the summed loss through a Python-unrolled loop (independent of lax.scan)."""
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_inexact_array)

    def total(params):
        m = eqx.combine(params, static)
        s, loss = m.initial_state(), 0.0
        for t in range(xs.shape[0]):
            s, y = m(s, xs[t])
            loss = loss + mse(y, ts[t])
        return loss

    return jax.grad(total)(params)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("density", [1.0, 0.4])
def test_bptt_equals_unrolled_jax_grad(name, density):
    cell = make_cell(name, 3, 4, seed=0, density=density, input_density=density)
    xs, ts = sequence(0, 6, 3, 4)
    grads, losses = bptt(cell, xs, ts)
    assert losses.shape == (6,)
    assert rel_err(grads, unrolled_grad(cell, xs, ts)) < 1e-12


# sizes from small fixed sets: examples that share (cell, hidden, d_in, steps) reuse the
# compiled functions (density and seed change only array values)
@settings(max_examples=10, deadline=None)
@given(
    name=st.sampled_from(sorted(CELLS)),
    hidden=st.sampled_from([1, 4]),
    d_in=st.sampled_from([2]),
    steps=st.sampled_from([1, 7]),
    density=st.sampled_from([1.0, 0.5, 0.25]),
    seed=st.integers(0, 2**16),
)
def test_rtrl_equals_bptt(name, hidden, d_in, steps, density, seed):
    cell = make_cell(name, d_in, hidden, seed, density, density)
    xs, ts = sequence(seed, steps, d_in, hidden)
    g_rtrl, l_rtrl = rx.accumulate_grads(rx.RTRL(), cell, xs, ts, mse)
    g_bptt, l_bptt = bptt(cell, xs, ts)
    assert rel_err(g_rtrl, g_bptt) <= 1e-10
    assert jnp.allclose(l_rtrl, l_bptt, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("density", [1.0, 0.3])
def test_rtrl_with_readout_equals_bptt(name, density):
    cell = make_cell(name, 3, 5, seed=7, density=density)
    net = rx.Readout(cell, 2, key=jax.random.key(8))
    xs, ts = sequence(7, 8, 3, 2)
    assert rel_err(rx.accumulate_grads(rx.RTRL(), net, xs, ts, mse)[0], bptt(net, xs, ts)[0]) <= 1e-10


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("truncation", [7, 12])
def test_tbptt_with_long_window_equals_bptt(name, truncation):
    cell = make_cell(name, 2, 4, seed=3, density=0.5)
    xs, ts = sequence(3, 7, 2, 4)
    g, _ = rx.accumulate_grads(rx.TBPTT(truncation), cell, xs, ts, mse)
    assert rel_err(g, bptt(cell, xs, ts)[0]) <= 1e-10


@pytest.mark.parametrize("name", sorted(CELLS))
def test_tbptt1_is_the_instantaneous_gradient(name):
    import equinox as eqx

    cell = make_cell(name, 2, 4, seed=5)
    xs, ts = sequence(5, 6, 2, 4)
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    # instantaneous: d loss_t / d theta with s_{t-1} held constant
    s, total = cell.initial_state(), jax.tree_util.tree_map(jnp.zeros_like, params)
    for t in range(6):
        g = jax.grad(lambda p: mse(eqx.combine(p, static)(s, xs[t])[1], ts[t]))(params)
        total = jax.tree_util.tree_map(jnp.add, total, g)
        s, _ = cell(s, xs[t])
    g1, _ = rx.accumulate_grads(rx.TBPTT(1), cell, xs, ts, mse)
    assert rel_err(g1, total) <= 1e-10
    # and a window between the extremes is neither
    g3, _ = rx.accumulate_grads(rx.TBPTT(3), cell, xs, ts, mse)
    assert rel_err(g3, total) > 1e-6 and rel_err(g3, bptt(cell, xs, ts)[0]) > 1e-6


@pytest.mark.parametrize("name", sorted(CELLS))
def test_snap1_is_exact_on_diagonal_recurrence(name):
    cell = diagonal_recurrence(make_cell(name, 3, 5, seed=11))
    net = rx.Readout(cell, 2, key=jax.random.key(12))
    xs, ts = sequence(11, 9, 3, 2)
    g_snap, _ = rx.accumulate_grads(rx.SnAp(1), net, xs, ts, mse)
    g_rtrl, _ = rx.accumulate_grads(rx.RTRL(), net, xs, ts, mse)
    assert rel_err(g_snap, bptt(net, xs, ts)[0]) <= 1e-10
    assert rel_err(g_rtrl, g_snap) <= 1e-10


@pytest.mark.parametrize("name", sorted(CELLS))
def test_snap1_is_approximate_on_dense_recurrence(name):
    cell = make_cell(name, 3, 5, seed=13)
    xs, ts = sequence(13, 9, 3, 5)
    err = rel_err(rx.accumulate_grads(rx.SnAp(1), cell, xs, ts, mse)[0], bptt(cell, xs, ts)[0])
    assert 1e-6 < err < 1.0


def test_accumulate_grads_rejects_bad_shapes():
    cell = rx.GRU(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[T, 3\]"):
        rx.accumulate_grads(rx.RTRL(), cell, jnp.ones((5, 2)), jnp.ones((5, 4)), mse)
    with pytest.raises(ValueError, match="leading axis T = 5"):
        rx.accumulate_grads(rx.RTRL(), cell, jnp.ones((5, 3)), jnp.ones((4, 4)), mse)


def test_grads_have_the_model_structure():
    import equinox as eqx

    net = rx.Readout(rx.LSTM(2, 3, key=jax.random.key(0)), 1, key=jax.random.key(1))
    xs, ts = sequence(0, 4, 2, 1)
    for est in [rx.RTRL(), rx.TBPTT(2), rx.SnAp(1), rx.BPTT()]:
        g, _ = rx.accumulate_grads(est, net, xs, ts, mse)
        assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(
            eqx.filter(net, eqx.is_inexact_array)
        )
