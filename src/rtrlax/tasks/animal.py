"""Animal-learning prediction streams (Rafiee et al.; used by the ColoR/CCN papers).

One continuing stream of binary observations.  Trials repeat: a conditioned stimulus
(CS) is shown for one step; if the trial's CS is "valid" the unconditioned stimulus
(US) fires ``ISI`` steps later; the next CS comes ``ISI + ITI`` steps after this one.
Distractor ``k`` (k = 1..n) fires with probability ``1/(10k)`` on every step.  The
learner predicts the discounted future US,

.. math::  G_t = \\sum_{j\\ge 0} \\gamma^j\\, US_{t+1+j}  \\qquad (\\gamma = 0.9),

with TD(λ) using the US inside ``x_{t+1}`` as the cumulant; the metric is the mean
squared return error (MSRE) ``mean (G_t − ŷ_t)²``.

* :func:`trace_conditioning`: one CS bit, always followed by the US.
* :func:`trace_patterning`: 6 CS bits, each trial shows a random 3-of-6 pattern;
  10 of the 20 patterns (fixed by ``pattern_seed``) are valid.  ISI ~ U[14, 26] (the
  ColoR paper) or ``isi=(24, 36)`` (the CCN paper).
* :func:`noisy_patterning`: trace patterning whose valid patterns fire the US with
  probability 0.9 and invalid ones with probability 0.1 (our reading of "noisy";
  not checked against the original paper).

Observation layout: ``[CS bits, US, distractors]`` (trace patterning: 6 + 1 + 5 = 12).
Everything is jittable: ``step_with`` is a pure function of the state and pre-drawn
uniforms, :meth:`AnimalLearning.generate` scans it over a chunk (one RNG call per
chunk), :meth:`AnimalLearning.sample` draws one step.  Memory is flat.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray


class AnimalState(NamedTuple):
    cs_countdown: Int[Array, ""]  #: steps until the next CS (0: this step)
    us_countdown: Int[Array, ""]  #: steps until the pending US (0: this step; <0: none)
    key: PRNGKeyArray  #: the stream's randomness (used by ``sample``)


class AnimalSample(NamedTuple):
    x: Float[Array, " input"]  #: the observation x_t
    cumulant: Float[Array, ""]  #: US_t (the TD cumulant carried by x_t)


class AnimalLearning(eqx.Module):
    """A trace-conditioning-style stream (see module doc); build it with the functions
    :func:`trace_conditioning`, :func:`trace_patterning`, :func:`noisy_patterning`."""

    patterns: tuple = eqx.field(static=True)  #: [n_patterns][n_cs] 0/1 (hashable)
    us_prob: tuple = eqx.field(static=True)  #: [n_patterns] P(US | pattern)
    n_distractors: int = eqx.field(static=True)
    isi: tuple[int, int] = eqx.field(static=True)
    iti: tuple[int, int] = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    dtype: str = eqx.field(static=True)

    def __init__(self, patterns, us_prob, *, n_distractors=5, isi=(14, 26), iti=(80, 120),
                 gamma=0.9, dtype="float32"):
        patterns = np.asarray(patterns, np.float64)
        us_prob = np.asarray(us_prob, np.float64)
        if patterns.ndim != 2 or us_prob.shape != (patterns.shape[0],):
            raise ValueError("patterns must be [n_patterns, n_cs] and us_prob [n_patterns].")
        for name, (lo, hi) in (("isi", isi), ("iti", iti)):
            if not (1 <= lo <= hi):
                raise ValueError(f"{name} must be a range (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}.")
        if not (0.0 < gamma < 1.0):
            raise ValueError(f"gamma must lie in (0, 1), got {gamma}.")
        self.patterns = tuple(tuple(float(v) for v in row) for row in patterns)
        self.us_prob = tuple(float(v) for v in us_prob)
        self.n_distractors = int(n_distractors)
        self.isi, self.iti = (int(isi[0]), int(isi[1])), (int(iti[0]), int(iti[1]))
        self.gamma, self.dtype = float(gamma), str(jnp.dtype(dtype))

    # --- sizes ------------------------------------------------------------------------

    @property
    def n_cs(self) -> int:
        return len(self.patterns[0])

    @property
    def us_index(self) -> int:
        """Index of the US (the cumulant) inside an observation."""
        return self.n_cs

    @property
    def input_size(self) -> int:
        return self.n_cs + 1 + self.n_distractors

    @property
    def n_uniforms(self) -> int:
        """Uniform numbers consumed per step by :meth:`step_with`."""
        return 4 + self.n_distractors

    # --- the stream -------------------------------------------------------------------

    def init(self, key: PRNGKeyArray) -> AnimalState:
        k_start, key = jax.random.split(key)
        first = jax.random.randint(k_start, (), 0, self.iti[1] + 1)
        return AnimalState(first.astype(jnp.int32), jnp.int32(-1), key)

    def step_with(self, state: AnimalState, u: Float[Array, " n_uniforms"]):
        """One step from pre-drawn U[0, 1) numbers ``u`` (``n_uniforms`` of them)."""
        n_pat = len(self.patterns)
        cs_now = state.cs_countdown == 0
        idx = jnp.minimum((u[0] * n_pat).astype(jnp.int32), n_pat - 1)
        pattern = jnp.asarray(self.patterns, self.dtype)[idx]
        fires = u[1] < jnp.asarray(self.us_prob, jnp.float32)[idx]
        isi = self.isi[0] + jnp.minimum(
            (u[2] * (self.isi[1] - self.isi[0] + 1)).astype(jnp.int32), self.isi[1] - self.isi[0])
        iti = self.iti[0] + jnp.minimum(
            (u[3] * (self.iti[1] - self.iti[0] + 1)).astype(jnp.int32), self.iti[1] - self.iti[0])
        us_now = state.us_countdown == 0
        probs = jnp.asarray(0.1 / np.arange(1, self.n_distractors + 1), jnp.float32)
        distract = (u[4:] < probs).astype(self.dtype)
        x = jnp.concatenate([
            jnp.where(cs_now, pattern, 0).astype(self.dtype),
            us_now.astype(self.dtype)[None],
            distract,
        ])
        us_next = jnp.where(cs_now & fires, isi, jnp.maximum(state.us_countdown, 0)) - 1
        us_next = jnp.where(cs_now & fires | (state.us_countdown > 0), us_next, -1)
        cs_next = jnp.where(cs_now, isi + iti, state.cs_countdown) - 1
        new = AnimalState(cs_next.astype(jnp.int32), us_next.astype(jnp.int32), state.key)
        return new, AnimalSample(x, x[self.us_index])

    def sample(self, state: AnimalState) -> tuple[AnimalState, AnimalSample]:
        """One step, drawing its randomness from the state's key."""
        key, sub = jax.random.split(state.key)
        u = jax.random.uniform(sub, (self.n_uniforms,))
        new, s = self.step_with(state._replace(key=key), u)
        return new, s

    def generate(self, state: AnimalState, n: int) -> tuple[AnimalState, AnimalSample]:
        """``n`` steps (one RNG call for the chunk): samples with a leading axis ``n``."""
        key, sub = jax.random.split(state.key)
        us = jax.random.uniform(sub, (n, self.n_uniforms))
        new, samples = jax.lax.scan(self.step_with, state._replace(key=key), us)
        return new, samples


def discounted_return(cumulants: Float[Array, " n"], gamma: float, tail=0.0) -> Float[Array, " n"]:
    """``G_t = Σ_j γ^j c_{t+1+j}`` for t < n, by a backward scan; ``tail`` is ``G_{n-1}``
    (the return after the last step, 0 when unknown — truncating the sum there)."""
    c_next = jnp.concatenate([cumulants[1:], jnp.zeros((1,), cumulants.dtype)])

    def back(g_next, c):
        g = c + gamma * g_next
        return g, g

    # G_{n-1} = tail; G_t = c_{t+1} + γ G_{t+1}
    _, gs = jax.lax.scan(back, jnp.asarray(tail, cumulants.dtype), c_next[:-1], reverse=True)
    return jnp.concatenate([gs, jnp.asarray(tail, cumulants.dtype)[None]])


def _three_of_six() -> np.ndarray:
    return np.array([[1.0 if i in c else 0.0 for i in range(6)]
                     for c in itertools.combinations(range(6), 3)])


def trace_conditioning(*, isi=(14, 26), iti=(80, 120), n_distractors=5, gamma=0.9,
                       dtype="float32") -> AnimalLearning:
    """One CS bit, always followed by the US ``ISI`` steps later."""
    return AnimalLearning(np.ones((1, 1)), np.ones(1), n_distractors=n_distractors, isi=isi,
                          iti=iti, gamma=gamma, dtype=dtype)


def trace_patterning(*, isi=(14, 26), iti=(80, 120), n_distractors=5, gamma=0.9,
                     pattern_seed=0, dtype="float32") -> AnimalLearning:
    """6 CS bits; random 3-of-6 patterns, 10 of the 20 valid (fixed by ``pattern_seed``).
    ``isi=(24, 36)`` gives the CCN paper's harder version."""
    patterns = _three_of_six()
    valid = np.zeros(20)
    valid[np.random.default_rng(pattern_seed).permutation(20)[:10]] = 1.0
    return AnimalLearning(patterns, valid, n_distractors=n_distractors, isi=isi, iti=iti,
                          gamma=gamma, dtype=dtype)


def noisy_patterning(*, isi=(14, 26), iti=(80, 120), n_distractors=5, gamma=0.9,
                     pattern_seed=0, p_valid=0.9, p_invalid=0.1, dtype="float32") -> AnimalLearning:
    """Trace patterning whose valid patterns fire the US with probability ``p_valid``
    and invalid ones with ``p_invalid``."""
    base = trace_patterning(isi=isi, iti=iti, n_distractors=n_distractors, gamma=gamma,
                            pattern_seed=pattern_seed, dtype=dtype)
    us_prob = np.where(np.asarray(base.us_prob) > 0.5, p_valid, p_invalid)
    return AnimalLearning(base.patterns, us_prob, n_distractors=n_distractors, isi=isi,
                          iti=iti, gamma=gamma, dtype=dtype)


# --- `rtrlax run trace-patterning` ---------------------------------------------------------

#: the T-BPTT (truncation : hidden) pairs of the CCN paper, compute-matched to its CCN
TBPTT_PAIRS = ("13:2", "3:10", "5:8", "8:5", "10:5", "15:4", "20:3", "30:2")


def make_td_learner(method: str, input_size: int, steps: int, lr: float, *, gamma=0.9, lam=0.99,
                    dtype="float32"):
    """``(learner, init(key) -> learner state)`` for a named method:
    ``columnar`` (20 columns, fused ColoR + TD), ``ccn`` (``20:4:steps/5``),
    ``constructive`` (``10:1:steps/10``), ``snap1-lstm`` (SnAp-1, dense LSTM-10),
    ``tbptt-T:H`` (online T-BPTT(T), dense LSTM-H)."""
    from ..cells.columnar import columnar_network
    from ..cells.lstm import LSTM
    from ..estimators.color import ColoR
    from ..estimators.snap import SnAp
    from ..estimators.tbptt import TBPTT
    from ..learning.td import ColumnarTD, TDLambda, td_rmsprop
    from ..nets.ccn import Constructive
    from ..nets.readout import Readout

    if method == "columnar":
        fused = ColumnarTD(lr, gamma=gamma, lam=lam)
        return fused, lambda k: fused.init(columnar_network(input_size, 20, key=k, dtype=dtype))
    if method in ("constructive", "ccn"):
        spec = (10, 1, max(1, steps // 10)) if method == "constructive" else (20, 4, max(1, steps // 5))
        td = TDLambda(ColoR(), td_rmsprop(lr), gamma=gamma, lam=lam)
        return td, lambda k: td.init(Constructive(input_size, spec, key=k, dtype=dtype))
    if method == "snap1-lstm":
        td, hidden = TDLambda(SnAp(1), td_rmsprop(lr), gamma=gamma, lam=lam), 10
    elif method.startswith("tbptt-"):
        try:
            T, hidden = (int(v) for v in method[len("tbptt-"):].split(":"))
        except ValueError:
            raise ValueError(f"write T-BPTT as tbptt-T:H (e.g. tbptt-10:5), got {method!r}.") from None
        td = TDLambda(TBPTT(T), td_rmsprop(lr), gamma=gamma, lam=lam)
    else:
        raise ValueError(
            f"unknown method {method!r}: use columnar, ccn, constructive, snap1-lstm or tbptt-T:H."
        )

    def init(k):
        k1, k2 = jax.random.split(k)
        net = Readout(LSTM(input_size, hidden, key=k1, dtype=dtype), 1, key=k2, zero_init=True)
        return td.init(net)

    return td, init


def add_cli(sub) -> None:
    """Add ``rtrlax run trace-patterning`` (registered in cli.RUNNERS)."""
    import argparse
    from pathlib import Path

    p = sub.add_parser(
        "trace-patterning",
        help="TD(λ) prediction on trace patterning / conditioning (MSRE)",
        description="Online TD(λ) prediction of the discounted US on an animal-learning stream; "
        "reports the mean squared return error (MSRE) per logging window. Seeds run as a batch "
        "of independent streams and networks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--method", default="columnar",
                   help="columnar | ccn | constructive | snap1-lstm | tbptt-T:H")
    p.add_argument("--variant", default="patterning", choices=["patterning", "conditioning", "noisy"])
    p.add_argument("--isi", type=int, nargs=2, default=[14, 26], help="ISI range (CCN paper: 24 36)")
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3, help="step size α (RMSProp-normalised TD)")
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--lam", type=float, default=0.99)
    p.add_argument("--log", type=int, default=20_000, help="steps per MSRE window (multiple of 1000)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default runs/trace-<method>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> dict:
    import time
    from pathlib import Path

    from .. import cli
    from ..learning.td import msre_chunk

    block = 1000
    if args.log % block or args.log <= 0 or args.steps % args.log or args.steps <= 0:
        raise ValueError(f"--log must be a positive multiple of {block} and --steps a multiple of --log.")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1.")
    make = {"patterning": trace_patterning, "conditioning": trace_conditioning,
            "noisy": noisy_patterning}[args.variant]
    env = make(isi=tuple(args.isi), gamma=args.gamma)
    learner, init = make_td_learner(args.method, env.input_size, args.steps, args.lr,
                                    gamma=args.gamma, lam=args.lam)
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    ls = jax.vmap(init)(keys)
    es = jax.vmap(env.init)(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
    chunk = jax.jit(jax.vmap(msre_chunk(learner, env, block=block, blocks=args.log // block)))
    history = {"step": [], "msre": [], "msre_zero": []}
    t0 = time.perf_counter()
    with cli._bar(args.steps, f"trace-{args.variant} {args.method}", disable=args.quiet) as bar:
        for i in range(args.steps // args.log):
            ls, es, msre, g2 = chunk(ls, es)
            history["step"].append((i + 1) * args.log)
            history["msre"].append(float(msre.mean()))
            history["msre_zero"].append(float(g2.mean()))
            bar.update(args.log)
            bar.set_postfix(msre=f"{history['msre'][-1]:.4g}")
    seconds = time.perf_counter() - t0
    out = args.out or Path("runs") / f"trace-{args.variant}-{args.method.replace(':', '_')}"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    config.update(seconds=seconds, steps_per_second=args.steps * args.seeds / seconds,
                  estimator=args.method)
    cli.write_results(out, config, history, title=f"trace {args.variant}: {args.method}")
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png  ({seconds:.1f} s)")
    print(f"final MSRE {history['msre'][-1]:.5f} (predicting zero: {history['msre_zero'][-1]:.5f})")
    return {"history": history, "seconds": seconds}
