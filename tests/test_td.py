"""TD(λ): the generic learner with several estimators, the fused ColoR path, CCN stages."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from rtrlax.nets.columnar import columnar_network
from rtrlax.estimators.color import ColoR
from rtrlax.learning.td import ColumnarTD, TDLambda, td_rmsprop
from rtrlax.nets.ccn import Constructive, parse_stages
from rtrlax.tasks.animal import trace_patterning


def _stream(n, seed=1):
    env = trace_patterning(dtype="float64")
    _, smp = env.generate(env.init(jax.random.key(seed)), n)
    return env, smp


def _flat(model):
    return ravel_pytree(eqx.filter(model, eqx.is_inexact_array))[0]


def test_fused_columnar_td_equals_generic_path():
    env, smp = _stream(300)
    net = columnar_network(env.input_size, 5, key=jax.random.key(0))
    # a non-zero readout so that the column parameters learn from the first step
    net = eqx.tree_at(lambda m: m.weight, net, 0.3 * jax.random.normal(jax.random.key(5), (1, 5)))
    td = TDLambda(ColoR(), td_rmsprop(1e-2))
    st, ys = jax.jit(td.run)(td.init(net), smp.x, smp.cumulant)
    fused = ColumnarTD(1e-2)
    fs, ys2 = jax.jit(fused.run)(fused.init(net), smp.x, smp.cumulant)
    assert float(jnp.max(jnp.abs(ys - ys2))) <= 1e-10 * float(jnp.max(jnp.abs(ys)))
    moved = _flat(st.model) - _flat(net)
    assert float(jnp.max(jnp.abs(moved))) > 1e-2  # it did learn
    assert float(jnp.max(jnp.abs(_flat(st.model) - _flat(fused.to_model(net, fs))))) <= 1e-10


def test_td_zero_lambda_sgd_is_semi_gradient_td0():
    # λ = 0, plain SGD, no recurrence to speak of: check one update by hand.
    net = columnar_network(3, 2, key=jax.random.key(0))
    net = eqx.tree_at(lambda m: m.bias, net, jnp.array([0.5]))
    td = TDLambda(ColoR(), optax.sgd(0.1), gamma=0.9, lam=0.0)
    st = td.init(net)
    x1, x2 = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    st, y1 = td.step(st, x1, 0.0)
    st, y2 = td.step(st, x2, 1.0)
    delta = 1.0 + 0.9 * y2 - y1
    # the readout weights moved by α δ ∇_w ŷ_1 = α δ h_1
    h1 = net.core(net.core.initial_state(), x1)[1]
    assert jnp.allclose(st.model.weight[0], 0.1 * delta * h1, atol=1e-12)
    assert jnp.allclose(st.model.bias[0], 0.5 + 0.1 * delta, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [rx.SnAp(1), rx.TBPTT(3), rx.RTRL()])
def test_td_runs_with_other_estimators_on_a_dense_lstm(estimator):
    env, smp = _stream(120)
    net = rx.Readout(rx.LSTM(env.input_size, 3, key=jax.random.key(0)), 1, key=jax.random.key(1))
    td = TDLambda(estimator, td_rmsprop(1e-2))
    st, ys = jax.jit(td.run)(td.init(net), smp.x, smp.cumulant)
    assert ys.shape == (120,) and bool(jnp.all(jnp.isfinite(ys)))
    assert float(jnp.max(jnp.abs(_flat(st.model) - _flat(net)))) > 1e-3


@pytest.mark.slow
def test_td_batched_streams_with_vmap():
    env = trace_patterning(dtype="float64")
    net = columnar_network(env.input_size, 3, key=jax.random.key(0))
    fused = ColumnarTD(1e-3)
    B, n = 3, 50
    es = jax.vmap(env.init)(jax.random.split(jax.random.key(2), B))
    _, smp = jax.vmap(lambda s: env.generate(s, n))(es)
    fs = jax.vmap(lambda _: fused.init(net))(jnp.arange(B))
    fs, ys = jax.jit(jax.vmap(fused.run))(fs, smp.x, smp.cumulant)
    assert ys.shape == (B, n)
    one, ys0 = jax.jit(fused.run)(fused.init(net), smp.x[1], smp.cumulant[1])
    assert jnp.allclose(ys[1], ys0, atol=1e-12)


def test_streams_last_state_equals_each_stream_run_alone():
    env = trace_patterning(dtype="float64")
    net = columnar_network(env.input_size, 4, key=jax.random.key(0))
    net = eqx.tree_at(lambda m: m.weight, net, 0.3 * jax.random.normal(jax.random.key(5), (1, 4)))
    fused = ColumnarTD(1e-2)
    B, n = 3, 80
    es = jax.vmap(env.init)(jax.random.split(jax.random.key(2), B))
    _, smp = jax.vmap(lambda s: env.generate(s, n))(es)  # x: [B, n, d]
    fs = fused.init(net, streams=B)
    assert fs.theta.shape[-1] == B and fs.TH.shape[-1] == B and fs.count.shape == (B,)
    fs, ys = jax.jit(fused.run)(fs, jnp.moveaxis(smp.x, 0, -1), smp.cumulant.T)
    assert ys.shape == (n, B)
    for b in range(B):
        one, ys1 = jax.jit(fused.run)(fused.init(net), smp.x[b], smp.cumulant[b])
        assert float(jnp.max(jnp.abs(ys[:, b] - ys1))) <= 1e-12
        mine = jax.tree_util.tree_map(lambda a: a[..., b], fs)
        assert float(jnp.max(jnp.abs(mine.theta - one.theta))) <= 1e-12
        assert float(jnp.max(jnp.abs(one.theta - fused.init(net).theta))) > 1e-3  # it learned
    with pytest.raises(ValueError, match="expects"):
        fused.step(fs, jnp.zeros((B, env.input_size)), jnp.zeros(B))  # streams first: wrong
    with pytest.raises(ValueError, match="one stream"):
        fused.to_model(net, fs)
    with pytest.raises(ValueError, match="positive int"):
        fused.init(net, streams=0)


def test_ccn_stage_gradient_equals_bptt_with_earlier_stages_frozen():
    loss = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
    xs = jax.random.bernoulli(jax.random.key(2), 0.5, (20, 4)).astype(jnp.float64)
    ts = jax.random.normal(jax.random.key(3), (20, 1))
    for spec, stage in [("6:2:1000", 2), ("3:1:1000", 1)]:
        m = Constructive(4, spec, key=jax.random.key(0), start_stage=stage)
        m = eqx.tree_at(lambda m: m.weight, m, jax.random.normal(jax.random.key(1), m.weight.shape))
        g_color, _ = rx.accumulate_grads(ColoR(), m, xs, ts, loss)
        g_bptt, _ = rx.accumulate_grads(rx.BPTT(), m, xs, ts, loss)
        a, b = ravel_pytree(g_color)[0], ravel_pytree(g_bptt)[0]
        assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) <= 1e-10
        for s, g in enumerate(g_bptt.stages):
            norm = float(jnp.abs(ravel_pytree(g)[0]).sum())
            assert (norm > 0) if s == stage else (norm == 0.0)


def test_ccn_td_freezes_earlier_stages_and_unbuilt_weights():
    env, smp = _stream(120)
    cs = jnp.ones(120)  # a cumulant on every step: TD errors from the start
    m = Constructive(env.input_size, "6:2:60", key=jax.random.key(0))
    td = TDLambda(ColoR(), td_rmsprop(1e-2))
    st = td.init(m)
    run = jax.jit(td.run)
    st, _ = run(st, smp.x[:60], cs[:60])  # stage 0 only
    after0 = st.model
    assert float(jnp.abs(after0.weight[0, 2:]).sum()) == 0.0  # stages 1, 2 not built yet
    assert float(jnp.abs(_flat(after0.stages[0]) - _flat(m.stages[0])).max()) > 0
    st, _ = run(st, smp.x[60:120], cs[60:120])  # stage 1
    assert jnp.array_equal(_flat(st.model.stages[0]), _flat(after0.stages[0]))  # frozen
    assert float(jnp.abs(_flat(st.model.stages[1]) - _flat(m.stages[1])).max()) > 0
    assert jnp.array_equal(_flat(st.model.stages[2]), _flat(m.stages[2]))
    assert float(jnp.abs(st.model.weight[0, 4:]).sum()) == 0.0


def test_parse_stages_and_errors():
    assert parse_stages("20:4:10M") == (20, 4, 10_000_000)
    assert parse_stages("10:1:5k") == (10, 1, 5000)
    with pytest.raises(ValueError, match="multiple"):
        parse_stages("10:3:5")
    with pytest.raises(ValueError, match="total:per_stage"):
        parse_stages("10:3")
    with pytest.raises(ValueError, match="online estimator"):
        TDLambda(rx.BPTT(), optax.sgd(0.1))
    with pytest.raises(ValueError, match="fused path"):
        ColumnarTD(0.1).init(rx.Readout(rx.LSTM(3, 2, key=jax.random.key(0)), 1, key=jax.random.key(1)))
