import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rtrlax as rx
from helpers import mse, rel_err, sequence


def small_net(seed=0, hidden=4, d_in=3, d_out=2):
    cell = rx.GRU(d_in, hidden, key=jax.random.key(seed))
    return rx.Readout(cell, d_out, key=jax.random.key(seed + 1))


@pytest.mark.parametrize("estimator", [rx.RTRL(), rx.SnAp(1), rx.TBPTT(3)], ids=str)
def test_update_every_sequence_matches_hand_written_loop(estimator):
    net = small_net()
    T, n_seq = 6, 3
    xs, ts = sequence(0, T * n_seq, 3, 2)
    opt = optax.sgd(0.1)
    learner = rx.OnlineLearner(net, estimator, opt, mse, update_every=T)
    state = learner.init(jax.random.key(0), batch_size=1)
    resets = (jnp.arange(T * n_seq) % T == 0)[None]
    state, losses = learner.learn(state, xs[None], ts[None], resets)

    # the hand-written loop: accumulate_grads over each sequence, then an optax update
    import equinox as eqx

    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt_state = opt.init(params)
    ref_losses = []
    for i in range(n_seq):
        sl = slice(i * T, (i + 1) * T)
        g, l = rx.accumulate_grads(estimator, eqx.combine(params, static), xs[sl], ts[sl], mse)
        upd, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, upd)
        ref_losses.append(l)
    assert rel_err(state.params, params) <= 1e-10
    assert jnp.allclose(losses, jnp.concatenate(ref_losses), rtol=1e-10)


def test_large_carries_take_the_whole_step_into_the_reset_branch(monkeypatch):
    """Above a size threshold the step is compiled into both branches of the episode-reset
    ``cond`` (so the carry is never copied through a do-nothing branch): same numbers."""
    from rtrlax.learning import learner as learner_module

    xs, ts = sequence(0, 12, 3, 2)
    resets = (jnp.arange(12) % 5 == 0)[None]
    runs = []
    for threshold in (learner_module._LARGE_CARRY, 0):
        monkeypatch.setattr(learner_module, "_LARGE_CARRY", threshold)
        learner = rx.OnlineLearner(small_net(), rx.RTRL(), optax.sgd(0.1), mse)
        state = learner.init(jax.random.key(0), batch_size=1)
        runs.append(learner.learn(state, xs[None], ts[None], resets))
    assert rel_err(runs[0][0].params, runs[1][0].params) <= 1e-12
    assert jnp.allclose(runs[0][1], runs[1][1], rtol=1e-12)


def test_resume_is_bit_identical(tmp_path):
    task = rx.CopyTask(bits=2, pattern_length=3, padding=1)
    net = rx.Readout(rx.GRU(task.input_size, 5, key=jax.random.key(0)), task.output_size, key=jax.random.key(1))
    learner = rx.OnlineLearner(net, rx.SnAp(1), optax.adam(1e-2), update_every=2)
    state = learner.init(jax.random.key(3), batch_size=3, task=task)
    straight, m_straight = learner.run(state, task, 60, chunk=20)

    half, m_half = learner.run(state, task, 20, chunk=20)
    learner.save(half, tmp_path / "ckpt")
    learner.save(half, tmp_path / "ckpt")  # overwriting an existing checkpoint is atomic too
    restored = learner.restore(tmp_path / "ckpt", batch_size=3, task=task)
    resumed, m_rest = learner.run(restored, task, 40, chunk=20)
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(m_straight["loss"], np.concatenate([m_half["loss"], m_rest["loss"]]))
    assert not list(tmp_path.glob(".ckpt*")), "no temporary directories left behind"


def test_restore_rejects_a_different_setup(tmp_path):
    net = small_net()
    learner = rx.OnlineLearner(net, rx.SnAp(1), optax.sgd(0.1), mse)
    learner.save(learner.init(jax.random.key(0), batch_size=2), tmp_path / "c")
    with pytest.raises(ValueError, match="does not match"):
        learner.restore(tmp_path / "c", batch_size=3)
    with pytest.raises(ValueError, match="no learner checkpoint"):
        learner.restore(tmp_path / "missing", batch_size=2)


def test_nan_in_stream_names_stream_and_step_and_keeps_state():
    net = small_net()
    learner = rx.OnlineLearner(net, rx.SnAp(1), optax.sgd(0.1), mse)
    state = learner.init(jax.random.key(0), batch_size=2)
    xs = jnp.ones((2, 5, 3)).at[1, 3, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="stream 1, step 3"):
        learner.learn(state, xs, jnp.zeros((2, 5, 2)))
    xs = jnp.ones((2, 5, 3))
    with pytest.raises(ValueError, match="stream 0, step 4"):
        learner.learn(state, xs, jnp.zeros((2, 5, 2)).at[0, 4, 1].set(jnp.inf))
    # the state passed in is still usable and unchanged
    assert int(state.step) == 0
    state2, losses = learner.learn(state, xs, jnp.zeros((2, 5, 2)))
    assert int(state2.step) == 5 and jnp.all(jnp.isfinite(losses))


def test_wrong_stream_shapes_are_clear_errors():
    learner = rx.OnlineLearner(small_net(), rx.SnAp(1), optax.sgd(0.1), mse)
    state = learner.init(jax.random.key(0), batch_size=2)
    with pytest.raises(ValueError, match=r"xs must have shape \[batch=2, steps, input_size=3\]"):
        learner.learn(state, jnp.ones((2, 5, 4)), jnp.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"xs must have shape"):
        learner.learn(state, jnp.ones((3, 5, 3)), jnp.zeros((3, 5, 2)))
    with pytest.raises(ValueError, match="targets must start with"):
        learner.learn(state, jnp.ones((2, 5, 3)), jnp.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="resets must have shape"):
        learner.learn(state, jnp.ones((2, 5, 3)), jnp.zeros((2, 5, 2)), jnp.zeros((2, 4), bool))


def test_bad_configurations():
    with pytest.raises(ValueError, match="not an online estimator"):
        rx.OnlineLearner(small_net(), rx.BPTT(), optax.sgd(0.1), mse)
    with pytest.raises(ValueError, match="update_every"):
        rx.OnlineLearner(small_net(), rx.SnAp(1), optax.sgd(0.1), mse, update_every=0)
    learner = rx.OnlineLearner(small_net(), rx.SnAp(1), optax.sgd(0.1), mse)
    with pytest.raises(ValueError, match="input_size=8"):
        learner.init(jax.random.key(0), task=rx.CopyTask())
    with pytest.raises(ValueError, match="batch_size"):
        learner.init(jax.random.key(0), batch_size=0)
    with pytest.raises(ValueError, match="TBPTT truncation"):
        rx.TBPTT(0)


def test_sparse_rtrl_counters_reach_the_learner_metrics():
    task = rx.CopyTask(bits=2, pattern_length=3, padding=1)
    net = rx.Readout(rx.EGRU(task.input_size, 6, key=jax.random.key(0), density=0.5),
                     task.output_size, key=jax.random.key(1))
    learner = rx.OnlineLearner(net, rx.SparseRTRL(), optax.adam(1e-2))
    state = learner.init(jax.random.key(0), batch_size=2, task=task)
    _, m = learner.run(state, task, 20, chunk=10)
    assert m["memory_fraction"].shape == (2,) and np.all(m["memory_fraction"] < 1.0)
    assert np.all((m["activity"] >= 0) & (m["activity"] <= 1))
    assert np.all(m["op_reduction"] > 1.0)


def _assert_states_close(a, b, tol=1e-9):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jnp.issubdtype(x.dtype, jnp.inexact):
            assert float(jnp.max(jnp.abs(x - y))) <= tol * (1 + float(jnp.max(jnp.abs(y))))
        elif not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert bool(jnp.all(x == y))


@pytest.mark.parametrize(
    "make, estimator",
    [(small_net, rx.SnAp(1)),
     (lambda: rx.LRUNet(3, 2, d_model=4, d_hidden=3, n_layers=2, key=jax.random.key(3)), rx.OnlineLRU())],
    ids=["snap1-gru", "online-lru"],
)  # fmt: skip
def test_chunked_learner_equals_step_by_step(make, estimator):
    """update_every=K with a chunked estimator takes K steps at once (batch_chunk_step):
    the same parameters, optimizer state, carries and losses as stepping, with restarts
    inside chunks; a run that does not start on a multiple of K falls back to stepping."""
    net = make()
    xs = jax.random.normal(jax.random.key(0), (2, 13, 3))
    ts = jax.random.normal(jax.random.key(1), (2, 13, 2))
    resets = jax.random.uniform(jax.random.key(2), (2, 13)) < 0.2
    runs = {}
    for chunked in (None, False):
        learner = rx.OnlineLearner(net, estimator, optax.adam(1e-2), mse, update_every=4, chunked=chunked)
        state = learner.init(jax.random.key(0), batch_size=2)
        assert learner._can_chunk(state, 8) is (chunked is None)
        state, l1 = learner.learn(state, xs[:, :8], ts[:, :8], resets[:, :8])  # chunked if None
        state, l2 = learner.learn(state, xs[:, 8:9], ts[:, 8:9], resets[:, 8:9])  # 1 step
        assert learner._can_chunk(state, 4) is False  # step 9 is not a multiple of 4
        state, l3 = learner.learn(state, xs[:, 9:], ts[:, 9:], resets[:, 9:])  # stepped
        runs[chunked] = (state, jnp.concatenate([l1, l2, l3]))
    _assert_states_close(runs[None][0], runs[False][0])
    np.testing.assert_allclose(runs[None][1], runs[False][1], rtol=1e-10)
    assert int(runs[None][0].step) == 13


@pytest.mark.parametrize("chunk", [56, 50])
def test_chunked_learner_on_a_task_with_episodes(chunk):
    """run() on the copy task (episodes of 48 steps: a restart inside a chunk), K = 8;
    with chunk=50 the learner runs 48 steps, then 8, both K at a time."""
    task = rx.CopyTask()
    net = rx.Readout(rx.GRU(task.input_size, 5, key=jax.random.key(0)), task.output_size, key=jax.random.key(1))
    out = {}
    for chunked in (None, False):
        learner = rx.OnlineLearner(net, rx.SnAp(1), optax.sgd(0.05), update_every=8, chunked=chunked)
        state = learner.init(jax.random.key(4), batch_size=2, task=task)
        assert learner._can_chunk(state, 56, task) is (chunked is None)
        out[chunked] = learner.run(state, task, 56, chunk=chunk)
    _assert_states_close(out[None][0], out[False][0])
    assert list(out[None][1]["step"]) == ([56] if chunk == 56 else [48, 56])
    if chunk == 56:  # per-chunk metrics are comparable when the chunks are the same
        for name in out[False][1]:
            np.testing.assert_allclose(out[None][1][name], out[False][1][name], rtol=1e-9)


def test_chunked_learner_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="chunked=True needs"):
        rx.OnlineLearner(small_net(), rx.RTRL(), optax.sgd(0.1), mse, update_every=4, chunked=True)
    with pytest.raises(ValueError, match="chunked=True needs"):
        rx.OnlineLearner(small_net(), rx.SnAp(1), optax.sgd(0.1), mse, update_every=1, chunked=True)
    curriculum = rx.CopyCurriculum()
    learner = rx.OnlineLearner(
        rx.Readout(rx.GRU(curriculum.input_size, 3, key=jax.random.key(0)), curriculum.output_size,
                   key=jax.random.key(1)),
        rx.SnAp(1), optax.sgd(0.1), update_every=4,
    )  # fmt: skip
    state = learner.init(jax.random.key(0), batch_size=1, task=curriculum)
    assert learner._can_chunk(state, 8, curriculum) is False  # the curriculum uses feedback
