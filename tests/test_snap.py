"""SnAp-n: exactness limits (n >= k = RTRL; n = 1 on diagonal recurrence), the kept
pattern against a dense Jacobian's structure, storage, and input validation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from rtrlax.estimators._pattern import pattern_sizes
from rtrlax.estimators._traces import core_params
from rtrlax.estimators.snap import kept_support, snapn_influence, snapn_init

CELLS = [rx.VanillaRNN, rx.GRU, rx.LSTM]


def mse(y, t):
    return jnp.sum((y - t) ** 2)


def flat(tree):
    return ravel_pytree(tree)[0]


def rel_err(a, b):
    a, b = flat(a), flat(b)
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def problem(cell, hidden, density, seed, steps=10, inputs=3, outputs=2):
    k = jax.random.split(jax.random.key(seed), 4)
    core = cell(inputs, hidden, key=k[0], density=density, input_density=min(1.0, density + 0.4))
    model = rx.Readout(core, outputs, key=k[1])
    xs = jax.random.normal(k[2], (steps, inputs))
    ts = jax.random.normal(k[3], (steps, outputs))
    return model, xs, ts


@pytest.mark.parametrize("cell,hidden,seed", [(rx.VanillaRNN, 6, 0), (rx.GRU, 5, 1), (rx.LSTM, 4, 2)])
@pytest.mark.parametrize("density", [1.0, 0.35])
def test_snap_n_large_equals_rtrl_and_bptt(cell, density, hidden, seed):
    model, xs, ts = problem(cell, hidden, density, seed)
    est = rx.SnAp(hidden).bind(model)
    g, losses = rx.accumulate_grads(est, model, xs, ts, mse)
    g_rtrl, losses_rtrl = rx.accumulate_grads(rx.RTRL(), model, xs, ts, mse)
    g_bptt, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)
    assert rel_err(g, g_rtrl) <= 1e-10
    assert rel_err(g, g_bptt) <= 1e-10
    np.testing.assert_allclose(losses, losses_rtrl, rtol=1e-12)


def test_snap2_is_approximate_on_sparse_nets_and_between_snap1_and_rtrl():
    """On a sparse net SnAp-2 is not exact yet, and closer to the truth than SnAp-1."""
    model, xs, ts = problem(rx.GRU, 8, 0.2, seed=3, steps=15)
    g_bptt, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)
    e1 = rel_err(rx.accumulate_grads(rx.SnAp(1), model, xs, ts, mse)[0], g_bptt)
    e2 = rel_err(rx.accumulate_grads(rx.SnAp(2).bind(model), model, xs, ts, mse)[0], g_bptt)
    assert 1e-6 < e2 < e1


def diagonal(core):
    k = core.hidden_size
    mask = jnp.broadcast_to(jnp.eye(k, dtype=bool), core.weight_hh.shape)
    return eqx.tree_at(
        lambda c: (c.weight_hh, c.mask_hh),
        core,
        (jnp.where(mask, core.weight_hh, 0), mask),
        is_leaf=lambda x: x is None,
    )


@pytest.mark.parametrize(
    "cell,seed",
    [
        pytest.param(rx.VanillaRNN, 0, marks=pytest.mark.slow),  # also in test_exact.py
        (rx.GRU, 1),
        pytest.param(rx.LSTM, 2, marks=pytest.mark.slow),
    ],
)
def test_snap1_equals_rtrl_on_diagonal_recurrence(cell, seed):
    model, xs, ts = problem(cell, 5, 1.0, seed)
    model = eqx.tree_at(lambda m: m.core, model, diagonal(model.core))
    g, _ = rx.accumulate_grads(rx.SnAp(1), model, xs, ts, mse)
    g_rtrl, _ = rx.accumulate_grads(rx.RTRL(), model, xs, ts, mse)
    assert rel_err(g, g_rtrl) <= 1e-10
    # and SnAp-2 keeps no more than SnAp-1 needs here: its width is 1
    assert pattern_sizes(model.core, 2).width == 1


@eqx.filter_jit
def structural_pattern(core, n, seed=0):
    """Non-zero pattern of Ī + DĪ + ... + D^{n-1}Ī from dense jacfwd products at a
    random point (absolute values, so no cancellation)."""
    theta, unravel = ravel_pytree(core_params(core))
    static = eqx.filter(core, eqx.is_inexact_array, inverse=True)
    k1, k2 = jax.random.split(jax.random.key(seed))
    s0 = tuple(jax.random.normal(k, (core.hidden_size,)) for k in jax.random.split(k1, 2))
    s0 = s0[: len(core.initial_state())]
    s_flat, unravel_s = ravel_pytree(s0)
    x = jax.random.normal(k2, (core.input_size,))

    def f(theta, s):
        c = eqx.combine(unravel(theta), static)
        return ravel_pytree(c.update(unravel_s(s), x))[0]

    i_bar = jnp.abs(jax.jacfwd(f, argnums=0)(theta, s_flat))
    d = jnp.abs(jax.jacfwd(f, argnums=1)(theta, s_flat))
    total, term = i_bar, i_bar
    for _ in range(n - 1):
        term = d @ term
        total = total + term
    return total > 0


def kept_pattern(core, n):
    """The dense [S, P] pattern SnAp-n actually keeps: M·θ̇ with every kept slot = 1."""
    return _kept_pattern(core, n, pattern_sizes(core, n))


@eqx.filter_jit
def _kept_pattern(core, n, sizes):
    traces = snapn_init(core, n, sizes)
    ones = traces._replace(trace=kept_support(core, traces).astype(traces.trace.dtype))
    theta, unravel = ravel_pytree(core_params(core))

    def m_times(theta_dot):
        return ravel_pytree(snapn_influence(core, ones, unravel(theta_dot)))[0]

    return jax.jacfwd(m_times)(jnp.zeros_like(theta)) != 0, kept_support(core, traces).sum()


FAST_PATTERNS = {("GRU", 0.3, 1), ("GRU", 0.3, 2), ("LSTM", 0.3, 2), ("VanillaRNN", 1.0, 2)}


@pytest.mark.parametrize(
    "cell,density,n",
    [
        pytest.param(
            c, d, n, marks=() if (c.__name__, d, n) in FAST_PATTERNS else pytest.mark.slow
        )
        for c in CELLS
        for d in [1.0, 0.3]
        for n in [1, 2]
    ],
)
def test_kept_pattern_matches_dense_jacobian_structure(cell, density, n):
    core = cell(3, 7, key=jax.random.key(5), density=density, input_density=0.6)
    structural = np.asarray(structural_pattern(core, n))
    kept, count = kept_pattern(core, n)
    kept, count = np.asarray(kept), int(count)
    assert count == kept.sum()  # every stored slot is a distinct entry of M
    m = len(core.initial_state())
    if m == 1:
        assert (kept == structural).all()
        assert count == structural.sum()
    else:
        # LSTM: storage is per unit (all m components of a reached unit); the
        # structural pattern is finer (e.g. the output gate never touches c_i itself).
        k = core.hidden_size
        per_unit = lambda p: p.reshape(m, k, -1).any(0)  # noqa: E731
        assert not (structural & ~kept).any()
        assert (per_unit(kept) == per_unit(structural)).all()
        assert count == m * per_unit(structural).sum()


def test_snap2_storage_is_proportional_to_the_kept_entries():
    core = rx.GRU(4, 40, key=jax.random.key(0), density=0.1)
    model = rx.Readout(core, 2, key=jax.random.key(1))
    snap2 = jax.eval_shape(lambda: rx.SnAp(2).init(model))
    rtrl = jax.eval_shape(lambda: rx.RTRL().init(model))
    trace_size = snap2.traces[0].trace.size
    kept = int(kept_pattern(core, 2)[1])
    assert kept <= trace_size <= 2 * kept  # padding only
    assert trace_size < 0.15 * sum(block.size for block in rtrl.influence)


def test_unbound_snap_n_on_masked_cell_inside_jit_explains_the_fix():
    model, xs, ts = problem(rx.GRU, 5, 0.4, seed=0)
    with pytest.raises(ValueError, match="bind"):
        eqx.filter_jit(lambda m: rx.SnAp(2).init(m))(model)
    # bound (accumulate_grads binds for you) it works under jit
    bound = eqx.filter_jit(lambda m: rx.SnAp(2).bind(model).init(m))(model)
    assert bound.traces[0].trace.shape[2] == pattern_sizes(model.core, 2).width
    g, _ = rx.accumulate_grads(rx.SnAp(2), model, xs, ts, mse)
    g_bound, _ = rx.accumulate_grads(rx.SnAp(2).bind(model), model, xs, ts, mse)
    np.testing.assert_array_equal(flat(g), flat(g_bound))
    # outside jit the masks are concrete: init works unbound
    carry = rx.SnAp(2).init(model)
    assert carry.traces[0].trace.ndim == 4
    # dense cells need no binding at all
    dense, xs, ts = problem(rx.GRU, 4, 1.0, seed=0)
    g = eqx.filter_jit(lambda m: rx.SnAp(2).init(m))(dense)
    assert g.traces[0].trace.shape[2] == 4


def test_bad_n_and_unsupported_core():
    for bad in [0, -1, 1.5, True]:
        with pytest.raises(ValueError, match="n >= 1"):
            rx.SnAp(bad)

    class NotGated(rx.AbstractCell):
        input_size: int = 1
        hidden_size: int = 1

        def initial_state(self):
            return (jnp.zeros(1),)

        def update(self, state, x):
            return state

        def output(self, state):
            return state[0]

    with pytest.raises(ValueError, match="gated cells"):
        rx.SnAp(2).init(NotGated())
