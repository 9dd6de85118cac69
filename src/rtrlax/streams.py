"""The stream protocol: a jittable stream generator with its loss and metrics.

It sits below every layer that consumes streams (``learning``) and every layer that
produces them (``tasks``), so neither imports the other.

A task produces one stream one step at a time (``sample``), unbatched; the learner
vmaps it over a batch of independent streams and scans it over time, so a task never
runs Python per step.  ``Sample.reset`` marks the first step of an episode: the
learner resets that stream's model state and traces before feeding ``x``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree


class Sample(NamedTuple):
    x: Float[Array, " input"]  #: the input at this step
    target: PyTree  #: whatever ``loss``/``metrics`` need (targets, masks, labels)
    reset: Bool[Array, ""]  #: True on the first step of an episode


class AbstractTask(eqx.Module):
    """A stream of inputs and targets, its loss, and its metrics."""

    input_size: eqx.AbstractVar[int]
    output_size: eqx.AbstractVar[int]
    #: whether :meth:`feedback` changes anything.  A learner that takes K steps at once
    #: (``OnlineLearner`` with a chunked estimator) draws the chunk's samples before it
    #: sees their losses, so it does so only for tasks that declare ``False`` here.
    uses_feedback: ClassVar[bool] = True

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> PyTree:
        """The state of one stream (holds its own RNG key)."""

    @abc.abstractmethod
    def sample(self, task_state: PyTree) -> tuple[PyTree, Sample]:
        """Advance one stream by one step (jittable, unbatched)."""

    @abc.abstractmethod
    def loss(self, y: Array, target: Any) -> Float[Array, ""]:
        """The per-step training loss (zero on steps that are not scored)."""

    @abc.abstractmethod
    def metrics(self, y: Array, target: Any) -> dict[str, tuple[Array, Array]]:
        """Per-step ``{name: (value_sum, count)}``; the learner reports
        ``Σ value_sum / Σ count`` over streams and steps."""

    @abc.abstractmethod
    def feedback(self, task_states: PyTree, losses: Float[Array, " batch"]) -> PyTree:
        """Let the task react to the learner (e.g. a curriculum).  Receives the states of
        all streams and this step's losses, both with a leading batch axis."""


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
