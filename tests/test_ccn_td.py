"""The fused CCN TD(λ) step equals the generic TDLambda(ColoR()) path (float64)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from rtrlax.estimators.color import ColoR
from rtrlax.learning.ccn_td import CCNTD
from rtrlax.learning.td import TDLambda, td_rmsprop
from rtrlax.nets.ccn import Constructive
from rtrlax.tasks.animal import trace_patterning


def _flat(model):
    return ravel_pytree(eqx.filter(model, eqx.is_inexact_array))[0]


def test_fused_ccn_td_equals_generic_path_across_stage_changes():
    env = trace_patterning(dtype="float64")
    _, smp = env.generate(env.init(jax.random.key(1)), 90)
    # 2 stages of 2 columns, 40 steps per stage: the run crosses the stage change
    net = Constructive(env.input_size, "4:2:40", key=jax.random.key(0))
    # a non-zero readout so that the columns learn from the first step of their stage
    net = eqx.tree_at(lambda m: m.weight, net, 0.3 * jax.random.normal(jax.random.key(5), (1, 4)))
    td = TDLambda(ColoR(), td_rmsprop(1e-2))
    st, ys = jax.jit(td.run)(td.init(net), smp.x, smp.cumulant)
    fused = CCNTD(1e-2)
    run = jax.jit(lambda s, x, c: fused.run(net, s, x, c))
    # two calls (the first ends inside stage 0): the stage split follows the step count
    fs, ys_a = run(fused.init(net), smp.x[:30], smp.cumulant[:30])
    fs, ys_b = run(fs, smp.x[30:], smp.cumulant[30:])
    ys2 = jnp.concatenate([ys_a, ys_b])
    assert float(jnp.max(jnp.abs(ys - ys2))) <= 1e-10 * float(jnp.max(jnp.abs(ys)))
    learned = fused.to_model(net, fs)
    assert float(jnp.max(jnp.abs(_flat(st.model) - _flat(learned)))) <= 1e-10
    for s in range(2):  # every stage learned during its own steps
        assert float(jnp.max(jnp.abs(_flat(learned.stages[s]) - _flat(net.stages[s])))) > 1e-3
    # the network's own state (cells, statistics) agrees too
    a = st.carry.state
    h, f_var = CCNTD.features(net, fs)
    assert float(jnp.max(jnp.abs(jnp.concatenate([h for h, _ in a.cells]) - h))) <= 1e-10
    assert float(jnp.max(jnp.abs(a.f_var - f_var))) <= 1e-10
    assert int(a.count) == int(fs.steps) == 90
    # the per-step path (the stage chosen by lax.switch) gives the same predictions
    step = jax.jit(lambda s, x, c: fused.step(net, s, x, c))
    _, ys3 = jax.lax.scan(lambda s, xc: step(s, *xc), fused.init(net), (smp.x[:45], smp.cumulant[:45]))
    assert float(jnp.max(jnp.abs(ys3 - ys[:45]))) <= 1e-10 * float(jnp.max(jnp.abs(ys)))


def test_ccn_td_refuses_other_models():
    net = rx.Readout(rx.LSTM(3, 2, key=jax.random.key(0)), 1, key=jax.random.key(1))
    with pytest.raises(ValueError, match="Constructive"):
        CCNTD(0.1).init(net)
    with pytest.raises(ValueError, match="gamma"):
        CCNTD(0.1, gamma=1.0)
    m = Constructive(3, "2:1:10", key=jax.random.key(0))
    with pytest.raises(ValueError, match="expects"):  # checked while tracing: nothing runs
        jax.eval_shape(lambda: CCNTD(0.1).step(m, CCNTD(0.1).init(m), jnp.zeros(4), 0.0))
