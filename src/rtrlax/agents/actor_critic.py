"""A streaming actor-critic with eligibility traces and a recurrent trunk.

Sutton & Barto (2018, §13.6, "Actor-Critic with Eligibility Traces"), with a recurrent
trunk whose parameter gradients come from any rtrlax online estimator (as in real-time
recurrent RL, Lemmel & Grosu, AAAI 2025, and exact RTRL in actor-critic agents, Irie,
Gopalakrishnan & Schmidhuber, ICLR 2024).  Per environment:

.. math::

    s_t &= f_\\theta(s_{t-1}, [x(o_t), \\mathrm{onehot}(a_{t-1}), r_t]) \\quad
           (s_{t-1} = s_0 \\text{ and } a_{t-1}, r_t \\text{ zeroed at an episode start}),\\\\
    y_t &= [v_t, \\ell_t], \\qquad \\pi_t = \\mathrm{softmax}(\\ell_t), \\qquad a_t \\sim \\pi_t,\\\\
    \\delta_{t-1} &= r_t + \\gamma (1 - \\mathrm{first}_t)\\, v_t - v_{t-1},\\\\
    \\Delta_t &= \\alpha_v \\delta_{t-1} z^v_{t-1} + \\alpha_\\pi \\delta_{t-1} z^\\pi_{t-1}
               + \\alpha_\\pi \\beta \\nabla_\\theta H(\\pi_t),\\\\
    z^v_t &= \\gamma\\lambda_v (1 - \\mathrm{first}_t)\\, z^v_{t-1} + \\nabla_\\theta v_t, \\qquad
    z^\\pi_t = \\gamma\\lambda_\\pi (1 - \\mathrm{first}_t)\\, z^\\pi_{t-1}
               + \\nabla_\\theta \\log \\pi_t(a_t),

and θ moves along the mean over environments of ``Δ_t`` through an optax
transformation (handed ``−Δ`` as its "gradient", so ``optax.sgd(1.0)`` is the plain
rule), every step or every ``update_every`` steps (then ``Σ Δ`` over those steps, with
θ held fixed).  ``first_t`` marks the first observation of an episode: ``γ`` is 0
across the boundary (``δ`` of the last step is ``r − v``), and the trunk's state, the
estimator's traces and both eligibility traces restart there.  ``v_t`` is computed with
the parameters of step ``t`` (one step of delay, as :class:`rtrlax.TDLambda`), so the TD
error of step ``t − 1`` is formed at step ``t`` before the trunk moves on.
Episodes cut by a time limit are treated as terminal (no bootstrapping).

**One estimator step, several gradients.**  ``∇v_t``, ``∇log π_t(a_t)`` and ``∇H(π_t)``
are contractions of the same influence matrix ``M_t`` with three output cotangents.
The estimator's ``step`` is vmapped over a one-hot weighting of the objectives only
(``loss = w · objectives(y_t)``): the forward pass and the trace update do not depend
on ``w`` and stay unbatched under ``vmap``, only the readout of the gradient is
batched — one estimator step, ``n`` gradients, for every estimator, without touching
the estimator protocol.  With ``λ_v = λ_π`` (the default) the two traces are kept as
one trace of ``∇(α_v v_t + α_π log π_t(a_t))`` (two objectives: that and
``α_π β H``); ``combine=False`` keeps ``z^v`` and ``z^π`` apart (three objectives).
Both give the same numbers (tested).

The action is drawn inside the objective from the (gradient-stopped) logits with a
per-step key and drawn again, identically, outside it.  Memory per environment: the
estimator's carry, one or two parameter-shaped traces and the increment; flat in the
number of steps.  Steps run in jitted ``lax.scan`` chunks.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..estimators.base import (
    AbstractOnlineEstimator,
    bind_estimator,
    mean_over_streams,
    split_params,
)
from ..tasks.envs import EnvStream, is_discrete


class ACState(NamedTuple):
    """Everything a run needs to continue bit-identically (``save``/``restore``)."""

    params: PyTree  #: the model's trainable arrays (shared by all environments)
    opt_state: PyTree
    carry: PyTree  #: the estimator's carry per environment (leading axis B)
    trace: tuple  #: (z,) or (z_v, z_pi): eligibility traces per environment
    v_prev: Float[Array, " B"]  #: v_{t-1}
    env: Any  #: the environments' states (leading axis B)
    obs: Any  #: raw o_t per environment (not yet seen by the agent)
    reward: Float[Array, " B"]  #: r_t
    first: Array  #: o_t starts an episode
    prev_action: Array  #: a_{t-1}
    ep_return: Float[Array, " B"]  #: return of the running episode so far
    grad_sum: PyTree  #: −Σ Δ since the last update (update_every > 1)
    step: Array  #: steps taken
    key: PRNGKeyArray
    obs_stats: "Moments"  #: running moments of the features (``normalize_obs``)
    ret_stats: "Moments"  #: running moments of the discounted reward sum (``scale_reward``)
    disc_return: Float[Array, " B"]  #: per environment: Σ γ^k r since the episode started


class Moments(NamedTuple):
    """Running mean and (population) variance of a stream of batches, pooled exactly
    (Chan et al.'s parallel update) from a prior of weight ``1e-4`` with mean 0 and
    variance 1 — the normaliser of Elsayed, Vasan & Mahmood (2024)."""

    count: Array
    mean: Array
    var: Array


def moments_init(shape, dtype) -> Moments:
    return Moments(jnp.asarray(1e-4, dtype), jnp.zeros(shape, dtype), jnp.ones(shape, dtype))


def moments_update(m: Moments, batch) -> Moments:
    """Pool the batch ``[n, *shape]`` into ``m``."""
    n = batch.shape[0]
    bm, bv = jnp.mean(batch, 0), jnp.var(batch, 0)
    tot = m.count + n
    d = bm - m.mean
    m2 = m.var * m.count + bv * n + d * d * m.count * n / tot
    return Moments(tot, m.mean + d * n / tot, m2 / tot)


class StepInfo(NamedTuple):
    """Per-environment outputs of one agent step."""

    v: Array  #: v_t
    action: Array  #: a_t
    entropy: Array  #: H(π_t)
    delta: Array  #: δ_{t-1}


def _where(flag, on_true, on_false):
    """Per-leaf select, leaving PRNG-key leaves (a stochastic estimator's stream key) alone."""

    def pick(a, b):
        if jnp.issubdtype(jnp.result_type(b), jax.dtypes.prng_key):
            return b
        return jnp.where(flag, a, b)

    return jax.tree_util.tree_map(pick, on_true, on_false)


def multi_grad_step(estimator, model, carry, x, objectives: Callable, aux, n: int):
    """One estimator step, ``n`` gradients.

    ``objectives(y, aux) -> [n]`` are scalar functions of the step's output; returns
    ``(carry_t, y_t, values [n], grads)`` where ``grads`` has a leading axis ``n``
    (``grads[i]`` is the estimator's estimate of ``∇θ objectives(y_t)[i]``).  The
    estimator's step is vmapped over one-hot weights of the objectives: what does not
    depend on the weights (the forward pass, the trace update) is computed once."""
    dtype = jax.tree_util.tree_leaves(split_params(model)[0])[0].dtype

    def one(w):
        return estimator.step(model, carry, x, w, lambda y, w_: jnp.dot(w_, objectives(y, aux)))

    try:
        carry, out = jax.vmap(one, out_axes=(None, (None, 0, 0)))(jnp.eye(n, dtype=dtype))
        return carry, out[0], out[1], out[2]
    except ValueError:  # an estimator whose carry depends on the loss: keep the first copy
        carry, out = jax.vmap(one)(jnp.eye(n, dtype=dtype))
        first = lambda t: jax.tree_util.tree_map(lambda a: a[0], t)  # noqa: E731
        return first(carry), first(out.y), out.loss, out.grads


class Memoryless(eqx.Module):
    """A feed-forward baseline with the model interface: ``y_t = W₂ tanh(W₁ x_t + b₁) + b₂``
    (its "state" is an empty vector).  Use it with ``rx.TBPTT(1)`` (exact for it)."""

    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 64, *, key, dtype=None):
        k1, k2 = jax.random.split(key)
        dtype = dtype or jnp.zeros(()).dtype
        self.hidden = eqx.nn.Linear(input_size, hidden_size, key=k1, dtype=dtype)
        self.out = eqx.nn.Linear(hidden_size, output_size, key=k2, dtype=dtype)
        self.out = eqx.tree_at(lambda l: (l.weight, l.bias), self.out,
                               (jnp.zeros_like(self.out.weight), jnp.zeros_like(self.out.bias)))

    @property
    def input_size(self) -> int:
        return self.hidden.in_features

    @property
    def output_size(self) -> int:
        return self.out.out_features

    def initial_state(self):
        return jnp.zeros((0,), self.hidden.weight.dtype)

    def __call__(self, state, x):
        return state, self.out(jnp.tanh(self.hidden(x)))


def trunk_input_size(env: EnvStream, feed_action_reward: bool = True) -> int:
    """The size of the trunk's input for ``env``: features (+ one-hot action + reward)."""
    return env.obs_size + (env.num_actions + 1 if feed_action_reward else 0)


class ActorCritic(eqx.Module):
    """The streaming actor-critic of the module docstring on ``env``.

    Args:
        model: an rtrlax model whose output is ``[v, logits (num_actions)]`` and whose
            input is :func:`trunk_input_size` (e.g. ``rx.Readout(cell, 1 + A, zero_init=True)``,
            ``rx.LRUNet(..., output_size=1 + A)``, :class:`Memoryless`).
        estimator: any online estimator (``rx.RTRL()``, ``rx.SnAp(1)``, ``rx.ColoR()``,
            ``rx.OnlineLRU()``, ``rx.RFLO()``, ``rx.UORO()``, ``rx.TBPTT(T)``).
        optimizer: an optax transformation (handed ``−Δ``).
        env: an :class:`~rtrlax.tasks.envs.EnvStream` with a discrete action space.
        gamma, lam, lam_pi: discount and trace decays (``lam_pi`` defaults to ``lam``).
        alpha_v, alpha_pi: critic and actor weights inside ``Δ``; ``entropy``: β.
        update_every: K; apply the optimizer to ``Σ Δ`` every K steps.
        combine: keep one combined trace when ``lam_pi == lam`` (default).
        feed_action_reward: append ``onehot(a_{t-1})`` and ``r_t`` to the trunk input.
        normalize_obs: feed the trunk ``clip((x − μ) / √(σ² + 10⁻⁸), ±obs_clip)`` with
            ``μ, σ²`` the running moments of the features over all environments and
            steps so far, updated with the step's batch before use (Elsayed, Vasan &
            Mahmood, 2024, "Streaming deep RL finally works").
        scale_reward: use ``r_t / √(σ²_G + 10⁻⁸)`` everywhere (TD error, trunk input),
            ``σ²_G`` the running variance of each environment's discounted reward sum
            ``G_t = γ G_{t−1} + r_t`` (reset at episode starts), as in the same paper:
            it keeps the value's scale near 1, so the critic's gradient does not drown the
            actor's in the shared trunk.
        obs_clip: the clip of the normalised features.
    """

    static: PyTree
    params0: PyTree
    estimator: AbstractOnlineEstimator
    env: EnvStream
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    lam_pi: float = eqx.field(static=True)
    alpha_v: float = eqx.field(static=True)
    alpha_pi: float = eqx.field(static=True)
    entropy: float = eqx.field(static=True)
    update_every: int = eqx.field(static=True)
    combine: bool = eqx.field(static=True)
    feed_action_reward: bool = eqx.field(static=True)
    normalize_obs: bool = eqx.field(static=True)
    scale_reward: bool = eqx.field(static=True)
    obs_clip: float = eqx.field(static=True)

    def __init__(self, model, estimator, optimizer, env, *, gamma=0.99, lam=0.9, lam_pi=None,
                 alpha_v=1.0, alpha_pi=1.0, entropy=0.01, update_every=1, combine=True,
                 feed_action_reward=True, normalize_obs=False, scale_reward=False, obs_clip=5.0):
        if not isinstance(estimator, AbstractOnlineEstimator):
            raise ValueError(
                f"ActorCritic needs an online estimator (rx.RTRL(), rx.SnAp(1), rx.ColoR(), "
                f"rx.OnlineLRU(), rx.RFLO(), rx.UORO(), rx.TBPTT(T)), got {type(estimator).__name__}."
            )
        if not isinstance(env, EnvStream):
            raise ValueError(f"env must be an EnvStream (rtrlax.tasks.envs.make_env(name)), got {type(env).__name__}.")
        if not is_discrete(env):
            space = type(env.env.action_space(env.params)).__name__
            raise ValueError(
                f"ActorCritic handles discrete action spaces only; {env.name} has a {space} "
                "action space. Use a discrete environment (CartPole-v1, MemoryChain-bsuite, a MinAtar game)."
            )
        lam_pi = lam if lam_pi is None else lam_pi
        for name, v in (("gamma", gamma), ("lam", lam), ("lam_pi", lam_pi)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {v}.")
        if not obs_clip > 0:
            raise ValueError(f"obs_clip must be > 0, got {obs_clip!r}.")
        if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}.")
        n_in = trunk_input_size(env, feed_action_reward)
        if getattr(model, "input_size", n_in) != n_in:
            raise ValueError(
                f"the model takes inputs of size {model.input_size}, but on {env.name} the trunk "
                f"reads {n_in} numbers (observation {env.obs_size}"
                + (f" + one-hot action {env.num_actions} + reward 1" if feed_action_reward else "")
                + f"); build it with input_size={n_in}."
            )
        n_out = 1 + env.num_actions
        if getattr(model, "output_size", n_out) != n_out:
            raise ValueError(
                f"the model has {model.output_size} outputs; an actor-critic on {env.name} needs "
                f"{n_out} (the value and {env.num_actions} action logits)."
            )
        self.params0, self.static = split_params(model)
        self.estimator = bind_estimator(estimator, model)
        self.optimizer, self.env = optimizer, env
        self.gamma, self.lam, self.lam_pi = float(gamma), float(lam), float(lam_pi)
        self.alpha_v, self.alpha_pi, self.entropy = float(alpha_v), float(alpha_pi), float(entropy)
        self.update_every = update_every
        self.combine = bool(combine) and lam_pi == lam
        self.feed_action_reward = bool(feed_action_reward)
        self.normalize_obs, self.scale_reward = bool(normalize_obs), bool(scale_reward)
        self.obs_clip = float(obs_clip)

    # --- state -----------------------------------------------------------------------------

    def model(self, state: ACState | None = None):
        return eqx.combine(self.params0 if state is None else state.params, self.static)

    def init(self, key: PRNGKeyArray, *, num_envs: int = 1) -> ACState:
        """A fresh agent on ``num_envs`` environments (each reset with its own key)."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        k_est, k_env, key = jax.random.split(key, 3)
        model, params = self.model(), self.params0
        carry = jax.vmap(lambda k: self._fresh(model, k))(jax.random.split(k_est, num_envs))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        batch = lambda t: jax.tree_util.tree_map(  # noqa: E731
            lambda a: jnp.broadcast_to(a, (num_envs,) + a.shape).copy(), t)
        trace = tuple(batch(zeros) for _ in range(1 if self.combine else 2))
        env_state, obs = jax.vmap(self.env.reset)(jax.random.split(k_env, num_envs))
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        fz = jnp.zeros((num_envs,), dtype)
        return ACState(params, self.optimizer.init(params), carry, trace, fz, env_state, obs,
                       fz, jnp.ones((num_envs,), bool), jnp.zeros((num_envs,), jnp.int32), fz,
                       zeros, jnp.zeros((), jnp.int32), key, moments_init((self.env.obs_size,), dtype),
                       moments_init((), dtype), fz)

    def _fresh(self, model, key):
        return self.estimator.init(model, key=key)

    # --- one step ---------------------------------------------------------------------------

    def _normalise(self, stats: Moments, x):
        return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + 1e-8), -self.obs_clip, self.obs_clip)

    def _preprocess(self, state: ACState, x, *, update: bool = True):
        """Observation normalisation and reward scaling (when enabled): the features and
        rewards the agent uses at this step, and the state with the statistics updated
        by this step's batch (``update=False``: frozen statistics, for acting only)."""
        dtype = state.reward.dtype
        x, reward = x.astype(dtype), state.reward
        if self.normalize_obs:
            stats = moments_update(state.obs_stats, x) if update else state.obs_stats
            x = jax.vmap(self._normalise, in_axes=(None, 0))(stats, x)
            state = state._replace(obs_stats=stats)
        if self.scale_reward:
            stats = state.ret_stats
            if update:
                g = self.gamma * state.disc_return + reward
                stats = moments_update(stats, g)
                state = state._replace(ret_stats=stats, disc_return=jnp.where(state.first, 0.0, g))
            reward = reward / jnp.sqrt(stats.var + 1e-8)
        return state, x, reward

    def _trunk_input(self, x, prev_action, reward, first):
        if not self.feed_action_reward:
            return x
        keep = 1.0 - first.astype(x.dtype)
        onehot = jax.nn.one_hot(prev_action, self.env.num_actions, dtype=x.dtype) * keep
        return jnp.concatenate([x, onehot, (reward.astype(x.dtype) * keep)[None]])

    def _objectives(self, y, aux):
        key, forced, use_forced = aux
        v, logits = y[0], y[1:]
        logp_all = jax.nn.log_softmax(logits)
        a = jnp.where(use_forced, forced, jax.random.categorical(key, jax.lax.stop_gradient(logits)))
        logp = logp_all[a]
        ent = -jnp.sum(jnp.exp(logp_all) * logp_all)
        if self.combine:
            return jnp.stack([self.alpha_v * v + self.alpha_pi * logp,
                              self.alpha_pi * self.entropy * ent])
        return jnp.stack([v, logp, ent])

    def env_step(self, params, carry, trace, v_prev, x, reward, first, prev_action, key,
                 forced=0, use_forced=False):
        """One environment's agent step with shared ``params``: returns ``(carry, trace,
        Δ_t, StepInfo)``.  ``forced``/``use_forced`` replace the sampled action (replay
        of a given trajectory)."""
        model = eqx.combine(params, self.static)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        fresh = self._fresh(model, None)
        carry = _where(first, fresh, carry)
        u = self._trunk_input(x.astype(dtype), prev_action, reward, first)
        aux = (key, jnp.asarray(forced, jnp.int32), jnp.asarray(use_forced, bool))
        n = 2 if self.combine else 3
        carry, y, vals, grads = multi_grad_step(self.estimator, model, carry, u, self._objectives, aux, n)
        v, logits = y[0], y[1:]
        action = jnp.where(aux[2], aux[1], jax.random.categorical(key, logits)).astype(jnp.int32)
        logp_all = jax.nn.log_softmax(logits)
        ent = -jnp.sum(jnp.exp(logp_all) * logp_all)
        notfirst = 1.0 - first.astype(dtype)
        delta = reward.astype(dtype) + self.gamma * notfirst * v - v_prev
        g = [jax.tree_util.tree_map(lambda a, i=i: a[i], grads) for i in range(n)]
        tm = jax.tree_util.tree_map
        if self.combine:
            (z,) = trace
            inc = tm(lambda z_, gh: delta * z_ + gh, z, g[1])
            trace = (tm(lambda z_, gz: self.gamma * self.lam * notfirst * z_ + gz, z, g[0]),)
        else:
            zv, zp = trace
            av, ap, ab = self.alpha_v, self.alpha_pi, self.alpha_pi * self.entropy
            inc = tm(lambda a, b, gh: av * delta * a + ap * delta * b + ab * gh, zv, zp, g[2])
            trace = (tm(lambda z_, gz: self.gamma * self.lam * notfirst * z_ + gz, zv, g[0]),
                     tm(lambda z_, gz: self.gamma * self.lam_pi * notfirst * z_ + gz, zp, g[1]))
        return carry, trace, inc, StepInfo(v, action, ent, delta)

    def _batch_step(self, state: ACState, x, keys, forced=None):
        """The agent step of every environment (vmap) and the update it may end with."""
        b = x.shape[0]
        state, x, reward = self._preprocess(state, x)
        if forced is None:
            forced, use = jnp.zeros((b,), jnp.int32), jnp.zeros((b,), bool)
        else:
            use = jnp.ones((b,), bool)
        carry, trace, inc, info = jax.vmap(
            self.env_step, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        )(state.params, state.carry, state.trace, state.v_prev, x, reward, state.first,
          state.prev_action, keys, forced, use)
        grad_sum = jax.tree_util.tree_map(lambda s, d: s - mean_over_streams(d), state.grad_sum, inc)
        step = state.step + 1
        params, opt_state = state.params, state.opt_state
        if self.update_every == 1:
            updates, opt_state = self.optimizer.update(grad_sum, opt_state, params)
            params = optax.apply_updates(params, updates)
            grad_sum = jax.tree_util.tree_map(jnp.zeros_like, grad_sum)
        else:
            def apply(args):
                p, o, gs = args
                upd, o = self.optimizer.update(gs, o, p)
                return optax.apply_updates(p, upd), o, jax.tree_util.tree_map(jnp.zeros_like, gs)

            params, opt_state, grad_sum = jax.lax.cond(
                step % self.update_every == 0, apply, lambda a: a, (params, opt_state, grad_sum))
        state = state._replace(params=params, opt_state=opt_state, carry=carry, trace=trace,
                               v_prev=info.v, grad_sum=grad_sum, step=step,
                               prev_action=info.action)
        return state, info

    # --- driving the environments -----------------------------------------------------------

    def run(self, state: ACState, n_steps: int, *, chunk: int = 1000, learn: bool = True,
            progress: bool | Callable[[int, dict], None] = False):
        """Advance every environment ``n_steps`` steps in jitted chunks of ``chunk`` steps.

        ``learn=False`` only acts (the trunk's plain forward pass and the policy; no
        estimator, traces or updates) — the reference for the cost of learning.
        Returns the new state and per-chunk metrics (numpy): ``step``, ``return``
        (mean return of the episodes that ended in the chunk, NaN if none),
        ``episodes``, ``reward`` (mean per step), ``entropy``.  A non-finite
        observation raises a ValueError naming the step and environment; the state
        passed in stays valid (nothing is mutated).
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}.")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}.")
        history: dict[str, list] = {}
        bar = None
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, unit="step", dynamic_ncols=True)
        done = 0
        while done < n_steps:
            n = min(chunk, n_steps - done)
            new, met = self._run_chunk(state, n, learn)
            bad = np.asarray(met.pop("bad_obs"))
            if bad.any():
                t, e = (int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"environment {e} produced a NaN/Inf observation at step {int(state.step) + t} "
                    f"of {self.env.name}; the agent state passed to run() was not changed."
                )
            state = new
            done += n
            row = {k: float(v) for k, v in met.items()}
            row["return"] = row.pop("return_sum") / row["episodes"] if row["episodes"] else float("nan")
            row["step"] = done
            for k, v in row.items():
                history.setdefault(k, []).append(v)
            if bar is not None:
                bar.update(n)
                bar.set_postfix({"return": f"{row['return']:.4g}", "entropy": f"{row['entropy']:.3g}"})
            if callable(progress):
                progress(done, row)
        if bar is not None:
            bar.close()
        return state, {k: np.asarray(v) for k, v in history.items()}

    @eqx.filter_jit
    def _run_chunk(self, state: ACState, n: int, learn: bool):
        env = self.env
        b = state.reward.shape[0]

        def body(state, _):
            key, k_act = jax.random.split(state.key)
            keys = jax.random.split(k_act, b)
            x = jax.vmap(env.features)(state.obs)
            bad = ~jnp.all(jnp.isfinite(x), axis=-1)
            state = state._replace(key=key)
            if learn:
                state, info = self._batch_step(state, x, keys)
                action, ent = info.action, info.entropy
            else:
                state, action, ent = self._act(state, x, keys)
            env_state, obs, r, done = jax.vmap(env.step)(state.env, action)
            ret = state.ep_return + r
            met = dict(return_sum=jnp.sum(jnp.where(done, ret, 0.0)), episodes=jnp.sum(done),
                       reward=jnp.mean(r), entropy=jnp.mean(ent))
            state = state._replace(env=env_state, obs=obs, reward=r.astype(state.reward.dtype),
                                   first=done, ep_return=jnp.where(done, 0.0, ret).astype(ret.dtype))
            return state, (met, bad)

        state, (met, bad) = jax.lax.scan(body, state, None, length=n)
        summary = dict(return_sum=jnp.sum(met["return_sum"]), episodes=jnp.sum(met["episodes"]),
                       reward=jnp.mean(met["reward"]), entropy=jnp.mean(met["entropy"]), bad_obs=bad)
        return state, summary

    def _act(self, state: ACState, x, keys):
        """Acting only: the trunk's plain forward pass and a sampled action."""
        model = self.model(state)
        fresh = self._fresh(model, None)
        _, x, reward = self._preprocess(state, x, update=False)

        def one(carry, x, reward, first, prev_action, key):
            carry = _where(first, fresh, carry)
            u = self._trunk_input(x.astype(state.reward.dtype), prev_action, reward, first)
            s, y = model(carry.state, u)
            logp = jax.nn.log_softmax(y[1:])
            a = jax.random.categorical(key, y[1:]).astype(jnp.int32)
            return carry._replace(state=s), a, -jnp.sum(jnp.exp(logp) * logp)

        carry, a, ent = jax.vmap(one)(state.carry, x, reward, state.first, state.prev_action, keys)
        return state._replace(carry=carry, prev_action=a, step=state.step + 1), a, ent

    # --- replaying a given trajectory --------------------------------------------------------

    def learn(self, state: ACState, xs, rewards, firsts, actions):
        """Learn from given trajectories instead of the environments: ``xs``
        ``[B, T, obs_size]`` (observation features), ``rewards`` ``[B, T]`` (``r_t``,
        received on arriving at ``o_t``), ``firsts`` ``[B, T]`` (``o_t`` starts an
        episode), ``actions`` ``[B, T]`` (``a_t``, taken after ``o_t``).  Returns the new
        state (its environment fields untouched) and the per-step :class:`StepInfo`
        (leading axes ``[T, B]``).  Validated first (shapes, action range, NaN/Inf):
        a ValueError names the bad stream and step, and ``state`` stays valid."""
        b = state.reward.shape[0]
        xs = jnp.asarray(xs)
        if xs.ndim != 3 or xs.shape[0] != b or xs.shape[2] != self.env.obs_size:
            raise ValueError(f"xs must have shape [num_envs={b}, T, obs_size={self.env.obs_size}], got {xs.shape}.")
        t = xs.shape[1]
        rewards, firsts, actions = (jnp.asarray(a) for a in (rewards, firsts, actions))
        for name, arr in (("rewards", rewards), ("firsts", firsts), ("actions", actions)):
            if arr.shape != (b, t):
                raise ValueError(f"{name} must have shape [num_envs={b}, T={t}], got {arr.shape}.")
        for name, arr in (("xs", xs.reshape(b, t, -1)), ("rewards", rewards[..., None])):
            bad = np.argwhere(~np.isfinite(np.asarray(arr)).all(-1))
            if len(bad):
                s, k = (int(i) for i in bad[0])
                raise ValueError(f"{name} holds NaN or Inf at stream {s}, step {k}; the agent state was not changed.")
        a = np.asarray(actions)
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= self.env.num_actions:
            raise ValueError(f"actions must be integers in [0, {self.env.num_actions}), got values {a.min()}..{a.max()}.")
        return self._learn(state, xs, rewards, firsts.astype(bool), actions.astype(jnp.int32))

    @eqx.filter_jit
    def _learn(self, state, xs, rewards, firsts, actions):
        swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731

        def body(state, inp):
            x, r, f, a = inp
            key, sub = jax.random.split(state.key)
            keys = jax.random.split(sub, x.shape[0])
            state = state._replace(key=key, reward=r.astype(state.reward.dtype), first=f)
            return self._batch_step(state, x, keys, forced=a)

        return jax.lax.scan(body, state, (swap(xs), swap(rewards), swap(firsts), swap(actions)))

    # --- checkpoints ------------------------------------------------------------------------

    def save(self, state: ACState, directory) -> None:
        """Write the whole agent state (parameters, optimizer, traces, environments, RNG)
        to ``directory`` atomically."""
        from ..learning.checkpoint import save_state

        save_state(directory, state)

    def restore(self, directory, *, num_envs: int) -> ACState:
        """Read a state written by :meth:`save` (same model, estimator, optimizer,
        environment and ``num_envs``); the run then continues bit-identically."""
        from ..learning.checkpoint import load_state

        return load_state(directory, self.init(jax.random.key(0), num_envs=num_envs))


def actor_critic_model(cell, num_actions: int, *, key):
    """``rx.Readout(cell, 1 + num_actions, zero_init=True)``: value and logits start at
    zero (a uniform first policy)."""
    from ..nets.readout import Readout

    return Readout(cell, 1 + num_actions, key=key, zero_init=True)
