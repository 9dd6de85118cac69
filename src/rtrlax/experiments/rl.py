"""Online RL experiments: what ``rtrlax run rl`` and ``rtrlax run predict`` do.

* :func:`run_rl` — the streaming actor-critic (:mod:`rtrlax.agents.actor_critic`) on a
  gymnax environment, ``num_envs`` environments in parallel, the trunk named by
  estimator / cell / network as everywhere else (``cell="ff"``: the memoryless
  feed-forward baseline, learned exactly by ``tbptt:1``);
* :func:`run_predict` — TD(λ) prediction (:mod:`rtrlax.agents.prediction`) of the
  return under the environment's scripted behaviour policy, MSRE per window;
  ``env="atari-<game>"`` steps that Atari game through ale-py on the host.

Both take plain arguments, return ``{"history": ..., "seconds": ...}`` and, with
``out``, write ``metrics.json``/``metrics.csv``/``curve.png``/``config.toml``.
This module also registers the environments (kind ``"environment"``) in the
registry; :func:`add_rl` / :func:`add_predict` add the two sub-commands to the CLI.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

from . import registry
from .results import write_results

#: cells without an rtrlax core (handled here, not in the registry)
FEEDFORWARD = "ff"


# --- registry entries -----------------------------------------------------------------------


def _env(name):
    def build(**options):
        from ..tasks.envs import make_env

        return make_env(name, **options)

    return build


_ENV_DESCRIPTIONS = {
    "CartPole-v1": "gymnax CartPole (obs 4, actions 2, 500-step limit)",
    "CartPole-PO": "CartPole with both velocities hidden (obs 2): needs memory",
    "MemoryChain-bsuite": "bsuite memory chain: repeat the first step's cue after memory_length steps",
    "Breakout-MinAtar": "MinAtar Breakout (10x10x4 grid, 3 actions)",
    "Asterix-MinAtar": "MinAtar Asterix (10x10x4, 5 actions)",
    "Freeway-MinAtar": "MinAtar Freeway (10x10x7, 3 actions)",
    "SpaceInvaders-MinAtar": "MinAtar Space Invaders (10x10x6, 4 actions)",
}
for _name, _desc in _ENV_DESCRIPTIONS.items():
    registry.register("environment", _name, _env(_name), description=_desc + " [needs rtrlax[rl]]")


def check_env(name: str) -> None:
    """A ValueError unless ``name`` is a registered environment or ``atari-<game>``
    (no JAX, no gymnax import)."""
    if name.lower().startswith("atari-"):
        return
    registry.get("environment", name)


def _model(estimator, cell, network, n_in, n_out, hidden, layers, key, stages=None):
    import jax

    from ..agents.actor_critic import Memoryless

    if stages is not None:
        from ..nets.ccn import Constructive

        if estimator != "color" or n_out != 1:
            raise ValueError("a constructive network (stages=...) predicts one number and is "
                             "learned by --estimator color.")
        return Constructive(n_in, stages, key=key)
    if cell == FEEDFORWARD:
        if not estimator.startswith(("tbptt", "rtrl", "uoro")):
            raise ValueError("the feed-forward baseline (cell 'ff') has no recurrent core: use "
                             "--estimator tbptt:1 (exact for it).")
        return Memoryless(n_in, n_out, hidden, key=key)
    registry.check_pair(estimator, cell)
    k1, _ = jax.random.split(key)
    return registry.make_network(network, cell, n_in, n_out, hidden, key=k1, layers=layers)


@functools.lru_cache(maxsize=None)
def _optimizer(kind: str, lr: float):
    """One optimizer object per (kind, lr): agents built alike then share compiled chunks."""
    import optax

    from ..learning.td import td_rmsprop

    return optax.adam(lr) if kind == "adam" else td_rmsprop(lr)


def _env_name(env, memory_length):
    return env if memory_length is None else f"{env}-m{memory_length}"


# --- control ----------------------------------------------------------------------------------


def run_rl(*, env: str = "CartPole-PO", estimator: str = "snap:1", cell: str = "gru",
           network: str = "readout", hidden: int = 32, layers: int = 1, num_envs: int = 32,
           steps: int = 2000, lr: float = 3e-3, gamma: float = 0.99, lam: float = 0.9,
           entropy: float = 0.01, update_every: int = 1, chunk: int = 500, seed: int = 0,
           memory_length: int | None = None, feed_action_reward: bool = True,
           normalize_obs: bool = True, scale_reward: bool = True, out: Path | None = None, save: Path | None = None,
           resume: Path | None = None, quiet: bool = True, config: dict | None = None) -> dict:
    """The actor-critic for ``steps`` steps of each of ``num_envs`` environments (Adam,
    ``lr``).  History per chunk: ``step`` (steps per environment), ``env_steps``,
    ``return`` (mean return of the episodes that ended), ``episodes``, ``reward``,
    ``entropy``.  ``feed_action_reward=False``: the trunk reads the observation only (a
    truly reactive baseline; otherwise a feed-forward policy can keep a bit of memory
    in its previous action).  ``normalize_obs`` / ``scale_reward`` (on by default): the
    running observation normalisation and reward scaling of
    :class:`~rtrlax.agents.actor_critic.ActorCritic` — without them the recurrent
    agents do not learn partially observable CartPole (docs/results/rl.md)."""
    import jax

    from ..agents.actor_critic import ActorCritic, trunk_input_size
    from ..tasks.envs import make_env

    check_env(env)
    stream = make_env(env, **({} if memory_length is None else {"memory_length": memory_length}))
    est = registry.make_estimator(estimator)
    k_model, k_agent = jax.random.split(jax.random.key(seed))
    model = _model(estimator, cell, network, trunk_input_size(stream, feed_action_reward),
                   1 + stream.num_actions, hidden, layers, k_model)
    agent = ActorCritic(model, est, _optimizer("adam", lr), stream, gamma=gamma, lam=lam, entropy=entropy,
                        update_every=update_every, feed_action_reward=feed_action_reward,
                        normalize_obs=normalize_obs, scale_reward=scale_reward)
    state = agent.restore(resume, num_envs=num_envs) if resume else agent.init(k_agent, num_envs=num_envs)
    bar = None
    if not quiet:
        from .online import progress_bar

        bar = progress_bar(steps, f"rl {_env_name(env, memory_length)} {estimator} {cell}")

    def progress(done, row):
        if bar is not None:
            bar.update(row["step"] - bar.n)
            if not math.isnan(row["return"]):
                bar.set_postfix({"return": f"{row['return']:.3g}", "entropy": f"{row['entropy']:.2f}"})

    t0 = time.perf_counter()
    state, hist = agent.run(state, steps, chunk=chunk, progress=progress)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    history = {k: [float(x) for x in v] for k, v in hist.items()}
    history["env_steps"] = [s * num_envs for s in history.get("step", [])]
    if save is not None:
        agent.save(state, save)
    if out is not None:
        cfg = config or dict(env=env, estimator=estimator, cell=cell, network=network, hidden=hidden,
                             layers=layers, num_envs=num_envs, steps=steps, lr=lr, gamma=gamma,
                             lam=lam, entropy=entropy, update_every=update_every, seed=seed,
                             memory_length=memory_length, feed_action_reward=feed_action_reward,
                             normalize_obs=normalize_obs, scale_reward=scale_reward)
        write_results(Path(out), {k: v for k, v in cfg.items() if v is not None}, history,
                      title=f"actor-critic on {_env_name(env, memory_length)}", label=f"{estimator} {cell}",
                      measures={"seconds": seconds, "env_steps_per_second": steps * num_envs / seconds})
    return {"history": history, "seconds": seconds, "state": state, "agent": agent}


# --- prediction -----------------------------------------------------------------------------


def run_predict(*, env: str = "Breakout-MinAtar", estimator: str = "snap:1", cell: str = "gru",
                network: str = "readout", hidden: int = 16, layers: int = 1, num_envs: int = 4,
                steps: int = 5000, lr: float = 1e-3, gamma: float = 0.9, lam: float = 0.9,
                window: int = 1000, chunk: int = 1000, seed: int = 0, reset_state: bool = True,
                stages: str | None = None, out: Path | None = None, quiet: bool = True, config: dict | None = None) -> dict:
    """TD(λ) prediction with ``rx.td_rmsprop(lr)`` under the behaviour policy; history per
    window: ``step``, ``msre``, ``msre_zero`` (the MSRE of predicting 0), ``scored``.
    ``stages="total:per_stage:steps"`` predicts with a constructive network
    (:class:`rtrlax.Constructive`, the CCN; ``estimator="color"``, ``reset_state=False``)
    instead of ``cell``/``network``/``hidden``."""
    import jax
    import numpy as np

    from ..agents.prediction import TDPrediction, msre_windows

    check_env(env)
    atari = env.lower().startswith("atari-")
    if atari:
        from ..tasks.atari import AtariStream

        stream = AtariStream(env[len("atari-"):], num_envs=num_envs, seed=seed)
    else:
        from ..tasks.envs import make_env

        stream = make_env(env)
    est = registry.make_estimator(estimator)
    k_model, k_agent = jax.random.split(jax.random.key(seed))
    model = _model(estimator, cell, network, stream.obs_size + stream.num_actions + 1, 1, hidden,
                   layers, k_model, stages=stages)
    agent = TDPrediction(model, est, _optimizer("td_rmsprop", lr), stream, gamma=gamma, lam=lam,
                         reset_state=reset_state)
    state = agent.init(k_agent, num_envs=num_envs)
    bar = None
    if not quiet:
        from .online import progress_bar

        bar = progress_bar(steps, f"predict {env} {estimator} {cell}")
    t0 = time.perf_counter()
    if atari:
        logs, done = [], 0
        while done < steps:
            n = min(chunk, steps - done)
            xs, r, f, a = stream.rollout(n)
            state, v = agent.learn(state, xs, r, f, a)
            logs.append((np.asarray(v), r.T, f.T))
            done += n
            if bar is not None:
                bar.update(n)
        v, r, f = (np.concatenate(x) for x in zip(*logs))
        hist = msre_windows(v, r, f, gamma, window)
    else:
        state, hist = agent.run(state, steps, chunk=chunk, window=window,
                                progress=(lambda d, _: bar.update(d - bar.n)) if bar else False)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    history = {k: [float(x) for x in v] for k, v in hist.items()}
    if out is not None:
        cfg = config or dict(env=env, estimator=estimator, cell=cell, network=network, hidden=hidden,
                             layers=layers, num_envs=num_envs, steps=steps, lr=lr, gamma=gamma,
                             lam=lam, window=window, seed=seed, reset_state=reset_state, stages=stages)
        write_results(Path(out), {k: v for k, v in cfg.items() if v is not None}, history,
                      title=f"TD(λ) prediction on {env}",
                      label=f"{estimator} {cell}", measures={"seconds": seconds})
    return {"history": history, "seconds": seconds, "state": state, "agent": agent}


# --- command line (wired by cli.RUNNERS) ------------------------------------------------------------


def _common(p, *, hidden, steps, lr, gamma, lam, num_envs) -> None:
    p.add_argument("--env", required=True, help="an environment: " + ", ".join(_ENV_DESCRIPTIONS))
    p.add_argument("--estimator", default="snap:1", help="an online estimator (`rtrlax list`)")
    p.add_argument("--cell", default="gru", help="a cell (`rtrlax list`), or ff (memoryless baseline)")
    p.add_argument("--network", default="readout", help="readout | lrunet")
    p.add_argument("--hidden", type=int, default=hidden)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=num_envs, help="environments in parallel")
    p.add_argument("--steps", type=int, default=steps, help="steps per environment")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--gamma", type=float, default=gamma)
    p.add_argument("--lam", type=float, default=lam)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--quiet", action="store_true")


def check_args(args) -> None:
    """Argument checks without JAX (the CLI's ``check``)."""
    check_env(args.env)
    registry.parse("estimator", args.estimator)
    if args.cell != FEEDFORWARD:
        registry.check_pair(args.estimator, args.cell)
        registry.get("network", args.network)
    for name in ("hidden", "layers", "num_envs", "steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {args.lr}.")
    for name in ("gamma", "lam"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0 or (name == "gamma" and v >= 1.0 and args.command_name == "predict"):
            raise ValueError(f"--{name} must lie in [0, 1], got {v}.")
    if getattr(args, "memory_length", None) is not None:
        if args.memory_length < 1 or args.env != "MemoryChain-bsuite":
            raise ValueError("--memory-length takes a positive integer, with --env MemoryChain-bsuite.")


def add_rl(sub):
    """``rtrlax run rl``."""
    p = sub.add_parser("rl", help="streaming actor-critic on a gymnax environment (episode return)",
                       description="Online actor-critic with eligibility traces and a recurrent trunk "
                       "learned by an online estimator; every step an update, no replay.")
    _common(p, hidden=32, steps=2000, lr=3e-3, gamma=0.99, lam=0.9, num_envs=32)
    p.add_argument("--entropy", type=float, default=0.01, help="entropy weight β")
    p.add_argument("--update-every", type=int, default=1)
    p.add_argument("--memory-length", type=int, default=None, help="MemoryChain: steps to remember")
    p.add_argument("--no-normalize-obs", dest="normalize_obs", action="store_false",
                   help="feed raw features (default: running mean/std normalisation)")
    p.add_argument("--no-scale-reward", dest="scale_reward", action="store_false",
                   help="use raw rewards (default: divided by the running std of the discounted return)")
    p.add_argument("--save", type=Path, default=None)
    p.add_argument("--resume", type=Path, default=None)
    p.set_defaults(func=_run_rl_cli, check=check_args, command_name="rl")
    return p


def add_predict(sub):
    """``rtrlax run predict``."""
    p = sub.add_parser("predict", help="TD(λ) prediction of the return on an environment stream (MSRE)",
                       description="Policy evaluation under a fixed scripted behaviour policy; "
                       "env atari-<game> steps an Atari game through ale-py.")
    _common(p, hidden=16, steps=5000, lr=1e-3, gamma=0.9, lam=0.9, num_envs=4)
    p.add_argument("--window", type=int, default=1000, help="steps per MSRE window")
    p.add_argument("--keep-state", action="store_true", help="do not reset the model state at episode ends")
    p.set_defaults(func=_run_predict_cli, check=check_args, command_name="predict")
    return p


def _kwargs(args, names) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names}


def _run_rl_cli(args) -> dict:
    names = ("env", "estimator", "cell", "network", "hidden", "layers", "num_envs", "steps", "lr",
             "gamma", "lam", "entropy", "update_every", "seed", "memory_length", "normalize_obs",
             "scale_reward", "out", "save", "resume", "quiet")
    out = args.out or Path("runs") / f"rl-{args.env}-{args.estimator.replace(':', '')}-{args.cell}"
    res = run_rl(**(_kwargs(args, names) | {"out": out, "config": args.resolved}))
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png ({res['seconds']:.1f} s)")
    return res


def _run_predict_cli(args) -> dict:
    names = ("env", "estimator", "cell", "network", "hidden", "layers", "num_envs", "steps", "lr",
             "gamma", "lam", "window", "seed", "out", "quiet")
    out = args.out or Path("runs") / f"predict-{args.env}-{args.estimator.replace(':', '')}-{args.cell}"
    res = run_predict(**(_kwargs(args, names) | {"out": out, "reset_state": not args.keep_state,
                                                 "config": args.resolved}))
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png ({res['seconds']:.1f} s)")
    return res
