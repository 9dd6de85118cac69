"""TD(λ) prediction (policy evaluation) on environment streams, any model, any estimator.

A fixed behaviour policy (:func:`rtrlax.tasks.envs.behaviour_policy`, scripted) drives
``B`` environments; the learner predicts the discounted return of the reward with the
first output of a recurrent model, ``v_t = y_t[0]``, as :class:`rtrlax.TDLambda` does,
with episode ends:

.. math::

    \\delta_{t-1} &= r_t + \\gamma (1 - \\mathrm{first}_t)\\, v_t - v_{t-1},\\qquad
    \\theta \\leftarrow \\theta + \\mathrm{opt}(\\mathrm{mean}_b\\, \\delta_{t-1} z_{t-1}),\\\\
    z_t &= \\gamma\\lambda (1 - \\mathrm{first}_t)\\, z_{t-1} + \\nabla_\\theta v_t ,

with ``∇θ v_t`` from any online estimator (``loss_fn = y[0]``).  ``G_t = Σ_j γ^j
r_{t+1+j}`` is cut at the episode's end (``γ`` is 0 across the boundary; a time-limit
cut counts as an end).  The trunk reads ``[x(o_t), onehot(a_{t-1}), r_t]`` (the
CCN papers' Atari input: observation, previous action and reward), the last two zero
at an episode's first step.

**Model state across episodes.**  ``reset_state=True`` (default) restarts the model's
state and the estimator's traces at every episode start, as the control agent does;
``reset_state=False`` keeps them running across episodes, as the CCN papers do (the
eligibility trace ``z`` is cut either way, since ``γ`` is 0 across the boundary).
Both are tested.

**MSRE.**  :meth:`TDPrediction.run` logs ``v_t``, ``r_t`` and the episode starts on the
host and, after the run, computes every step's true return from the logged stream
(:func:`returns_of_stream`).  Only steps whose episode ended inside the logged stream
are scored (their ``G_t`` is exact); the MSRE of a window is the mean of ``(v_t − G_t)²``
over it and is reported with the same window's ``mean G_t²`` (the error of predicting
zero), the normalisation the animal-learning benchmark uses.  The log costs 3 numbers
per step and environment on the host; learning itself is flat in the number of steps.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..estimators.base import AbstractOnlineEstimator, bind_estimator, mean_over_streams, split_params
from ..tasks.envs import EnvStream, Transition, behaviour_policy, policy_stream
from .actor_critic import _where


class PredState(NamedTuple):
    params: PyTree
    opt_state: PyTree
    carry: PyTree  #: the estimator's carry per environment
    trace: PyTree  #: z per environment
    v_prev: Float[Array, " B"]
    prev_action: Array  #: a_{t-1} per environment
    stream: PyTree  #: the environments under the behaviour policy (PolicyStreamState [B])
    step: Array
    key: PRNGKeyArray


def returns_of_stream(rewards, firsts, gamma: float):
    """``(G, exact)`` for a logged stream (``[T, B]`` numpy arrays; ``rewards[t]`` is
    ``r_t``, received on arriving at ``o_t``): ``G_t = r_{t+1} + γ (1 − first_{t+1}) G_{t+1}``,
    and ``exact[t]`` whether step t's episode ended inside the log (else ``G_t`` is cut)."""
    rewards, firsts = np.asarray(rewards, np.float64), np.asarray(firsts, bool)
    g = np.zeros_like(rewards)
    exact = np.zeros(rewards.shape, bool)
    g_next, ended = np.zeros(rewards.shape[1:]), np.zeros(rewards.shape[1:], bool)
    for t in range(rewards.shape[0] - 1, -1, -1):
        if t + 1 < rewards.shape[0]:
            nf = ~firsts[t + 1]
            g_next = rewards[t + 1] + gamma * nf * g_next
            ended = firsts[t + 1] | ended
        g[t], exact[t] = g_next, ended
    return g, exact


class TDPrediction(eqx.Module):
    """TD(λ) prediction of the return on ``env`` under ``policy`` (module docstring).

    Args:
        model: an rtrlax model with input size ``env.obs_size + env.num_actions + 1``;
            its first output is the prediction.
        estimator: any online estimator.
        optimizer: an optax transformation, handed ``−δ z`` (``rx.td_rmsprop(α)`` gives the
            CCN papers' normalised step, ``optax.sgd(α)`` plain TD(λ)).
        env: an :class:`~rtrlax.tasks.envs.EnvStream`; ``policy``: ``policy(key, raw_obs)
            -> action`` (default :func:`~rtrlax.tasks.envs.behaviour_policy` of ``env.name``).
        gamma, lam: discount and trace decay; ``reset_state``: see the module docstring.

    A model with ``update_scale(state)`` (:class:`rtrlax.Constructive`, the CCN) gets its
    per-parameter step-size factors applied to the optimizer's update, as
    :class:`rtrlax.TDLambda` does; its stages follow its own step count, so it needs
    ``reset_state=False`` (all environments then share one count).
    """

    static: PyTree
    params0: PyTree
    estimator: AbstractOnlineEstimator
    env: EnvStream = eqx.field(static=True)
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    policy: Callable = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    reset_state: bool = eqx.field(static=True)

    def __init__(self, model, estimator, optimizer, env, *, policy=None, gamma=0.99, lam=0.9,
                 reset_state=True):
        if not isinstance(estimator, AbstractOnlineEstimator):
            raise ValueError(f"TDPrediction needs an online estimator, got {type(estimator).__name__}.")
        if not all(hasattr(env, a) for a in ("name", "obs_size", "num_actions")):
            raise ValueError(
                "env must be an EnvStream (rtrlax.tasks.envs.make_env(name)) or a host-side "
                f"stream such as rtrlax.tasks.atari.AtariStream, got {type(env).__name__}.")
        if env.num_actions < 1:
            raise ValueError(f"{env.name} has no discrete action space; prediction streams need one.")
        if not (0.0 <= gamma < 1.0) or not (0.0 <= lam <= 1.0):
            raise ValueError(f"need 0 <= gamma < 1 and 0 <= lam <= 1, got gamma={gamma}, lam={lam}.")
        n_in = env.obs_size + env.num_actions + 1
        if getattr(model, "input_size", n_in) != n_in:
            raise ValueError(
                f"the model takes inputs of size {model.input_size}; on {env.name} the predictor "
                f"reads {n_in} (observation {env.obs_size} + one-hot action {env.num_actions} + "
                f"reward 1): build it with input_size={n_in}."
            )
        if hasattr(model, "update_scale") and reset_state:
            raise ValueError(
                f"{type(model).__name__} adds features by its own step count, which an episode "
                "reset would restart: use reset_state=False (the CCN papers keep the state "
                "running across episodes).")
        self.params0, self.static = split_params(model)
        self.estimator = bind_estimator(estimator, model)
        self.optimizer, self.env = optimizer, env
        if policy is None and isinstance(env, EnvStream):
            policy = behaviour_policy(env.name)
        self.policy = policy
        self.gamma, self.lam, self.reset_state = float(gamma), float(lam), bool(reset_state)

    def model(self, state: PredState | None = None):
        return eqx.combine(self.params0 if state is None else state.params, self.static)

    def init(self, key: PRNGKeyArray, *, num_envs: int = 1) -> PredState:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        k_est, k_env, key = jax.random.split(key, 3)
        params = self.params0
        carry = jax.vmap(lambda k: self.estimator.init(self.model(), key=k))(jax.random.split(k_est, num_envs))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        trace = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (num_envs,) + a.shape).copy(), zeros)
        stream = None  # a host-side stream (Atari) is fed through learn()
        if isinstance(self.env, EnvStream):
            init, _ = policy_stream(self.env, self.policy)
            stream = jax.vmap(init)(jax.random.split(k_env, num_envs))
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        return PredState(params, self.optimizer.init(params), carry, trace, jnp.zeros((num_envs,), dtype),
                         jnp.zeros((num_envs,), jnp.int32), stream, jnp.zeros((), jnp.int32), key)

    # --- one step of every environment ---------------------------------------------------

    def _one(self, params, carry, trace, v_prev, prev_action, tr: Transition):
        model = eqx.combine(params, self.static)
        dtype = v_prev.dtype
        if self.reset_state:
            carry = _where(tr.first, self.estimator.init(model), carry)
        keep = 1.0 - tr.first.astype(dtype)
        u = jnp.concatenate([tr.x.astype(dtype), keep * jax.nn.one_hot(prev_action, self.env.num_actions, dtype=dtype),
                             (keep * tr.reward.astype(dtype))[None]])
        carry, out = self.estimator.step(model, carry, u, None, lambda y, _: y[0])
        v = out.loss
        delta = tr.reward.astype(dtype) + self.gamma * keep * v - v_prev
        inc = jax.tree_util.tree_map(lambda z: delta * z, trace)
        trace = jax.tree_util.tree_map(lambda z, g: self.gamma * self.lam * keep * z + g, trace, out.grads)
        return carry, trace, v, inc

    def _batch(self, state: PredState, tr: Transition):
        carry, trace, v, inc = jax.vmap(self._one, in_axes=(None, 0, 0, 0, 0, 0))(
            state.params, state.carry, state.trace, state.v_prev, state.prev_action, tr)
        direction = jax.tree_util.tree_map(lambda d: -mean_over_streams(d), inc)
        updates, opt_state = self.optimizer.update(direction, state.opt_state, state.params)
        model = self.model(state)
        if hasattr(model, "update_scale"):  # a constructive network: frozen stages, 1/#features
            scale = model.update_scale(jax.tree_util.tree_map(lambda a: a[0], carry.state))
            updates = jax.tree_util.tree_map(lambda u, s: u * s, updates, scale)
        return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                              carry=carry, trace=trace, v_prev=v, prev_action=tr.action,
                              step=state.step + 1), v

    # --- drivers -------------------------------------------------------------------------------

    def run(self, state: PredState, n_steps: int, *, chunk: int = 1000, window: int | None = None,
            progress: bool | Callable = False):
        """``n_steps`` steps of every environment in jitted chunks; returns the state and a
        history with, per window of ``window`` steps (default: ``chunk``), ``step``,
        ``msre``, ``msre_zero`` (mean ``G²``), ``scored`` (steps scored) — see the module
        docstring.  A non-finite observation raises a ValueError (state unchanged)."""
        for name, v in (("n_steps", n_steps), ("chunk", chunk)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "n_steps" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'n_steps' else 'positive'} integer, got {v!r}.")
        if not isinstance(self.env, EnvStream):
            raise ValueError(f"run() steps jittable gymnax streams; feed {self.env.name} with learn().")
        window = chunk if window is None else window
        logs, done = [], 0
        bar = None
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, unit="step", dynamic_ncols=True)
        while done < n_steps:
            n = min(chunk, n_steps - done)
            new, (v, r, f) = self._run_chunk(state, n)
            bad = np.argwhere(~np.isfinite(np.asarray(v)))
            if len(bad):
                t, e = (int(i) for i in bad[0])
                raise ValueError(
                    f"the prediction became NaN/Inf at step {int(state.step) + t} of environment {e} "
                    f"({self.env.name}): check the observations and the step size; the state passed "
                    "to run() was not changed.")
            state = new
            logs.append((np.asarray(v), np.asarray(r), np.asarray(f)))
            done += n
            if bar is not None:
                bar.update(n)
            if callable(progress):
                progress(done, {})
        if bar is not None:
            bar.close()
        if not logs:
            return state, {}
        v, r, f = (np.concatenate(x) for x in zip(*logs))
        return state, msre_windows(v, r, f, self.gamma, window)

    @eqx.filter_jit
    def _run_chunk(self, state: PredState, n: int):
        _, next_ = policy_stream(self.env, self.policy)

        def body(state, _):
            stream, tr = jax.vmap(next_)(state.stream)
            state, v = self._batch(state._replace(stream=stream), tr)
            return state, (v, tr.reward, tr.first)

        return jax.lax.scan(body, state, None, length=n)

    def learn(self, state: PredState, xs, rewards, firsts, actions):
        """Learn from a given stream (e.g. Atari stepped on the host): ``xs [B, T, obs_size]``,
        ``rewards``, ``firsts``, ``actions`` ``[B, T]`` as in :class:`~rtrlax.tasks.envs.Transition`.
        Returns the state and ``v`` ``[T, B]``.  NaN/Inf raise a ValueError naming the
        stream and step before any work (state unchanged)."""
        xs = jnp.asarray(xs)
        b = state.v_prev.shape[0]
        if xs.ndim != 3 or xs.shape[0] != b or xs.shape[2] != self.env.obs_size:
            raise ValueError(f"xs must have shape [num_envs={b}, T, obs_size={self.env.obs_size}], got {xs.shape}.")
        t = xs.shape[1]
        arrs = [jnp.asarray(a) for a in (rewards, firsts, actions)]
        for name, a in zip(("rewards", "firsts", "actions"), arrs):
            if a.shape != (b, t):
                raise ValueError(f"{name} must have shape [num_envs={b}, T={t}], got {a.shape}.")
        for name, a in (("xs", xs), ("rewards", arrs[0][..., None])):
            bad = np.argwhere(~np.isfinite(np.asarray(a)).all(-1))
            if len(bad):
                s, k = (int(i) for i in bad[0])
                raise ValueError(f"{name} holds NaN or Inf at stream {s}, step {k}; the state was not changed.")
        return self._learn(state, Transition(xs, arrs[0].astype(jnp.float32), arrs[1].astype(bool),
                                             arrs[2].astype(jnp.int32)))

    @eqx.filter_jit
    def _learn(self, state, trs):
        swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
        return jax.lax.scan(lambda s, tr: self._batch(s, tr), state, jax.tree_util.tree_map(swap, trs))

    def save(self, state: PredState, directory) -> None:
        from ..learning.checkpoint import save_state

        save_state(directory, state)

    def restore(self, directory, *, num_envs: int) -> PredState:
        from ..learning.checkpoint import load_state

        return load_state(directory, self.init(jax.random.key(0), num_envs=num_envs))


def msre_windows(v, rewards, firsts, gamma: float, window: int) -> dict:
    """Per window of ``window`` steps of a logged stream (``[T, B]`` arrays): the MSRE over
    the scored steps, the mean ``G²`` over the same steps, and how many were scored."""
    g, exact = returns_of_stream(rewards, firsts, gamma)
    err = (np.asarray(v, np.float64) - g) ** 2
    out = {"step": [], "msre": [], "msre_zero": [], "scored": []}
    for start in range(0, len(v), window):
        sl = slice(start, start + window)
        m = exact[sl]
        out["step"].append(min(start + window, len(v)))
        out["scored"].append(int(m.sum()))
        out["msre"].append(float(err[sl][m].mean()) if m.any() else float("nan"))
        out["msre_zero"].append(float((g[sl][m] ** 2).mean()) if m.any() else float("nan"))
    return {k: np.asarray(x) for k, x in out.items()}
