"""Deep stacks of any cell (DeepRNN), LRUNet as such a stack, and the sequence mode."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mse, rel_err

import rtrlax as rx
from rtrlax.cells.base import run_sequence
from rtrlax.nets.deep import DeepRNN

NEW_CELLS = ["rtu", "nonlinear-rtu", "elstm", "mingru", "minlstm", "rglru"]


def data(model, seed, steps):
    kx, kt = jax.random.split(jax.random.key(200 + seed))
    return (jax.random.normal(kx, (steps, model.input_size)),
            jax.random.normal(kt, (steps, model.output_size)))  # fmt: skip


def stepwise(model, xs):
    return jax.lax.scan(lambda s, x: model(s, x), model.initial_state(), xs)


@pytest.mark.parametrize("pool", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_lrunet_is_the_deep_stack_with_the_lru_cell(pool):
    key = jax.random.key(7)
    net = rx.LRUNet(2, 3, d_model=6, d_hidden=4, n_layers=2, key=key, pool=pool)
    deep = DeepRNN(2, 3, cell="lru", d_model=6, d_hidden=4, n_layers=2, key=key, pool=pool)
    leaves = lambda m: jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_inexact_array))  # noqa: E731
    for a, b in zip(leaves(net), leaves(deep), strict=True):
        np.testing.assert_array_equal(a, b)
    assert net.cores() == tuple(b.lru.core for b in net.blocks)


@pytest.mark.slow
@pytest.mark.parametrize("pool", [False, True])
def test_lrunet_and_the_deep_stack_compute_the_same(pool):
    key = jax.random.key(7)
    net = rx.LRUNet(2, 3, d_model=6, d_hidden=4, n_layers=2, key=key, pool=pool)
    deep = DeepRNN(2, 3, cell="lru", d_model=6, d_hidden=4, n_layers=2, key=key, pool=pool)
    xs, _ = data(net, 0, 3)
    s_net, s_deep = net.initial_state(), deep.initial_state()
    for x in xs:  # a few eager steps (no compilation)
        (s_net, y_net), (s_deep, y_deep) = net(s_net, x), deep(s_deep, x)
        np.testing.assert_array_equal(y_net, y_deep)
    assert net.cores() == tuple(b.lru.core for b in net.blocks)


@pytest.mark.parametrize("layers", [pytest.param(n, marks=pytest.mark.slow) if n != 1 else n
                                    for n in (1, 2, 3, 4)])  # fmt: skip
def test_lru_network_sequence_mode_equals_stepping(layers):
    net = rx.LRUNet(3, 2, d_model=6, d_hidden=5, n_layers=layers, key=jax.random.key(layers),
                    r_min=0.5, pool=layers % 2 == 0)  # fmt: skip
    xs, _ = data(net, layers, 40)
    s_step, y_step = stepwise(net, xs)
    assert net.has_sequence
    # chunks of 16 steps and a remainder of 8 (+ all at once, in the slow runs)
    for chunk in (16,) if layers == 1 else (None, 16):
        s_seq, y_seq = run_sequence(net, xs, chunk=chunk)
        np.testing.assert_allclose(y_seq, y_step, rtol=1e-12, atol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(s_seq), jax.tree_util.tree_leaves(s_step), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "layers,pool", [pytest.param(2, True, marks=pytest.mark.slow),
                    pytest.param(1, False, marks=pytest.mark.slow),
                    pytest.param(4, False, marks=pytest.mark.slow)],
)  # fmt: skip
def test_bptt_in_sequence_mode_equals_stepwise_bptt(layers, pool):
    net = rx.LRUNet(3, 2, d_model=6, d_hidden=5, n_layers=layers, key=jax.random.key(9),
                    r_min=0.5, pool=pool)  # fmt: skip
    xs, ts = data(net, 9, 30)
    g_step, l_step = rx.accumulate_grads(rx.BPTT(sequence_mode=False), net, xs, ts, mse)
    for chunk in (8,) if pool else (None, 8):  # chunks of 8 steps and a remainder of 6
        g_seq, l_seq = rx.accumulate_grads(rx.BPTT(chunk=chunk), net, xs, ts, mse)
        np.testing.assert_allclose(l_seq, l_step, rtol=1e-12)
        assert rel_err(g_seq, g_step) <= 1e-12


def last_layer_matches_bptt(name, layers, mixer="glu"):
    model = DeepRNN(2, 3, cell=name, d_model=5, d_hidden=4, n_layers=layers, mixer=mixer,
                    key=jax.random.key(layers))  # fmt: skip
    xs, ts = data(model, layers, 12)
    g_online, _ = rx.accumulate_grads(rx.SnAp(1), model, xs, ts, mse)
    g_bptt, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)
    last = lambda g: g.blocks[-1].cell  # noqa: E731
    assert rel_err(last(g_online), last(g_bptt)) <= 1e-10
    # the glue above the last cell gets its exact gradient too; lower cells do not
    assert rel_err(g_online.decoder, g_bptt.decoder) <= 1e-10
    assert rel_err(g_online.blocks[0].cell, g_bptt.blocks[0].cell) > 1e-6


@pytest.mark.parametrize("layers", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_last_layer_online_gradient_is_exact_mingru(layers):
    last_layer_matches_bptt("mingru", layers)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NEW_CELLS if n != "mingru"])
@pytest.mark.parametrize("layers", [2, 3])
def test_last_layer_online_gradient_is_exact(name, layers):
    last_layer_matches_bptt(name, layers)


@pytest.mark.slow
def test_mlp_mixer_and_a_passed_in_cell():
    from rtrlax.cells import MinLSTM

    last_layer_matches_bptt(MinLSTM, 2, mixer="mlp")  # a class as the factory


def test_bad_configurations_fail_clearly():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown cell 'gruu'"):
        DeepRNN(2, 3, cell="gruu", d_model=4, d_hidden=4, n_layers=1, key=key)
    with pytest.raises(ValueError, match="mixer"):
        DeepRNN(2, 3, cell="mingru", d_model=4, d_hidden=4, n_layers=1, key=key, mixer="ffn")
    net = DeepRNN(2, 3, cell="elstm", d_model=4, d_hidden=4, n_layers=1, key=key)
    assert not net.has_sequence
    with pytest.raises(ValueError, match="ELSTM"):
        net.sequence(net.initial_state(), jnp.zeros((3, 2)))
    # run_sequence falls back to stepping
    _, ys = run_sequence(net, jnp.ones((3, 2)))
    np.testing.assert_allclose(ys, stepwise(net, jnp.ones((3, 2)))[1], rtol=1e-13)


def test_registry_entries():
    import rtrlax.experiments.elementwise  # noqa: F401  (registers; the lead lists it in PLUGINS)
    from rtrlax.experiments import registry

    for name in NEW_CELLS:
        assert "elementwise" in registry.get("cell", name).tags
        registry.check_pair("snap", name)
    net = registry.make_network("deep", "minlstm", 3, 2, 4, key=jax.random.key(0), layers=2)
    assert isinstance(net, DeepRNN) and len(net.cores()) == 2 and net.has_sequence
    readout = registry.make_network("readout", "rtu", 3, 2, 4, key=jax.random.key(0))
    assert readout(readout.initial_state(), jnp.ones(3))[1].shape == (2,)  # RTU output 2 × 4
    with pytest.raises(ValueError, match="no recurrent weight matrix"):
        registry.make_cell("elstm", 3, 4, key=jax.random.key(0), density=0.5)
