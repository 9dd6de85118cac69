"""SparseRTRL: exact (equals dense RTRL and BPTT) while skipping masked parameters and
inactive units, including steps where activity overflows the capacity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx
from rtrlax.diagnostics.accounting import sparse_rtrl_cost
from rtrlax.estimators.sparse_rtrl import num_columns


def _loss(y, t):
    return jnp.sum((y - t) ** 2)


def _relerr(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    num = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(la, lb)) ** 0.5
    return num / sum(float(jnp.sum(y**2)) for y in lb) ** 0.5


def _egru(seed, k, **kw):
    # threshold 0 and a narrow window: units fire often and also fall silent, so the
    # active set changes from step to step
    kw = {"threshold_init": 0.0, "pseudo_width": 0.4, **kw}
    return rx.EGRU(3, k, key=jax.random.key(seed), **kw)


def _data(seed, t, out):
    xs = 2 * jax.random.normal(jax.random.key(seed), (t, 3))
    ts = jax.random.normal(jax.random.key(seed + 1), (t, out))
    return xs, ts


CASES = [
    pytest.param("egru-dense-seed2", lambda: _egru(5, 6), 1, marks=pytest.mark.slow),
    ("egru-dense", lambda: _egru(0, 8), 1),
    ("egru-masked", lambda: _egru(1, 9, density=0.3, input_density=0.5), 2),
    ("egru-masked-readout", lambda: rx.Readout(_egru(2, 7, density=0.4), 3, key=jax.random.key(9)), 0.25),
    ("gru-masked", lambda: rx.GRU(3, 6, key=jax.random.key(3), density=0.5), 2),
    pytest.param("lstm-readout", lambda: rx.Readout(rx.LSTM(3, 5, key=jax.random.key(4)), 2, key=jax.random.key(5)), 1.0, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,make,capacity", CASES)
def test_equals_rtrl_and_bptt(name, make, capacity):
    model = make()
    out = getattr(model, "output_size", None) or model.hidden_size
    xs, ts = _data(10, 24, out)
    gs, ls = rx.accumulate_grads(rx.SparseRTRL(capacity), model, xs, ts, _loss)
    gr, lr = rx.accumulate_grads(rx.RTRL(), model, xs, ts, _loss)
    gb, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, _loss)
    assert jnp.allclose(ls, lr)
    assert _relerr(gs, gr) < 1e-10
    assert _relerr(gs, gb) < 1e-10
    for leaf in jax.tree_util.tree_leaves(gb):  # every parameter array gets a gradient
        assert float(jnp.max(jnp.abs(leaf))) > 0


def _trace_run(cell, capacity, xs, ts, dense_above=0.5):
    est = rx.SparseRTRL(capacity, dense_above=dense_above)

    @eqx.filter_jit
    def run(cell, xs, ts):
        def body(carry, xt):
            before = cell.backward_active(carry.state)  # fired or inside the window
            carry, out = est.step(cell, carry, xt[0], xt[1], _loss)
            tr = carry.traces[0]
            return carry, (tr.active, tr.chunks, tr.dense, jnp.sum(before))

        return jax.lax.scan(body, est.init(cell), (xs, ts))

    return run(cell, xs, ts)


def test_activity_skipping_and_overflow_actually_happen():
    cell = _egru(1, 9, density=0.3, input_density=0.5)
    xs, ts = _data(10, 24, 9)
    carry, (active, chunks, dense, before) = _trace_run(cell, 2, xs, ts, dense_above=0.75)
    active, chunks, dense = active[1:], chunks[1:], dense[1:]  # step 0 has M_0 = 0: nothing active
    # the units processed are exactly those that fired or sat inside the pseudo-derivative
    # window after the previous step (EGRU.backward_active)
    assert jnp.array_equal(active, before[1:])
    assert int(jnp.min(active)) < 9, "some steps must skip silent units"
    assert int(jnp.max(jnp.where(dense, 0, active))) > 2, "some chunked steps must overflow the capacity of 2"
    assert jnp.array_equal(chunks, (active + 1) // 2)
    # more than 3/4 of the units active (dense_above=0.75) -> the one dense product
    assert jnp.array_equal(dense, active > 6.75) and bool(jnp.any(dense)) and not bool(jnp.all(dense))
    # compressed storage: kept weights + biases + thresholds, m = 2 rows per unit
    n = cell.kept_counts[0] + cell.kept_counts[1] + 2 * 3 * 9 + 9
    assert num_columns(cell) == n
    assert carry.traces[0].influence.shape == (2, 9, n)


def test_masked_columns_have_zero_gradient_on_cells_without_counts():
    gru = rx.GRU(3, 6, key=jax.random.key(3), density=0.5)
    xs, ts = _data(30, 10, 6)
    gs, _ = rx.accumulate_grads(rx.SparseRTRL(), gru, xs, ts, _loss)
    assert jnp.all(jnp.where(gru.mask_hh, 0.0, gs.weight_hh) == 0)
    assert num_columns(gru) == sum(a.size for a in jax.tree_util.tree_leaves(eqx.filter(gru, eqx.is_inexact_array)))


def test_dense_and_chunked_paths_are_each_exact():
    # dense_above=0: every step runs the one dense product; 1: every step the chunk loop
    model = _egru(1, 9, density=0.3, input_density=0.5)
    xs, ts = _data(10, 10, 9)
    gb, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, _loss)
    for dense_above in (0.0, 1.0):
        gs, _ = rx.accumulate_grads(rx.SparseRTRL(2, dense_above=dense_above), model, xs, ts, _loss)
        assert _relerr(gs, gb) < 1e-10


def test_bad_configuration():
    for bad in (0, 0.0, 1.5, -2, True, "half"):
        with pytest.raises(ValueError, match="capacity"):
            rx.SparseRTRL(bad)
    for bad in (-0.1, 1.5, True, "all"):
        with pytest.raises(ValueError, match="dense_above"):
            rx.SparseRTRL(dense_above=bad)
    with pytest.raises(ValueError, match="gated"):
        rx.SparseRTRL().init(_NotGated())


class _NotGated(eqx.Module):
    input_size: int = 3

    def cores(self):
        return (self,)

    def initial_state(self):
        return (jnp.zeros(2),)


def test_accounting_counts_work_and_memory():
    cell = _egru(1, 9, density=0.3, input_density=0.5)
    model = rx.Readout(cell, 4, key=jax.random.key(0))
    xs, ts = _data(10, 12, 4)
    est = rx.SparseRTRL(2)
    step = eqx.filter_jit(lambda m, c, x, t: est.step(m, c, x, t, _loss))
    carry = est.init(model)
    for x, t in zip(xs, ts):
        carry, _ = step(model, carry, x, t)
    cost = sparse_rtrl_cost(est, model, carry)
    n = num_columns(cell)
    # dense rx.RTRL has columns for the cell's parameters only (the readout is outside M)
    p = sum(a.size for a in jax.tree_util.tree_leaves(eqx.filter(cell, eqx.is_inexact_array)))
    assert float(cost["influence_floats"]) == 2 * 9 * n
    assert float(cost["dense_influence_floats"]) == 18 * p
    assert jnp.isclose(cost["memory_fraction"], 2 * 9 * n / (18 * p))
    tr = carry.traces[0]
    units = 9 if bool(tr.dense) else int(tr.chunks) * 2
    want = 2 * 9 * units * n + 4 * 9 * n + 2 * 3 * 81 + 2 * n + 18 * n
    assert jnp.isclose(cost["macs"], want)
    assert jnp.isclose(cost["dense_macs"], 18.0**2 * p + 18 * p)
    assert float(cost["op_reduction"]) > 1
    assert jnp.isclose(cost["active_fraction"], int(tr.active) / 9)
    assert jnp.isclose(cost["activity"], jnp.mean(carry.state[1] != 0))
    batched = jax.vmap(lambda c: sparse_rtrl_cost(est, model, c))(jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), carry))
    assert batched["macs"].shape == (2,)


def test_vmap_over_streams_matches_each_stream():
    # under vmap the chunk loop runs the maximum chunk count over streams; results must
    # still equal each stream run on its own
    cell = _egru(1, 9, density=0.3, input_density=0.5)
    est = rx.SparseRTRL(2)
    xs = jnp.stack([_data(10, 8, 9)[0], _data(40, 8, 9)[0]])  # [B, T, 3]
    ts = jnp.stack([_data(10, 8, 9)[1], _data(40, 8, 9)[1]])

    @eqx.filter_jit
    def run(cell, xs, ts):
        def body(carry, xt):
            carry, out = est.step(cell, carry, xt[0], xt[1], _loss)
            return carry, (out.grads, carry.traces[0].chunks)

        return jax.lax.scan(body, est.init(cell), (xs, ts))[1]

    batched = eqx.filter_vmap(run, in_axes=(None, 0, 0))(cell, xs, ts)
    for b in range(2):
        single = run(cell, xs[b], ts[b])
        assert _relerr(jax.tree_util.tree_map(lambda a: a[b], batched[0]), single[0]) < 1e-12
    assert not jnp.array_equal(batched[1][0], batched[1][1])  # streams needed different chunk counts
