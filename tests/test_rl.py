"""Online RL: environment streams, the streaming actor-critic, TD(λ) prediction.

Maths in float64 (conftest); the exactness tests replay a short fixed trajectory with
the agent's parameters held fixed (``update_every`` longer than the trajectory) and
compare the summed actor and critic increments with those formed from ``jax.jacrev``
through the unrolled trunk.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

pytest.importorskip("gymnax")

import rtrlax as rx  # noqa: E402
from rtrlax.agents.actor_critic import ActorCritic, trunk_input_size  # noqa: E402
from rtrlax.estimators.base import split_params  # noqa: E402
from rtrlax.tasks.envs import EnvStream, make_env  # noqa: E402

GAMMA, LAM, AV, API, BETA = 0.9, 0.8, 0.7, 1.3, 0.05
T, B = 7, 2
ENV = make_env("CartPole-v1")  # obs 4, actions 2
N_IN = trunk_input_size(ENV)  # 4 + 2 + 1
SGD = optax.sgd(1.0)  # one optimizer object: agents built alike share their compiled chunks


def _model(seed=0, hidden=3):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return rx.Readout(rx.GRU(N_IN, hidden, key=k1), 1 + ENV.num_actions, key=k2)


def _trajectory(seed=3):
    k = jax.random.split(jax.random.key(seed), 3)
    xs = jax.random.normal(k[0], (B, T, ENV.obs_size))
    rewards = jax.random.normal(k[1], (B, T)).at[:, 0].set(0.0)
    actions = jax.random.randint(k[2], (B, T), 0, ENV.num_actions)
    firsts = np.zeros((B, T), bool)
    firsts[:, 0] = True
    firsts[0, 3] = True  # stream 0 starts a new episode at step 3, stream 1 at step 5
    firsts[1, 5] = True
    return xs, rewards, jnp.asarray(firsts), actions


def _agent(estimator, model=None, **kw):
    kw.setdefault("update_every", 1000)  # parameters fixed over the trajectory
    return ActorCritic(model or _model(), estimator, SGD, ENV, gamma=GAMMA, lam=LAM,
                       alpha_v=AV, alpha_pi=API, entropy=BETA, **kw)


def _reference_increment(model, xs, rewards, firsts, actions, lam_pi=LAM):
    """Σ_t mean_b Δ_{b,t} from per-step gradients by jax.jacrev through the unrolled trunk."""
    params, static = split_params(model)
    theta, unravel = ravel_pytree(params)

    def outputs(th, x, r, f, a):  # one stream, unrolled: [T, 3] = v, log π(a), H per step
        m = eqx.combine(unravel(th), static)

        def body(s, inp):
            x_t, r_t, f_t, a_t, a_tm1 = inp
            s = jax.tree_util.tree_map(lambda i, c: jnp.where(f_t, i, c), m.initial_state(), s)
            keep = 1.0 - f_t
            u = jnp.concatenate([x_t, keep * jax.nn.one_hot(a_tm1, ENV.num_actions), (keep * r_t)[None]])
            s, y = m(s, u)
            logp = jax.nn.log_softmax(y[1:])
            return s, jnp.stack([y[0], logp[a_t], -jnp.sum(jnp.exp(logp) * logp)])

        a_prev = jnp.concatenate([a[:1], a[:-1]])
        return jax.lax.scan(body, m.initial_state(), (x, r, f.astype(x.dtype), a, a_prev))[1]

    both = jax.jit(jax.vmap(lambda *args: (outputs(*args), jax.jacrev(outputs)(*args)),
                            in_axes=(None, 0, 0, 0, 0)))
    vals, jac = (np.asarray(v) for v in both(theta, xs, rewards, firsts, actions))  # [B,T,3], [B,T,3,P]
    firsts, rewards = np.asarray(firsts), np.asarray(rewards)
    total = np.zeros_like(np.asarray(theta))
    for b in range(B):
        zv = zp = np.zeros_like(total)
        v_prev = 0.0
        for t in range(T):
            nf = 0.0 if firsts[b, t] else 1.0
            delta = rewards[b, t] + GAMMA * nf * vals[b, t, 0] - v_prev
            total += (AV * delta * zv + API * delta * zp + API * BETA * jac[b, t, 2]) / B
            zv = GAMMA * LAM * nf * zv + jac[b, t, 0]
            zp = GAMMA * lam_pi * nf * zp + jac[b, t, 1]
            v_prev = vals[b, t, 0]
    return unravel(jnp.asarray(total))


def _rel(a, b):
    fa = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(a)])
    fb = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(b)])
    return float(jnp.linalg.norm(fa - fb) / jnp.linalg.norm(fb))


@pytest.mark.parametrize(
    "estimator, kw",
    [(rx.RTRL(), {}), pytest.param(rx.RTRL(), {"lam_pi": 0.5}, marks=pytest.mark.slow), pytest.param(rx.TBPTT(T), {}, marks=pytest.mark.slow)],
    ids=["rtrl-combined-trace", "rtrl-separate-traces", "tbptt-T"],
)
def test_summed_actor_critic_updates_equal_unrolled_jax_grad(estimator, kw):
    model = _model()
    xs, rewards, firsts, actions = _trajectory()
    agent = _agent(estimator, model, **kw)
    state = agent.init(jax.random.key(0), num_envs=B)
    new, info = agent.learn(state, xs, rewards, firsts, actions)
    assert np.array_equal(np.asarray(info.action).T, np.asarray(actions))  # replayed as given
    ref = _reference_increment(model, xs, rewards, firsts, actions, lam_pi=kw.get("lam_pi", LAM))
    got = jax.tree_util.tree_map(lambda g: -g, new.grad_sum)  # the agent hands −ΣΔ to optax
    assert _rel(got, ref) <= 1e-10
    assert _rel(ref, jax.tree_util.tree_map(jnp.zeros_like, ref)) > 0.1  # not trivially zero


@pytest.mark.slow
def test_combined_trace_equals_separate_traces():
    xs, rewards, firsts, actions = _trajectory(seed=4)
    out = []
    for combine in (True, False):
        agent = _agent(rx.RTRL(), combine=combine, update_every=1)  # updates every step
        st, _ = agent.learn(agent.init(jax.random.key(0), num_envs=B), xs, rewards, firsts, actions)
        out.append(st.params)
    assert _rel(out[0], out[1]) <= 1e-10


def _pooled(samples):
    """Mean and variance of all ``samples`` pooled with the prior (weight 1e-4, mean 0, var 1)."""
    w = 1e-4
    tot = w + samples.size
    mean = samples.sum() / tot
    return mean, (w * (1.0 + mean**2) + ((samples - mean) ** 2).sum()) / tot


def test_normalised_observations_and_scaled_rewards_equal_preprocessing_by_hand():
    xs, rewards, firsts, actions = _trajectory(seed=6)
    xs = xs * jnp.array([1.0, 30.0, 0.01, 3.0]) + 2.0  # features on different scales
    agent = _agent(rx.RTRL(), normalize_obs=True, scale_reward=True)
    new, _ = agent.learn(agent.init(jax.random.key(0), num_envs=B), xs, rewards, firsts, actions)
    x, r, f = np.asarray(xs), np.asarray(rewards), np.asarray(firsts)
    g, gs = np.zeros(B), np.zeros((B, T))  # G_t = γ G_{t-1} + r_t, restarted after an episode start
    for t in range(T):
        gs[:, t] = g = GAMMA * g + r[:, t]
        g = np.where(f[:, t], 0.0, g)
    xn, rn = np.zeros_like(x), np.zeros_like(r)
    for t in range(T):  # the statistics include step t itself
        stats = [_pooled(x[:, : t + 1, i]) for i in range(ENV.obs_size)]
        mu, var = (np.array(a) for a in zip(*stats))
        xn[:, t] = np.clip((x[:, t] - mu) / np.sqrt(var + 1e-8), -5.0, 5.0)
        rn[:, t] = r[:, t] / np.sqrt(_pooled(gs[:, : t + 1])[1] + 1e-8)
    plain = _agent(rx.RTRL())
    ref, _ = plain.learn(plain.init(jax.random.key(0), num_envs=B), jnp.asarray(xn), jnp.asarray(rn),
                         firsts, actions)
    assert _rel(new.grad_sum, ref.grad_sum) <= 1e-10
    assert _rel(new.obs_stats.mean, jnp.asarray(mu)) <= 1e-12
    raw, _ = plain.learn(plain.init(jax.random.key(0), num_envs=B), xs, rewards, firsts, actions)
    assert _rel(raw.grad_sum, ref.grad_sum) > 0.1  # the preprocessing changed the update


def test_episode_end_resets_only_that_environment():
    xs, rewards, firsts, actions = _trajectory(seed=5)  # ends at step 3 (env 0), 5 (env 1)
    agent = _agent(rx.RTRL())
    state = agent.init(jax.random.key(0), num_envs=B)
    run = lambda *a: agent.learn(state, *a)[0]  # noqa: E731
    pick = lambda tree, b: jax.tree_util.tree_map(lambda a: a[b], tree)  # noqa: E731
    base = run(xs, rewards, firsts, actions)
    # env 0's first episode (steps 0-2) replaced by other data: after its reset at step 3 its
    # model state, estimator traces, eligibility traces and value are exactly as before,
    # and env 1 (no reset before step 5) is untouched
    k = jax.random.split(jax.random.key(9), 2)
    other = run(xs.at[0, :3].set(jax.random.normal(k[0], (3, ENV.obs_size))),
                rewards.at[0, 1:3].set(jax.random.normal(k[1], (2,))), firsts,
                actions.at[0, :3].set(1 - actions[0, :3]))
    for b in (0, 1):
        for field in ("carry", "trace", "v_prev"):
            assert _rel(pick(getattr(other, field), b), pick(getattr(base, field), b)) <= 1e-12, (b, field)
    # without the reset, env 0's past reaches its final state; env 1 is still untouched
    no_reset = firsts.at[0, 3].set(False)
    a = run(xs, rewards, no_reset, actions)
    assert _rel(pick(a.carry, 0), pick(base.carry, 0)) > 1e-3
    assert _rel(pick(a.trace, 0), pick(base.trace, 0)) > 1e-3
    for field in ("carry", "trace", "v_prev"):
        assert _rel(pick(getattr(a, field), 1), pick(getattr(base, field), 1)) <= 1e-12


def test_bad_input_is_a_clear_error_and_state_stays_valid():
    with pytest.raises(ValueError, match="unknown environment 'CartPol'"):
        make_env("CartPol")
    with pytest.raises(ValueError, match="discrete action spaces only.*Box"):
        ActorCritic(_model(), rx.RTRL(), optax.sgd(1.0), make_env("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match="input_size=7"):
        ActorCritic(rx.Readout(rx.GRU(5, 3, key=jax.random.key(0)), 3, key=jax.random.key(1)),
                    rx.RTRL(), optax.sgd(1.0), ENV)
    agent = _agent(rx.RTRL())
    state = agent.init(jax.random.key(0), num_envs=B)
    xs, rewards, firsts, actions = _trajectory()
    with pytest.raises(ValueError, match="xs holds NaN or Inf at stream 1, step 4"):
        agent.learn(state, xs.at[1, 4, 2].set(jnp.nan), rewards, firsts, actions)
    with pytest.raises(ValueError, match="actions must be integers in"):
        agent.learn(state, xs, rewards, firsts, actions.at[0, 0].set(5))
    # the state is still the one passed: learning from it matches a fresh state
    a, _ = agent.learn(state, xs, rewards, firsts, actions)
    b, _ = agent.learn(agent.init(jax.random.key(0), num_envs=B), xs, rewards, firsts, actions)
    assert _rel(a.grad_sum, b.grad_sum) == 0.0 and _rel(b.grad_sum, state.grad_sum) > 0


@pytest.mark.slow
def test_nan_observation_from_an_environment_is_a_clear_error():
    nan_env = EnvStream("NaN-CartPole", ENV.env, ENV.params, 2, 4, lambda o: o * jnp.nan)
    bad = ActorCritic(_model(), rx.RTRL(), SGD, nan_env)
    st = bad.init(jax.random.key(0), num_envs=2)
    with pytest.raises(ValueError, match="NaN/Inf observation at step 0"):
        bad.run(st, 3, chunk=3)


@pytest.mark.slow
def test_run_save_restore_is_bit_identical(tmp_path):
    agent = ActorCritic(_model(), rx.SnAp(1), optax.adam(1e-2), ENV, entropy=0.01,
                        normalize_obs=True, scale_reward=True)  # their statistics are state too
    st, _ = agent.run(agent.init(jax.random.key(1), num_envs=3), 20, chunk=20)
    agent.save(st, tmp_path / "ckpt")
    a, ha = agent.run(st, 20, chunk=20)
    b, hb = agent.run(agent.restore(tmp_path / "ckpt", num_envs=3), 20, chunk=20)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert ha["episodes"][0] == hb["episodes"][0]
    assert _rel(a.params, st.params) > 0  # it learned


# --- prediction -------------------------------------------------------------------------------


def test_returns_of_stream_cut_at_episode_ends():
    from rtrlax.agents.prediction import returns_of_stream
    from rtrlax.tasks.animal import discounted_return

    r = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 5.0, 1.0])[:, None]  # r_t arrives with o_t
    f = np.array([1, 0, 0, 0, 1, 0, 0], bool)[:, None]  # episode 1: steps 0-3, episode 2: 4-6
    g, exact = returns_of_stream(r, f, 0.5)
    # episode 1: G_0 = 1 + .5·2 + .25·3, G_3 = 0 (its episode ended); episode 2 is cut by the log
    assert np.allclose(g[:4, 0], discounted_return(jnp.asarray(r[:4, 0]), 0.5))
    assert np.allclose(g[4:, 0], discounted_return(jnp.asarray(r[4:, 0]), 0.5))
    assert exact[:, 0].tolist() == [True] * 4 + [False] * 3


@pytest.mark.parametrize("reset_state", [True, False])
def test_prediction_model_state_at_episode_ends(reset_state):
    from rtrlax.agents.prediction import TDPrediction

    model = rx.Readout(rx.GRU(N_IN, 3, key=jax.random.key(0)), 1, key=jax.random.key(1))
    agent = TDPrediction(model, rx.RTRL(), optax.sgd(0.0), ENV, reset_state=reset_state)
    xs, rewards, firsts, actions = _trajectory(seed=6)
    state = agent.init(jax.random.key(0), num_envs=B)
    base, v = agent.learn(state, xs, rewards, firsts, actions)
    other, v2 = agent.learn(state, xs.at[0, :3].multiply(-2.0), rewards, firsts, actions)
    same_after = float(jnp.max(jnp.abs(v[3:, 0] - v2[3:, 0])))
    if reset_state:  # env 0's new episode (from step 3) does not see the old one at all
        assert same_after <= 1e-12
        assert _rel(base.carry, other.carry) <= 1e-12 and _rel(base.trace, other.trace) <= 1e-12
    else:  # the model state runs on across the episode boundary
        assert same_after > 1e-4 and _rel(base.carry, other.carry) > 1e-4
    assert float(jnp.max(jnp.abs(v[:, 1] - v2[:, 1]))) == 0.0  # env 1 untouched


@pytest.mark.slow  # ~45 s on the loaded 2-core machine (two compiles of a CCN step)
def test_prediction_drives_a_constructive_network_stage_by_stage():
    from rtrlax.agents.prediction import TDPrediction

    ccn = rx.Constructive(N_IN, "4:2:7", key=jax.random.key(0))  # 2 stages of 2 columns, 7 steps each
    with pytest.raises(ValueError, match="reset_state=False"):
        TDPrediction(ccn, rx.ColoR(), rx.td_rmsprop(1e-2), ENV)
    agent = TDPrediction(ccn, rx.ColoR(), rx.td_rmsprop(1e-2), ENV, gamma=0.9, reset_state=False)
    st0 = agent.init(jax.random.key(0), num_envs=B)
    half, _ = agent.learn(st0, *_trajectory(seed=7))  # steps 0-6: stage 0 learns
    full, _ = agent.learn(half, *_trajectory(seed=8))  # steps 7-13: stage 0 frozen, stage 1 learns
    stage = lambda st, s: st.params.stages[s]  # noqa: E731
    assert _rel(stage(half, 1), stage(st0, 1)) == 0.0 and _rel(stage(half, 0), stage(st0, 0)) > 0
    assert _rel(stage(full, 0), stage(half, 0)) == 0.0 and _rel(stage(full, 1), stage(half, 1)) > 0


@pytest.mark.slow
def test_prediction_runs_on_cartpole_and_scores_msre():
    from rtrlax.agents.prediction import TDPrediction

    model = rx.Readout(rx.GRU(N_IN, 4, key=jax.random.key(0)), 1, key=jax.random.key(1), zero_init=True)
    agent = TDPrediction(model, rx.SnAp(1), rx.td_rmsprop(1e-2), ENV, gamma=0.9)
    st, hist = agent.run(agent.init(jax.random.key(0), num_envs=2), 600, chunk=300)
    assert hist["step"].tolist() == [300, 600] and hist["scored"][0] > 0
    assert np.isfinite(hist["msre"][0]) and hist["msre"][0] < hist["msre_zero"][0]  # it learned something


@pytest.mark.slow
def test_atari_stream_feeds_td_prediction():
    pytest.importorskip("ale_py")
    from rtrlax.agents.prediction import TDPrediction, msre_windows
    from rtrlax.tasks.atari import AtariStream

    stream = AtariStream("pong", num_envs=2, seed=0)
    xs, rewards, firsts, actions = stream.rollout(50)
    assert xs.shape == (2, 50, 256) and 0.0 <= xs.min() and xs.max() <= 1.0 and firsts[:, 0].all()
    model = rx.Readout(rx.GRU(275, 4, key=jax.random.key(0)), 1, key=jax.random.key(1))
    agent = TDPrediction(model, rx.SnAp(1), rx.td_rmsprop(1e-3), stream)
    st, v = agent.learn(agent.init(jax.random.key(0), num_envs=2), xs, rewards, firsts, actions)
    assert v.shape == (50, 2) and np.isfinite(np.asarray(v)).all()
    with pytest.raises(ValueError, match="feed atari-pong with learn"):
        agent.run(st, 10)
    assert set(msre_windows(v, rewards.T, firsts.T, 0.99, 25)) >= {"msre", "msre_zero"}


# --- experiments ------------------------------------------------------------------------------


def test_rl_command_line_checks_arguments_before_building():
    import argparse

    from rtrlax.experiments.rl import add_predict, add_rl

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_rl(sub)
    add_predict(sub)
    ok = parser.parse_args(["rl", "--env", "CartPole-PO", "--estimator", "color", "--cell", "columnar"])
    ok.check(ok)
    assert ok.normalize_obs and ok.scale_reward  # on by default
    raw = parser.parse_args(["rl", "--env", "CartPole-PO", "--no-normalize-obs", "--no-scale-reward"])
    assert not raw.normalize_obs and not raw.scale_reward
    for argv, msg in [
        (["rl", "--env", "CartPol"], "unknown environment 'CartPol'"),
        (["rl", "--env", "CartPole-v1", "--estimator", "color", "--cell", "gru"], "does not support cell"),
        (["rl", "--env", "CartPole-v1", "--memory-length", "3"], "MemoryChain"),
        (["predict", "--env", "Breakout-MinAtar", "--gamma", "1.0"], "--gamma"),
    ]:
        args = parser.parse_args(argv)
        with pytest.raises(ValueError, match=msg):
            args.check(args)


@pytest.mark.slow
def test_run_rl_and_run_predict_write_results(tmp_path):
    import json

    from rtrlax.experiments.rl import run_predict, run_rl

    r = run_rl(env="MemoryChain-bsuite", memory_length=3, estimator="tbptt:1", cell="ff", hidden=8,
               num_envs=4, steps=40, chunk=20, out=tmp_path / "rl")
    assert r["history"]["env_steps"] == [80.0, 160.0] and r["history"]["episodes"][0] > 0
    config = json.loads((tmp_path / "rl" / "metrics.json").read_text())["config"]
    assert config["env"] == "MemoryChain-bsuite" and config["normalize_obs"] and config["scale_reward"]
    p = run_predict(env="CartPole-v1", estimator="snap:1", cell="gru", hidden=4, num_envs=2, steps=40,
                    chunk=20, window=20, out=tmp_path / "pred")
    assert p["history"]["step"] == [20.0, 40.0] and (tmp_path / "pred" / "curve.png").exists()
