"""Nothing silent: every bad input is a clear ValueError raised before any work (the
learner's state unchanged), windows without scored steps are missing rather than 0, a
non-finite loss stops a run; and the item-6 gaps of issue 19 (tests that prove what
their names say)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rtrlax as rx
from helpers import bptt, flat, mse, rel_err, sequence

# small shared shapes: GRU(3 → 4) with a readout of width 2
NET = rx.Readout(rx.GRU(3, 4, key=jax.random.key(0)), 2, key=jax.random.key(1))


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if not np.array_equal(np.asarray(x), np.asarray(y)):
            return False
    return True


# --- validation -----------------------------------------------------------------------------


def test_networks_check_their_core_at_construction():
    with pytest.raises(ValueError, match=r"needs a recurrent cell.*got LRU.*rx\.LRUCore"):
        rx.Readout(rx.LRU(3, 4, key=jax.random.key(0)), 2, key=jax.random.key(1))
    with pytest.raises(ValueError, match="got Linear"):
        rx.Readout(eqx.nn.Linear(3, 4, key=jax.random.key(0)), 2, key=jax.random.key(1))
    net = rx.Readout(rx.LRUCore(3, 4, key=jax.random.key(0)), 2, key=jax.random.key(1))
    assert net(net.initial_state(), jnp.ones(3))[1].shape == (2,)


def test_accumulate_grads_rejects_bad_inputs_before_any_work():
    xs, ts = sequence(0, 5, 3, 2)
    cases = [
        ((xs[:0], ts[:0], mse), "zero steps"),
        ((xs.at[3, 1].set(jnp.nan), ts, mse), "xs holds NaN or Inf at step 3"),
        ((xs, ts.at[2, 0].set(jnp.inf), mse), "targets holds NaN or Inf at step 2"),
        ((xs, ts[:, :1], mse), r"target has shape \(1,\) but the model outputs shape \(2,\)"),
        ((xs, ts[:, 0], mse), r"target has shape \(\) but the model outputs shape \(2,\)"),
        ((xs, ts, lambda y, t: (y - t) ** 2), r"must return a scalar per step, got \(2,\)"),
        ((xs, ts, lambda y, t: y @ jnp.ones(5)), "loss_fn\\(y, target\\) fails"),
    ]
    for (x, t, loss), msg in cases:
        with pytest.raises(ValueError, match=msg):
            rx.accumulate_grads(rx.RTRL(), NET, x, t, loss)
    with pytest.raises(ValueError, match="not an rtrlax estimator|must be an rtrlax estimator"):
        rx.accumulate_grads(optax.sgd(0.1), NET, xs, ts, mse)
    # a deliberate other shape passes inside a container
    g, _ = rx.accumulate_grads(rx.RTRL(), NET, xs, (ts[:, :1],), lambda y, t: jnp.sum(y * t[0]))
    assert jnp.all(jnp.isfinite(flat(g)))


def test_learn_rejects_bad_inputs_and_leaves_the_state_unchanged():
    learner = rx.OnlineLearner(NET, rx.SnAp(1), optax.sgd(0.1), mse)
    state = learner.init(jax.random.key(0), batch_size=2)
    before = jax.tree_util.tree_map(lambda a: a, state)
    xs, ts = jnp.ones((2, 3, 3)), jnp.zeros((2, 3, 2))
    cases = [
        ((xs[:, :0], ts[:, :0]), {}, "zero steps"),
        ((xs, ts[..., :1]), {}, r"target has shape \(1,\) but the model outputs shape \(2,\)"),
        ((xs, ts), {"loss_fn": lambda y, t: y - t}, "must return a scalar per step"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            learner.learn(state, *args, **kw)
    assert _leaves_equal(state, before)
    state2, losses = learner.learn(state, xs, ts)
    assert int(state2.step) == 3 and losses.shape == (3,)


def test_td_entry_points_check_their_streams():
    net = rx.Readout(rx.Columnar(3, 2, key=jax.random.key(0)), 1, key=jax.random.key(1))
    td = rx.TDLambda(rx.ColoR(), optax.sgd(0.1))
    st = td.init(net)
    xs, cs = jnp.ones((4, 3)), jnp.zeros(4)
    for args, msg in [
        ((xs[:0], cs[:0]), "zero steps"),
        ((jnp.ones((4, 2)), cs), r"xs must have shape \[n, 3\]"),
        ((xs, jnp.zeros((4, 1))), r"cumulants must have shape \[4\]"),
        ((xs, cs.at[1].set(jnp.nan)), "cumulants holds NaN or Inf at step 1"),
    ]:
        with pytest.raises(ValueError, match=msg):
            td.run(st, *args)
    fused = rx.ColumnarTD(0.1)
    with pytest.raises(ValueError, match=r"cumulants must have shape \[4, 3\]"):
        fused.run(fused.init(net, streams=3), jnp.ones((4, 3, 3)), cs)


def test_stochastic_estimators_say_which_key_they_use():
    """accumulate_grads(..., key=None) and TDLambda.init(model) reach ``init`` without a
    key: the estimator warns which key it uses."""
    vanilla = rx.Readout(rx.VanillaRNN(3, 4, key=jax.random.key(0)), 2, key=jax.random.key(1))
    for est, model in ((rx.UORO(), NET), (rx.KFRTRL(), vanilla)):
        with pytest.warns(UserWarning, match=r"no key: using jax.random.key\(0\)"):
            carry = est.init(model)
        assert np.array_equal(jax.random.key_data(carry.key), jax.random.key_data(jax.random.key(0)))


# --- honest metrics -------------------------------------------------------------------------


def test_windows_without_scored_steps_are_missing_not_zero():
    # the copy task scores only its last 3 of 8 steps: a 2-step chunk often scores none
    task = rx.CopyTask(bits=2, pattern_length=3, padding=1)
    net = rx.Readout(rx.GRU(task.input_size, 4, key=jax.random.key(0)), task.output_size,
                     key=jax.random.key(1))  # fmt: skip
    learner = rx.OnlineLearner(net, rx.SnAp(1), optax.adam(1e-2))
    state = learner.init(jax.random.key(0), batch_size=1, task=task)
    _, m = learner.run(state, task, 8, chunk=2)
    unscored = np.isnan(m["bits_per_step"])
    assert unscored.any() and not unscored.all()
    assert np.array_equal(np.isnan(m["loss"]), unscored)  # the loss too: missing, not 0
    assert np.all(m["bits_per_step"][~unscored] > 0) and np.all(m["loss"][~unscored] > 0)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    task = rx.CopyTask(bits=2, pattern_length=3, padding=1)
    net = rx.Readout(rx.GRU(task.input_size, 4, key=jax.random.key(0)), task.output_size,
                     key=jax.random.key(1))  # fmt: skip
    # a learning rate that turns NaN at the 9th update (the end of step 9)
    lr = lambda count: jnp.where(count < 8, 1e-2, jnp.nan)  # noqa: E731
    learner = rx.OnlineLearner(net, rx.SnAp(1), optax.sgd(lr))
    state = learner.init(jax.random.key(0), batch_size=1, task=task)
    with pytest.raises(FloatingPointError, match="NaN or Inf between steps 8 and 16.*step-000000000008"):
        learner.run(state, task, 24, chunk=8, save_every=8, directory=tmp_path / "r")
    from rtrlax.learning.checkpoint import list_checkpoints

    assert [p.name for p in list_checkpoints(tmp_path / "r")] == ["step-000000000008"]


# --- item 6: tests that prove what their names say -------------------------------------------


def test_td_lambda_on_recurrent_parameters_matches_an_unrolled_reference():
    """TD(λ > 0) with RTRL on a GRU's recurrent parameters, against an independent
    reference: eligibility traces accumulated by hand from jax.grad of each step's
    prediction through the network unrolled from the start (with the parameters each
    past step actually used), the TD update written out."""
    gamma, lam, lr, T = 0.8, 0.7, 0.05, 4
    net = rx.Readout(rx.GRU(2, 2, key=jax.random.key(4)), 1, key=jax.random.key(5))
    xs = jax.random.normal(jax.random.key(6), (T, 2))
    cs = jax.random.normal(jax.random.key(7), (T,))
    td = rx.TDLambda(rx.RTRL(), optax.sgd(lr), gamma=gamma, lam=lam)
    st, ys = td.run(td.init(net), xs, cs)

    # reference: RTRL's ∇θ ŷ_t is the sensitivity of ŷ_t to θ through the whole past
    # *with the parameters that produced each step*; with SGD those change every step, so
    # the reference unrolls the trajectory of states with per-step parameters and takes
    # jax.grad of ŷ_t with respect to a perturbation added to every step's parameters.
    params, static = eqx.partition(net, eqx.is_inexact_array)
    history, e = [], jax.tree_util.tree_map(jnp.zeros_like, params)
    y_prev, ref = 0.0, []
    for t in range(T):
        history.append(params)

        def y_t(d, t=t, hist=tuple(history)):
            s = net.initial_state()
            for j in range(t + 1):
                m = eqx.combine(jax.tree_util.tree_map(jnp.add, hist[j], d), static)
                s, y = m(s, xs[j])
            return y[0]

        zero = jax.tree_util.tree_map(jnp.zeros_like, params)
        y, g = jax.value_and_grad(y_t)(zero)
        delta = cs[t] + gamma * y - y_prev
        params = jax.tree_util.tree_map(lambda p, ei: p + lr * delta * ei, params, e)
        e = jax.tree_util.tree_map(lambda ei, gi: gamma * lam * ei + gi, e, g)
        y_prev = y
        ref.append(y)
    np.testing.assert_allclose(ys, jnp.stack(ref), rtol=1e-10, atol=1e-12)
    assert rel_err(eqx.filter(st.model, eqx.is_inexact_array), params) <= 1e-10
    assert rel_err(st.trace, e) <= 1e-10
    assert float(jnp.max(jnp.abs(st.model.core.weight_hh - net.core.weight_hh))) > 1e-4


def test_fully_online_learning_matches_a_hand_written_loop():
    """update_every=1 with RTRL: after every step the optimizer applies that step's
    gradient; the next step's gradient uses the updated parameters with the traces
    carried over (RTRL's online approximation), written out here with estimator.step."""
    learner = rx.OnlineLearner(NET, rx.RTRL(), optax.sgd(0.05), mse)
    state = learner.init(jax.random.key(0), batch_size=1)
    xs, ts = sequence(2, 5, 3, 2)
    state, losses = learner.learn(state, xs[None], ts[None])

    est = rx.RTRL()
    params, static = eqx.partition(NET, eqx.is_inexact_array)
    carry = est.init(NET)
    opt = optax.sgd(0.05)
    opt_state = opt.init(params)
    ref = []
    step = jax.jit(lambda p, c, x, t: est.step(eqx.combine(p, static), c, x, t, mse))
    for t in range(5):
        carry, out = step(params, carry, xs[t], ts[t])
        upd, opt_state = opt.update(out.grads, opt_state, params)
        params = optax.apply_updates(params, upd)
        ref.append(out.loss)
    np.testing.assert_allclose(losses, jnp.stack(ref), rtol=1e-12)
    assert rel_err(state.params, params) <= 1e-12
    assert rel_err(state.carry, jax.tree_util.tree_map(lambda a: a[None], carry)) <= 1e-12
    assert rel_err(state.params, eqx.partition(NET, eqx.is_inexact_array)[0]) > 1e-4


@pytest.mark.parametrize(
    "estimator", [rx.UORO(), pytest.param(rx.KFRTRL(), marks=pytest.mark.slow)], ids=["uoro", "kf-rtrl"]
)
def test_stochastic_estimators_in_the_learner_redraw_keys_and_resume_bit_identically(
    estimator, tmp_path
):
    task = rx.CopyTask(bits=2, pattern_length=3, padding=1)
    net = rx.Readout(rx.VanillaRNN(task.input_size, 4, key=jax.random.key(0)), task.output_size,
                     key=jax.random.key(1))  # fmt: skip
    learner = rx.OnlineLearner(net, estimator, optax.adam(1e-2))
    state = learner.init(jax.random.key(2), batch_size=2, task=task)
    keys = jax.random.key_data(state.carry.key)
    assert not np.array_equal(keys[0], keys[1])  # one key per stream
    straight, _ = learner.run(state, task, 12, chunk=6)  # a restart (new keys) at step 8
    after = jax.random.key_data(straight.carry.key)
    assert not np.array_equal(after[0], after[1])
    half, _ = learner.run(state, task, 6, chunk=6, directory=tmp_path / "r")
    restored, _ = learner.resume(tmp_path / "r", batch_size=2, task=task)
    resumed, _ = learner.run(restored, task, 6, chunk=6)
    assert _leaves_equal(straight, resumed)
    assert rel_err(straight.params, learner.params0) > 1e-4


def test_resets_restart_state_and_traces_while_learning():
    """With a learning rate > 0 the traces matter: after the reset the stream must
    behave exactly as a fresh stream (fresh state *and* zero traces) driven by the
    learner's parameters at that point."""
    learner = rx.OnlineLearner(NET, rx.RTRL(), optax.sgd(0.1), mse)
    state = learner.init(jax.random.key(0), batch_size=1)
    xs, ts = sequence(4, 8, 3, 2)
    resets = jnp.zeros((1, 8), bool).at[0, 4].set(True)
    mid, l1 = learner.learn(state, xs[None, :4], ts[None, :4], resets[:, :4])
    end, l2 = learner.learn(mid, xs[None, 4:], ts[None, 4:], resets[:, 4:])
    fresh_learner = rx.OnlineLearner(learner.model(mid), rx.RTRL(), optax.sgd(0.1), mse)
    fresh = fresh_learner.init(jax.random.key(0), batch_size=1)
    fresh = fresh._replace(opt_state=mid.opt_state)
    ref, l_ref = fresh_learner.learn(fresh, xs[None, 4:], ts[None, 4:])
    np.testing.assert_allclose(l2, l_ref, rtol=1e-12)
    assert rel_err(end.params, ref.params) <= 1e-12
    # without the reset the stream would not match: the traces carried over do matter
    no_reset, l3 = learner.learn(mid, xs[None, 4:], ts[None, 4:])
    assert rel_err(no_reset.params, ref.params) > 1e-6


def test_readme_quick_start_computes_the_gradient_it_claims():
    """The README's quick start (SnAp-1 on a dense GRU, summed squared error): the
    losses are those of the forward pass; SnAp-1's gradient approximates BPTT's, close
    but not equal (a dense GRU couples every unit)."""
    cell = rx.GRU(input_size=3, hidden_size=16, key=jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, 3))
    targets = jnp.zeros((5, 16))
    loss_fn = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
    grads, losses = rx.accumulate_grads(rx.SnAp(1), cell, xs, targets, loss_fn)
    s, ref_losses = cell.initial_state(), []
    for x in xs:
        s, y = cell(s, x)
        ref_losses.append(jnp.sum(y**2))
    np.testing.assert_allclose(losses, jnp.stack(ref_losses), rtol=1e-12)
    g_bptt, _ = bptt(cell, xs, targets, loss_fn)  # (RTRL = BPTT: test_exact.py)
    err = rel_err(grads, g_bptt)
    assert 1e-6 < err < 0.5
