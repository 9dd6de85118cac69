"""Shared machinery of the structured estimators: per-core traces + spatial backprop.

Every structured estimator (SnAp-n, ColoR, the online LRU, sparse RTRL) carries, for
each recurrent core ``c`` of the model, some representation of the core's influence
matrix :math:`M^c_t = ds^c_t/d\\theta^c` and obtains the step-t gradient as

.. math::

    \\frac{d\\ell_t}{d\\theta^c} \\approx \\delta^c_t M^c_t, \\qquad
    \\delta^c_t = \\frac{\\partial \\ell_t}{\\partial s^c_t} \\text{ (spatial: through step t only)}

while every non-recurrent parameter (readouts, norms, encoders) gets its ordinary
instantaneous gradient.  One reverse pass computes all of it: inside the forward pass
each core's new state is computed with its parameters and previous state held
constant, and the *injection*

.. math::  s^c_t \\leftarrow s^c_t + M^c_t\\,(\\theta^c - \\mathrm{sg}(\\theta^c))

is added.  Its value is exactly zero, and its reverse-mode derivative with respect to
θ^c is :math:`(M^c_t)^\\top \\delta^c_t` — the online gradient — computed by JAX's
transpose of the estimator's own ``influence`` map.  So an estimator only states how
it stores M (``init_traces``), how it updates it (``core_step``) and how M acts on a
parameter tangent (``influence``).
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from .._types import LossFn, Params, State
from ..cells.base import plain_core_call
from .base import (
    AbstractOnlineEstimator,
    StepOutput,
    check_sequence,
    split_params,
    sum_over_streams,
)


class ChunkOutput(NamedTuple):
    """What :meth:`AbstractTraceEstimator.chunk_step` returns besides the new carry."""

    y: jax.Array  #: the outputs y_t of the chunk's steps, leading axis K
    loss: jax.Array  #: loss_fn(y_t, target_t) per step, [K]
    grads: Params  #: the sum over the chunk of the steps' online gradients


class TraceCarry(NamedTuple):
    state: State  #: the model's state s_t
    traces: tuple  #: one trace pytree per core, in ``model.cores()`` order


def core_params(core) -> PyTree:
    """The trainable arrays of one core (its tangent/gradient structure)."""
    return eqx.filter(core, eqx.is_inexact_array)


def core_leaf_positions(cores) -> dict | None:
    """``id`` of each core parameter array -> ``(core index, leaf index)`` in
    ``core_params``; ``None`` when an array is shared between cores."""
    where = {}
    for i, core in enumerate(cores):
        for j, leaf in enumerate(jax.tree_util.tree_leaves(core_params(core))):
            if id(leaf) in where:
                return None
            where[id(leaf)] = (i, j)
    return where


def add_core_grads(params, grads, cores, core_grads) -> PyTree:
    """``grads`` (shaped like ``params``) plus each core's own gradient (shaped like
    ``core_params(core)``) on that core's arrays.  ``params`` must be the very arrays of
    the model the cores came from (matched by identity, as ``split_params`` gives them)."""
    where = core_leaf_positions(cores)
    g_cores = [jax.tree_util.tree_leaves(g) for g in core_grads]
    p_leaves, treedef = jax.tree_util.tree_flatten(params)
    out = []
    for p, g in zip(p_leaves, jax.tree_util.tree_leaves(grads)):
        if id(p) in where:
            i, j = where[id(p)]
            g = g + g_cores[i][j]
        out.append(g)
    return jax.tree_util.tree_unflatten(treedef, out)


def _injection(influence, live, frozen, traces, s_t):
    """``M_t (θ − sg θ)``: zero in value, ``M_tᵀ δ`` as its reverse-mode derivative in θ.

    Written as a ``custom_vjp`` so that the forward pass touches neither θ nor the
    traces (a plain ``influence(θ − sg θ)`` would read both once more per step only to
    produce zeros); the backward pass is the transpose of ``influence``.
    """

    @jax.custom_vjp
    def inject(live, frozen, traces, s_t):
        # Zeros that depend on s_t: under ``vmap`` over streams they are batched like
        # s_t.  (A plain ``zeros_like`` is unbatched, and the gradient of a batch-mean
        # loss would then reach the backward pass summed over streams: B times too big.)
        return jax.tree_util.tree_map(lambda s: jnp.where(True, jnp.zeros_like(s), s), s_t)

    def fwd(live, frozen, traces, s_t):
        return inject(live, frozen, traces, s_t), (live, frozen, traces, s_t)

    def bwd(res, delta):
        live, frozen, traces, s_t = res
        (g,) = jax.linear_transpose(lambda v: influence(frozen, traces, v), live)(delta)
        zeros = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)  # noqa: E731
        return g, zeros(frozen), zeros(traces), zeros(s_t)

    inject.defvjp(fwd, bwd)
    return inject(live, frozen, traces, s_t)


#: :meth:`AbstractTraceEstimator.batch_step` writes the sum over streams of the cores'
#: gradients as explicit terms up to this many streams (compile time grows with it).
UNROLL_STREAMS = 64


class AbstractTraceEstimator(AbstractOnlineEstimator):
    """An online estimator defined by how it stores and updates each core's influence."""

    @abc.abstractmethod
    def init_traces(self, core) -> PyTree:
        """The traces of one core at the start of a stream (M_0 = 0)."""

    @abc.abstractmethod
    def core_step(self, core, traces: PyTree, state: State, u) -> tuple[State, PyTree]:
        """``(s_t, traces_t)`` from ``s_{t-1}`` and the core's input ``u_t``.

        ``core`` and ``state`` arrive with gradients stopped; ``s_t`` must stay
        differentiable with respect to ``u`` (spatial backprop to the layers below).
        """

    @abc.abstractmethod
    def influence(self, core, traces: PyTree, tangent: PyTree) -> State:
        """``M_t · tangent``: the state tangent caused by a parameter tangent
        (a pytree shaped like ``core_params(core)``).  Must be linear in ``tangent``."""

    def check_model(self, model) -> None:
        """Raise a ValueError when the model has a core this estimator cannot handle."""
        if not hasattr(model, "cores"):
            raise ValueError(
                f"{type(self).__name__} needs a model built from rtrlax cores (a cell, "
                f"rx.Readout, or a network with a cores() method); got {type(model).__name__}."
            )

    # --- the shared driver ------------------------------------------------------------

    def init(self, model, *, key=None) -> TraceCarry:
        self.check_model(model)
        traces = tuple(self.init_traces(core) for core in model.cores())
        return TraceCarry(model.initial_state(), traces)

    def _stream_loss(self, model, carry, x, target, loss_fn, probes=None):
        """One stream's step loss with the traces injected: ``(loss, (s_t, y, traces_t))``.

        Differentiating it with respect to the model's parameters gives the online
        gradient.  With ``probes`` (one zero state per core) nothing is injected and each
        core's new state gets its probe added instead: the gradient with respect to the
        probes is ``δ_t = ∂ℓ/∂s_t`` per core, which :meth:`batch_step` contracts with the
        traces itself.
        """
        sg = jax.lax.stop_gradient
        new_traces = []

        def core_call(core, s_tm1, u):
            index = len(new_traces)
            frozen = sg(core)
            s_t, traces_t = self.core_step(frozen, carry.traces[index], sg(s_tm1), u)
            traces_t = sg(traces_t)
            new_traces.append(traces_t)
            if probes is not None:
                return jax.tree_util.tree_map(jnp.add, s_t, probes[index])
            injected = _injection(self.influence, core_params(core), frozen, traces_t, s_t)
            return jax.tree_util.tree_map(jnp.add, s_t, injected)

        state, y = model.forward(carry.state, x, core_call=core_call)
        return loss_fn(y, target), (sg(state), y, tuple(new_traces))

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)

        def step_loss(params):
            return self._stream_loss(eqx.combine(params, static), carry, x, target, loss_fn)

        (loss, (state, y, traces)), grads = jax.value_and_grad(step_loss, has_aux=True)(params)
        return TraceCarry(state, traces), StepOutput(y, loss, grads)

    def batch_step(self, model, carry, x, target, loss_fn):
        """``step`` over a batch of streams, with the stream-mean gradient formed cheaply.

        A vmapped :meth:`step` forms every parameter's gradient per stream and then
        averages: for the weights of dense layers (readouts, encoders, GLUs) that is a
        ``[B, out, in]`` array of outer products per step, and for the cores' own
        parameters a ``[B, …]`` array of per-stream ``M_bᵀ δ_b``.  Here the batch-mean
        loss is differentiated once with the streams vmapped inside, so dense-layer
        gradients come out as one matrix product over the batch; each core's new state
        carries a zero probe whose gradient is that stream's ``δ_b`` (already divided by
        B), and the cores' gradients ``Σ_b M_bᵀ δ_b`` are written as an explicit sum over
        the streams (up to :data:`UNROLL_STREAMS` of them) of each stream's transposed
        ``influence`` on its slice of the traces — XLA fuses that into one loop that
        reads every trace once, where a reduction over the stream axis is very slow on
        XLA:CPU and a materialised ``[B, …]`` product costs two more passes
        (``benchmarks/stream_sum.py``).  Beyond
        ``UNROLL_STREAMS`` streams the per-stream products are summed by a tensordot.
        Same numbers as the default (tested).
        """
        params, static = split_params(model)
        cores = tuple(model.cores())
        if core_leaf_positions(cores) is None:  # an array shared between cores
            return super().batch_step(model, carry, x, target, loss_fn)
        b = jax.tree_util.tree_leaves(x)[0].shape[0]
        probes = tuple(
            jax.tree_util.tree_map(lambda a: jnp.zeros((b,) + a.shape, a.dtype), core.initial_state())
            for core in cores
        )

        def batch_loss(params, probes):
            m = eqx.combine(params, static)

            def one(carry, x, target, probes_s):
                return self._stream_loss(m, carry, x, target, loss_fn, probes=probes_s)

            losses, aux = jax.vmap(one)(carry, x, target, probes)
            return jnp.mean(losses), (losses, aux)

        (_, (losses, (state, y, traces))), (g_params, deltas) = jax.value_and_grad(
            batch_loss, argnums=(0, 1), has_aux=True
        )(params, probes)
        g_cores = [self._stream_sum(core, tr, d) for core, tr, d in zip(cores, traces, deltas)]
        grads = add_core_grads(params, g_params, cores, g_cores)
        return TraceCarry(state, traces), StepOutput(y, losses, grads)

    def _stream_sum(self, core, traces, deltas):
        """``Σ_b M_bᵀ δ_b`` for one core: traces and deltas carry the stream axis first."""
        frozen = jax.lax.stop_gradient(core)
        live = core_params(core)

        def one(tr, d):
            (g,) = jax.linear_transpose(lambda v: self.influence(frozen, tr, v), live)(d)
            return g

        return sum_streams(one, traces, deltas)

    # --- K steps at once ------------------------------------------------------------------

    @property
    def chunked(self) -> bool:
        """Whether :meth:`chunk_step` is available (the estimator has a chunked form)."""
        return False

    def chunk_cores(self, cores, traces, seen, deltas, keep) -> list[tuple[PyTree, PyTree]]:
        """Per core, ``(traces_K, Σ_b Σ_t M_{b,t}ᵀ δ_{b,t})`` over a chunk with fixed
        parameters.  Every argument but ``cores`` has a leading stream axis B: the traces
        at the chunk's start; ``seen`` = the core's ``(s_{t-1}, u_t)`` and ``deltas`` its
        ``δ_t`` (already divided by B) for every stream and step (axes ``[B, K, …]``);
        ``keep`` ``[B, K]`` is 0 where a stream restarts (its traces start again from
        zero before that step: the trace recursion's ``D_t`` is zero there), else 1.
        Estimators whose trace recursion allows it (linear in the traces: a backward sweep
        over the chunk plus matrix products over its steps) override this to enable
        :meth:`chunk_step`."""
        raise _no_chunked_form(self)

    def chunk_step(self, model, carry: TraceCarry, xs, targets, loss_fn: LossFn, resets=None):
        """K steps with the parameters held fixed: the same carry, outputs and losses as K
        calls of :meth:`step`, and the *sum* of their gradients — what a learner that
        applies its optimizer every K steps needs.  ``xs`` (``[K, input]``) and
        ``targets`` have a leading axis K; ``resets`` (``[K]`` booleans, optional) restarts
        the stream from a fresh carry before the steps where it is set, as
        ``rx.OnlineLearner`` does.  One stream; :meth:`batch_chunk_step` for a batch.
        Returns ``(carry, ChunkOutput(y, loss, grads))``.

        Why it is cheaper than K steps: most of a step's work produces terms that are
        only used summed over the chunk — every dense layer's outer product ``δ_t u_tᵀ``,
        and the update and read of parameter-sized traces.  Here

        1. the forward pass runs step by step (an inference step, keeping each step's
           incoming state), so the outputs are those a streaming model gives;
        2. the spatial backprop of all K steps runs at once, batched over the chunk,
           each step's incoming state held fixed as in :meth:`step`: every dense-layer
           gradient is one matrix product over the chunk, and each core's ``δ_t`` comes
           out for every step;
        3. :meth:`chunk_cores` re-associates each core's ``Σ_t M_tᵀ δ_t`` and its trace
           update over the chunk (the estimator's own closed form).

        Memory: the chunk's states, inputs and errors, ``O(K)`` per core, never the
        stream's length.  The gradient exists only at the chunk's end.
        """
        self.check_model(model)
        check_sequence(model, xs, targets)
        add = lambda tree: jax.tree_util.tree_map(lambda a: a[None], tree)  # noqa: E731
        if resets is not None:
            resets = add(self._check_resets(resets, xs.shape[:1]))
        carry, out = self._chunk(model, add(carry), add(xs), add(targets), loss_fn, resets)
        drop = lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree)  # noqa: E731
        return drop(carry), out._replace(y=drop(out.y), loss=out.loss[0])

    def batch_chunk_step(self, model, carry, xs, targets, loss_fn: LossFn, resets=None):
        """:meth:`chunk_step` for a batch of streams: ``carry`` with a leading stream axis,
        ``xs`` ``[B, K, input]``, ``targets`` ``[B, K, …]``, ``resets`` ``[B, K]``.
        ``grads`` is the mean over streams of each stream's chunk sum (dense-layer
        gradients as one matrix product over all B·K steps); ``y`` and ``loss`` stay per
        stream."""
        self.check_model(model)
        if jnp.ndim(xs) != 3:
            raise ValueError(f"xs must have shape [B, K, input] (streams, steps), got {jnp.shape(xs)}.")
        for leaf in jax.tree_util.tree_leaves(targets):
            if jnp.shape(leaf)[:1] != xs.shape[:1]:
                raise ValueError(
                    f"every leaf of targets needs leading axis B = {xs.shape[0]} (streams), "
                    f"got a leaf of shape {jnp.shape(leaf)}."
                )
        check_sequence(model, xs[0], jax.tree_util.tree_map(lambda a: a[0], targets))
        if resets is not None:
            resets = self._check_resets(resets, xs.shape[:2])
        return self._chunk(model, carry, xs, targets, loss_fn, resets)

    @staticmethod
    def _check_resets(resets, shape):
        if jnp.shape(resets) != tuple(shape):
            raise ValueError(f"resets must have shape {list(shape)} (one flag per step), got "
                             f"{list(jnp.shape(resets))}.")  # fmt: skip
        return jnp.asarray(resets, bool)

    def _chunk(self, model, carry: TraceCarry, xs, targets, loss_fn, resets=None):
        if not self.chunked:
            raise _no_chunked_form(self)
        if xs.shape[1] == 0:
            raise ValueError("chunk_step needs at least one step: xs has K = 0 steps.")
        cores = tuple(model.cores())
        if core_leaf_positions(cores) is None:
            raise ValueError("chunk_step needs every core to have its own parameter arrays.")
        sg = jax.lax.stop_gradient
        b, k = xs.shape[:2]
        if resets is None:
            resets = jnp.zeros((b, k), bool)
        fresh = model.initial_state()  # a restarted stream's state (its traces restart at 0)

        def forward(state, inp):  # the sequential part: an inference step of every stream
            x, reset = inp
            state = jax.tree_util.tree_map(
                lambda f, s: jnp.where(reset.reshape((-1,) + (1,) * (s.ndim - 1)), f, s), fresh, state
            )
            new_state, y = jax.vmap(lambda s, x: model.forward(s, x, core_call=plain_core_call))(
                state, x
            )
            return new_state, (state, y)

        time_major = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
        state, (states, ys) = jax.lax.scan(forward, carry.state, (time_major(xs), time_major(resets)))
        states, ys = jax.tree_util.tree_map(time_major, (states, ys))  # [B, K, ...]

        params, static = split_params(model)
        probes = tuple(
            jax.tree_util.tree_map(lambda a: jnp.zeros((b, k) + a.shape, a.dtype), core.initial_state())
            for core in cores
        )

        def chunk_loss(params, probes):
            m = eqx.combine(params, static)

            def one(state, x, target, probe):
                seen = []  # each core's (s_{t-1}, u_t)

                def core_call(core, s, u):
                    s_t = plain_core_call(sg(core), sg(s), u)
                    s_t = jax.tree_util.tree_map(jnp.add, s_t, probe[len(seen)])
                    seen.append((sg(s), sg(u)))
                    return s_t

                _, y = m.forward(state, x, core_call=core_call)
                return loss_fn(y, target), tuple(seen)

            losses, seen = jax.vmap(jax.vmap(one))(states, xs, targets, probes)
            return jnp.sum(losses) / b, (losses, seen)

        (_, (losses, seen)), (g_params, deltas) = jax.value_and_grad(
            chunk_loss, argnums=(0, 1), has_aux=True
        )(params, probes)
        frozen = [sg(core) for core in cores]
        keep = 1 - resets.astype(xs.dtype)
        parts = self.chunk_cores(frozen, carry.traces, seen, deltas, keep)
        grads = add_core_grads(params, g_params, cores, [g for _, g in parts])
        return TraceCarry(state, tuple(tr for tr, _ in parts)), ChunkOutput(ys, losses, grads)


def _no_chunked_form(estimator) -> ValueError:
    return ValueError(
        f"{type(estimator).__name__} has no chunked form; call step (or batch_step) per step. "
        "chunk_step is available for rx.OnlineLRU() and rx.SnAp(1) / rx.ColoR()."
    )


def sum_streams(fn, *arrays):
    """``Σ_b fn(arrays[0][b], arrays[1][b], …)`` over the leading stream axis: explicit
    terms up to :data:`UNROLL_STREAMS` streams (one fused loop), else a vmap and a
    tensordot (see ``AbstractTraceEstimator.batch_step``)."""
    b = jax.tree_util.tree_leaves(arrays)[0].shape[0]
    if b <= UNROLL_STREAMS:
        take = lambda s: [jax.tree_util.tree_map(lambda a: a[s], x) for x in arrays]  # noqa: E731
        parts = [fn(*take(s)) for s in range(b)]
        return jax.tree_util.tree_map(lambda *ps: sum(ps[1:], ps[0]), *parts)
    return jax.tree_util.tree_map(sum_over_streams, jax.vmap(fn)(*arrays))


def outer_sum(coef, v):
    """``Σ_{b,s} coef[b, s, …, i] v[b, s, j]`` → ``[…, i, j]``: one matrix product over all
    streams and steps."""
    lead = coef.shape[2:]
    rows = coef.shape[0] * coef.shape[1]
    return (coef.reshape(rows, -1).T @ v.reshape(rows, -1)).reshape(*lead, v.shape[-1])


def outer_per_stream(coef, v):
    """``Σ_s coef[b, s, …, i] v[b, s, j]`` → ``[b, …, i, j]``: a matrix product per stream."""
    b, k = coef.shape[:2]
    lead = coef.shape[2:]
    out = jnp.einsum("bsr,bsj->brj", coef.reshape(b, k, -1), v)
    return out.reshape(b, *lead, v.shape[-1])
