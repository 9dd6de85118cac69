"""The copy task, in two variants.

* :class:`CopyTask` (online-LRU paper): 7 random bits per step for 20 steps, 7 blank
  steps, a stop token, then the 20 patterns are to be reproduced: ``T = 48``, input 8
  (7 bits + stop channel), output 7 logits; the loss (binary cross-entropy in bits,
  summed over the 7 bits) is scored on the last 20 steps only.
* :class:`CopyCurriculum` (SnAp paper, after Mujika et al. 2018): 1-bit patterns
  framed by start/stop markers (input 3: bit, start, stop; output 1 logit); each
  episode's length is drawn from ``[max(1, L-5), L]``; ``L`` starts at 1 and grows by one
  whenever the running average loss on scored steps falls below 0.15 bits per step.
  Metric: the largest ``L`` reached.

Both are unbatched jittable stream generators: the state holds the current episode
(padded to its maximum length), the position in it, and the stream's RNG key.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .base import AbstractTask, Sample

LN2 = math.log(2.0)


class CopyTarget(NamedTuple):
    bits: Float[Array, " bits"]  #: the bits to reproduce (zeros when not scored)
    scored: Bool[Array, ""]  #: whether this step is scored


def bits_bce(logits: Array, bits: Array) -> Array:
    """Binary cross-entropy in bits, summed over the last axis."""
    return jnp.sum(jnp.logaddexp(0.0, logits) - bits * logits, axis=-1) / LN2


class CopyState(NamedTuple):
    key: PRNGKeyArray
    pattern: Float[Array, "length bits"]  #: this episode's pattern, padded
    length: Int[Array, ""]  #: this episode's pattern length
    position: Int[Array, ""]  #: step within the episode
    level: Int[Array, ""]  #: curriculum level L (fixed for CopyTask)
    average: Float[Array, ""]  #: running average loss on scored steps (bits/step)


class CopyTask(AbstractTask):
    """Fixed-length copy task (``T = pattern_length + padding + 1 + pattern_length``)."""

    uses_feedback: ClassVar[bool] = False  #: feedback is the identity

    bits: int = eqx.field(static=True)
    pattern_length: int = eqx.field(static=True)
    padding: int = eqx.field(static=True)

    def __init__(self, bits: int = 7, pattern_length: int = 20, padding: int = 7):
        for name, v in [("bits", bits), ("pattern_length", pattern_length)]:
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"CopyTask {name} must be a positive integer, got {v!r}.")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"CopyTask padding must be a non-negative integer, got {padding!r}.")
        self.bits, self.pattern_length, self.padding = bits, pattern_length, padding

    @property
    def input_size(self) -> int:
        return self.bits + 1

    @property
    def output_size(self) -> int:
        return self.bits

    @property
    def sequence_length(self) -> int:
        return 2 * self.pattern_length + self.padding + 1

    def init(self, key):
        z = jnp.zeros((), jnp.int32)
        pattern = jnp.zeros((self.pattern_length, self.bits))
        n = jnp.asarray(self.pattern_length, jnp.int32)
        # position == sequence_length means "start a new episode at the next sample"
        pos = jnp.asarray(self.sequence_length, jnp.int32)
        return CopyState(key, pattern, n, pos, z, jnp.zeros(()))

    def sample(self, state):
        new = state.position >= self.sequence_length
        key, sub = jax.random.split(state.key)
        fresh = jax.random.bernoulli(sub, 0.5, state.pattern.shape).astype(state.pattern.dtype)
        pattern = jnp.where(new, fresh, state.pattern)
        t = jnp.where(new, 0, state.position)
        n, recall = self.pattern_length, self.pattern_length + self.padding + 1
        writing = t < n
        x_bits = jnp.where(writing, pattern[jnp.minimum(t, n - 1)], 0.0)
        stop = (t == recall - 1).astype(x_bits.dtype)
        x = jnp.concatenate([x_bits, stop[None]])
        scored = t >= recall
        target = CopyTarget(jnp.where(scored, pattern[jnp.clip(t - recall, 0, n - 1)], 0.0), scored)
        state = state._replace(key=key, pattern=pattern, position=t + 1)
        return state, Sample(x, target, new)

    def loss(self, y, target):
        return jnp.where(target.scored, bits_bce(y, target.bits), 0.0)

    def metrics(self, y, target):
        return copy_metrics(y, target, self.bits)

    def feedback(self, task_states, losses):
        return task_states


def copy_metrics(y, target, bits):
    scored = target.scored.astype(y.dtype)
    correct = jnp.sum((y > 0) == (target.bits > 0.5)) * scored
    return {
        "bits_per_step": (jnp.where(target.scored, bits_bce(y, target.bits), 0.0), scored),
        "bit_accuracy": (correct.astype(y.dtype), scored * bits),
    }


class CopyCurriculum(AbstractTask):
    """Curriculum copy task of the SnAp paper (see module docstring).

    ``max_length`` bounds ``L`` (episodes are padded to ``2 * max_length + 2`` steps);
    ``threshold`` (bits/step) and ``decay`` (of the running average, per scored step)
    set the promotion rule; the level is shared by all streams of a learner.
    """

    max_length: int = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    decay: float = eqx.field(static=True)
    window: int = eqx.field(static=True)

    def __init__(
        self, max_length: int = 64, threshold: float = 0.15, decay: float = 0.99, window: int = 5
    ):
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}.")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}.")
        self.max_length, self.threshold, self.decay, self.window = (
            max_length,
            float(threshold),
            float(decay),
            window,
        )

    input_size = 3
    output_size = 1

    def init(self, key):
        z = jnp.zeros((), jnp.int32)
        start = jnp.asarray(2, jnp.int32)  # past the end of an empty episode: start one
        return CopyState(
            key, jnp.zeros((self.max_length, 1)), z, start, jnp.ones((), jnp.int32), jnp.ones(())
        )

    def sample(self, state):
        n = state.length
        new = state.position >= 2 * n + 2
        key, k_len, k_bits = jax.random.split(state.key, 3)
        low = jnp.maximum(1, state.level - self.window)
        length = jax.random.randint(k_len, (), low, state.level + 1)
        fresh = jax.random.bernoulli(k_bits, 0.5, state.pattern.shape).astype(state.pattern.dtype)
        pattern = jnp.where(new, fresh, state.pattern)
        n = jnp.where(new, length, n)
        t = jnp.where(new, 0, state.position)
        start = t == 0
        writing = (t >= 1) & (t <= n)
        stop = t == n + 1
        bit = jnp.where(writing, pattern[jnp.clip(t - 1, 0, self.max_length - 1), 0], 0.0)
        x = jnp.stack([bit, start.astype(bit.dtype), stop.astype(bit.dtype)])
        scored = t >= n + 2
        out_bit = pattern[jnp.clip(t - n - 2, 0, self.max_length - 1)]
        target = CopyTarget(jnp.where(scored, out_bit, 0.0), scored)
        state = state._replace(key=key, pattern=pattern, length=n, position=t + 1)
        return state, Sample(x, target, new)

    def loss(self, y, target):
        return jnp.where(target.scored, bits_bce(y, target.bits), 0.0)

    def metrics(self, y, target):
        return copy_metrics(y, target, 1)

    def feedback(self, task_states, losses):
        """Update the shared running average on scored steps; promote when below threshold."""
        scored = task_states.position > task_states.length + 2  # the step just produced was scored
        n_scored = jnp.sum(scored)
        mean = jnp.sum(jnp.where(scored, losses, 0.0)) / jnp.maximum(n_scored, 1)
        avg = task_states.average[0]
        avg = jnp.where(n_scored > 0, self.decay * avg + (1 - self.decay) * mean, avg)
        level = task_states.level[0]
        promote = (avg < self.threshold) & (level < self.max_length)
        level = jnp.where(promote, level + 1, level)
        avg = jnp.where(promote, 1.0, avg)  # restart the average at the new level
        b = task_states.position.shape[0]
        return task_states._replace(
            level=jnp.full((b,), level, jnp.int32), average=jnp.full((b,), avg)
        )
