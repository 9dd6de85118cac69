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

from ..streams import discounted_return as discounted_return


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
