"""TD(λ) prediction with any online gradient estimator.

The learner predicts a discounted sum of a cumulant ``c`` carried by the stream,
``G_t = Σ_j γ^j c_{t+1+j}``, with the model's first output ``ŷ_t = y_t[0]``:

.. math::

    \\delta_{t-1} &= c_t + \\gamma\\, \\hat y_t - \\hat y_{t-1}, \\qquad
    \\theta \\leftarrow \\theta + \\alpha\\, \\mathrm{norm}(\\delta_{t-1} e_{t-1}),\\\\
    e_t &= \\gamma\\lambda\\, e_{t-1} + \\nabla_\\theta \\hat y_t .

``∇θ ŷ_t`` comes from ``estimator.step`` with ``loss_fn = lambda y, _: y[0]`` — ColoR,
SnAp-1, RTRL, TBPTT all work.  The update is handed to an optax transformation as the
"gradient" ``−δ e`` (so ``optax.sgd(α)`` is plain TD(λ));
:func:`td_rmsprop` gives the papers' RMSProp-style normalisation (β₂ = 0.9999).  A model
may define ``update_scale(state)`` returning a pytree of factors shaped like its
parameters (used by :class:`~rtrlax.Constructive` to divide the prediction weights'
step size by the number of active features).

Memory: the model, the estimator's carry, one eligibility trace per parameter and the
optimizer state — flat in the number of steps.  Streams are batched by ``jax.vmap``
(:meth:`TDLambda.run` on a batched state: use ``jax.vmap(td.run)``), or by
``init(..., streams=n)``; chunks of steps run inside one ``lax.scan``.

Each stream of a TD learner is a learner of its own (its own parameters, traces and
optimizer state: independent runs, e.g. seeds), so splitting streams over devices
(``mesh=rx.stream_mesh()``, :mod:`rtrlax.learning.sharding`) shards the whole state
along the stream axis and needs no communication at all between devices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..estimators.base import AbstractOnlineEstimator, split_params
from ..streams import discounted_return
from . import sharding as shd


class TDState(NamedTuple):
    model: Any  #: the model (parameters learn; masks ride along)
    carry: PyTree  #: the estimator's carry (model state + traces)
    trace: PyTree  #: eligibility trace e_t, shaped like the parameters
    opt_state: PyTree  #: the optax state
    y_prev: Float[Array, "*streams"]  #: ŷ_{t-1}


class TDRMSState(NamedTuple):
    count: Array
    nu: PyTree


def td_rmsprop(learning_rate: float, *, decay: float = 0.9999, eps: float = 1e-8):
    """RMSProp-style normalised TD step (an optax transformation):
    ``v ← β₂ v + (1−β₂) u²``, ``θ ← θ + α u / sqrt(v / (1 − β₂ⁿ) + ε²)`` with ``u = δ e``
    (the "gradient" handed to it is ``−u``).  Bias-corrected, so the first steps are
    not huge; :class:`ColumnarTD` uses the same formula."""

    def init(params):
        return TDRMSState(jnp.zeros((), jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        count = state.count + 1
        nu = jax.tree_util.tree_map(lambda v, g: decay * v + (1 - decay) * g * g, state.nu, grads)
        updates = jax.tree_util.tree_map(
            lambda g, v: -learning_rate * g
            * jax.lax.rsqrt(v / (1 - decay ** count.astype(v.dtype)) + eps**2),
            grads,
            nu,
        )
        return updates, TDRMSState(count, nu)

    return optax.GradientTransformation(init, update)


def _prediction(y, _):
    return y[0]


class TDLambda(eqx.Module):
    """TD(λ) learner: ``init(model) -> TDState``, ``step(state, x, c) -> (state, ŷ)``,
    ``run(state, xs, cs) -> (state, ŷs)`` (see module docstring).

    ``init(model, streams=n)`` makes ``n`` independent streams (a leading stream axis
    on every leaf); ``step``/``run`` then take ``x`` as ``[n, input]`` / ``xs`` as
    ``[steps, n, input]`` and the cumulants as ``[n]`` / ``[steps, n]``.  With
    ``mesh`` (a ``jax.sharding.Mesh``, e.g. ``rx.stream_mesh()``) such a state is split
    over the mesh's devices and ``run`` steps each device's streams there."""

    estimator: AbstractOnlineEstimator
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    mesh: Any = eqx.field(static=True)

    def __init__(self, estimator, optimizer, *, gamma: float = 0.9, lam: float = 0.99, mesh=None):
        if not isinstance(estimator, AbstractOnlineEstimator):
            raise ValueError(
                f"TDLambda needs an online estimator (rx.ColoR(), rx.SnAp(1), rx.RTRL(), "
                f"rx.TBPTT(T)), got {type(estimator).__name__}."
            )
        if not (0.0 <= gamma < 1.0) or not (0.0 <= lam <= 1.0):
            raise ValueError(f"need 0 <= gamma < 1 and 0 <= lam <= 1, got gamma={gamma}, lam={lam}.")
        self.estimator, self.optimizer = estimator, optimizer
        self.gamma, self.lam = float(gamma), float(lam)
        if mesh is not None:
            shd.stream_axis(mesh)
        self.mesh = mesh

    def init(
        self, model, *, key: PRNGKeyArray | None = None, streams: int | None = None
    ) -> TDState:
        """A fresh state for one stream, or with ``streams=n`` for ``n`` streams that all
        start from ``model`` (a stochastic estimator's carries get keys split from ``key``)."""
        params, _ = split_params(model)
        carry = self.estimator.init(model, key=key)
        trace = jax.tree_util.tree_map(jnp.zeros_like, params)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        state = TDState(model, carry, trace, self.optimizer.init(params), jnp.zeros((), dtype))
        if streams is None:
            if self.mesh is not None:
                raise ValueError(
                    "a TDLambda with a mesh splits streams over devices: create the state "
                    "with init(model, streams=n), n a multiple of the mesh's devices."
                )
            return state
        _check_streams_arg(streams, self.mesh)
        arrays, static = eqx.partition(state, eqx.is_array)
        arrays = jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(a, (streams,) + a.shape).copy(), arrays)
        if key is not None and hasattr(carry, "_replace") and hasattr(carry, "key"):
            arrays = arrays._replace(carry=arrays.carry._replace(key=jax.random.split(key, streams)))
        if self.mesh is not None:
            arrays = shd.place(arrays, shd.shardings_for(shd.stream_specs(arrays, self.mesh), self.mesh))
        return eqx.combine(arrays, static)

    def step(self, state: TDState, x: Array, cumulant) -> tuple[TDState, Array]:
        """Observe ``x_t`` and the cumulant ``c_t`` it carries; update; return ``ŷ_t``."""
        if jnp.ndim(state.y_prev):  # several streams: each its own learner
            return eqx.filter_vmap(self._step)(state, x, cumulant)
        return self._step(state, x, cumulant)

    def _step(self, state: TDState, x: Array, cumulant) -> tuple[TDState, Array]:
        model = state.model
        carry, out = self.estimator.step(model, state.carry, x, None, _prediction)
        y = out.loss  # ŷ_t (computed with θ_{t-1})
        delta = cumulant + self.gamma * y - state.y_prev
        params, static = split_params(model)
        direction = jax.tree_util.tree_map(lambda e: -delta * e, state.trace)
        updates, opt_state = self.optimizer.update(direction, state.opt_state, params)
        if hasattr(model, "update_scale"):
            scale = model.update_scale(carry.state)
            updates = jax.tree_util.tree_map(lambda u, s: u * s, updates, scale)
        params = optax.apply_updates(params, updates)
        trace = jax.tree_util.tree_map(
            lambda e, g: self.gamma * self.lam * e + g, state.trace, out.grads
        )
        new = TDState(eqx.combine(params, static), carry, trace, opt_state, y)
        return new, y

    def run(self, state: TDState, xs: Array, cumulants: Array) -> tuple[TDState, Array]:
        """``n`` steps in one ``lax.scan`` (``xs`` ``[n, input]``, ``cumulants`` ``[n]``;
        with several streams ``[n, streams, input]`` and ``[n, streams]``)."""

        def local(state, xs, cumulants):
            def body(s, xc):
                return self.step(s, *xc)

            return jax.lax.scan(body, state, (xs, cumulants))

        if self.mesh is None or not jnp.ndim(state.y_prev):
            return local(state, xs, cumulants)
        arrays, static = eqx.partition(state, eqx.is_array)
        spec = shd.stream_specs(arrays, self.mesh)
        spec_t = shd.stream_spec(self.mesh, 2, 1)  # [n, streams, ...]: streams second

        def local_arrays(arrays, xs, cumulants):
            state, ys = local(eqx.combine(arrays, static), xs, cumulants)
            return eqx.filter(state, eqx.is_array), ys

        arrays, ys = shd.shard_streams(
            local_arrays, self.mesh, (spec, spec_t, spec_t), (spec, spec_t)
        )(arrays, xs, cumulants)
        return eqx.combine(arrays, static), ys


# --- the fused fast path: ColoR + TD(λ) + RMSProp on a columnar network ---------------------


class ColumnarTDState(NamedTuple):
    """Everything one stream of :class:`ColumnarTD` keeps (flat in the number of steps).

    All parameters live in one flat vector ``theta = [P.ravel(), w, b]`` (one fused
    update per step; separate small arrays would cost a kernel each), where the column
    parameters are packed input-major as ``P[j, g, i]`` =
    ``[W_ih[g, i, :], w_self[g, i], b[g, i]][j]`` (``[d + 2, 4, k]``), so that
    ``a[g, i] = Σ_j P[j, g, i] z[j, i]`` with ``z[:, i] = [x_t, h_{t-1,i}, 1]``; ``w``,
    ``b`` are the readout.  Input-major, every sum in the step runs over leading
    slices: XLA:CPU fuses those into element-wise loops, while a matrix product or a
    reduction over an inner axis of these tiny per-stream shapes is slow (above all
    when vmapped over streams).

    A state made by ``ColumnarTD.init(model, streams=n)`` holds ``n`` independent
    streams on a trailing axis (``theta`` is ``[p, n]``, ``TH`` is ``[d+2, 4, k, n]``,
    ``count`` is ``[n]`` …): "streams-last", so the innermost, contiguous axis of every
    element-wise loop is the stream axis (long, vectorisable) instead of ``k``.
    """

    theta: Float[Array, "p *streams"]  #: all parameters, flat
    E: Float[Array, "p *streams"]  #: eligibility traces
    V: Float[Array, "p *streams"]  #: RMSProp second moments
    h: Float[Array, "k *streams"]
    c: Float[Array, "k *streams"]
    TH: Float[Array, "d2 4 k *streams"]  #: ∂h_i/∂P (ColoR trace)
    TC: Float[Array, "d2 4 k *streams"]  #: ∂c_i/∂P (ColoR trace)
    count: Array  #: optimizer step count (bias correction)
    y_prev: Float[Array, "*streams"]


class ColumnarTD(eqx.Module):
    """A lean fused step equal to ``TDLambda(ColoR(), td_rmsprop(lr))`` on
    ``columnar_network(d, k)`` (ρ = 0, one output), written out by hand:

    .. math::

        a = P z,\\; c' = \\sigma(a_f) c + \\sigma(a_i)\\tanh a_g,\\; h' = \\sigma(a_o)\\tanh c',\\qquad
        TH' = \\tfrac{\\partial h'}{\\partial h} TH + \\tfrac{\\partial h'}{\\partial c} TC
              + \\tfrac{\\partial h'}{\\partial a} z,\\;
        TC' = \\tfrac{\\partial c'}{\\partial h} TH + \\sigma(a_f) TC + \\tfrac{\\partial c'}{\\partial a} z,

    then ``∇ŷ = (w_i TH', h', 1)``, the TD error, the normalised update along ``δ e`` and
    ``e ← γλe + ∇ŷ``.  Memory: 5 numbers per column parameter (θ, e, v, TH, TC) + 3 per
    readout parameter.  Time: a few dozen small fused element-wise kernels per step over the
    ``[d+2, 4, k]`` arrays — no matrix products and no reductions over inner axes (both
    slow on XLA:CPU for these tiny per-stream shapes); the generic path
    (``jax.value_and_grad`` through the trace injection) gives the same numbers (tested)
    at several times the cost.
    """

    learning_rate: float = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    decay: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    mesh: Any = eqx.field(static=True)

    def __init__(self, learning_rate: float, *, gamma=0.9, lam=0.99, decay=0.9999, eps=1e-8,
                 mesh=None):
        """``mesh``: a ``jax.sharding.Mesh`` (e.g. ``rx.stream_mesh()``) to split the
        streams of an ``init(model, streams=n)`` state over; :meth:`run` and
        :meth:`run_env` then run each device's streams there (no communication: every
        stream is its own learner)."""
        self.learning_rate, self.gamma, self.lam = float(learning_rate), float(gamma), float(lam)
        self.decay, self.eps = float(decay), float(eps)
        if mesh is not None:
            shd.stream_axis(mesh)
        self.mesh = mesh

    def init(self, model, *, streams: int | None = None) -> ColumnarTDState:
        """Pack ``rx.Readout(rx.Columnar(d, k, density=0), 1)``.

        With ``streams=n`` the state holds ``n`` independent streams that all start from
        ``model``, on a trailing axis (see :class:`ColumnarTDState`); :meth:`step` then
        takes ``x`` as ``[d, n]`` and the cumulant as ``[n]``.  On CPU this layout runs
        a batch of streams faster than ``jax.vmap`` over single-stream states (whose
        stream axis is the leading one); the numbers are the same.
        """
        from ..cells.columnar import Columnar

        if streams is not None:
            _check_streams_arg(streams, self.mesh)
        elif self.mesh is not None:
            raise ValueError(
                "a ColumnarTD with a mesh splits streams over devices: create the state with "
                "init(model, streams=n), n a multiple of the mesh's devices."
            )

        core = getattr(model, "core", None)
        if not isinstance(core, Columnar) or core.density != 0.0 or model.weight.shape[0] != 1:
            raise ValueError(
                "ColumnarTD is the fused path for rx.Readout(rx.Columnar(d, k), 1) with "
                "density 0; use TDLambda(rx.ColoR(), td_rmsprop(lr)) for other models."
            )
        P = jnp.concatenate([core.weight_ih, core.weight_self[..., None], core.bias_ih[..., None]], -1)
        P = jnp.moveaxis(P, -1, 0)  # [d + 2, 4, k]
        theta = jnp.concatenate([P.ravel(), model.weight[0].astype(P.dtype), model.bias.astype(P.dtype)])
        zt, zP = jnp.zeros_like(theta), jnp.zeros_like(P)
        zk = jnp.zeros((core.hidden_size,), P.dtype)
        state = ColumnarTDState(theta, zt, zt, zk, zk, zP, zP, jnp.zeros((), jnp.int32),
                                jnp.zeros((), P.dtype))
        if streams is None:
            return state
        state = jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(a[..., None], a.shape + (streams,)).copy(), state)
        if self.mesh is None:
            return state
        spec = shd.stream_specs(state, self.mesh, where=-1)  # streams last
        return shd.place(state, shd.shardings_for(spec, self.mesh))

    @staticmethod
    def unpack(state: ColumnarTDState):
        """``(P, w, b)`` from the flat parameter vector (``P`` is ``[d + 2, 4, k]``)."""
        d2, g, k = state.TH.shape[:3]
        m = d2 * g * k
        return state.theta[:m].reshape(state.TH.shape), state.theta[m : m + k], state.theta[-1]

    def to_model(self, model, state: ColumnarTDState):
        """Unpack the learned parameters into ``model`` (same structure as ``init``'s).
        For a state of several streams, pick one first:
        ``jax.tree_util.tree_map(lambda a: a[..., i], state)``."""
        if state.count.ndim:
            raise ValueError(
                f"to_model takes one stream's state; this one holds {state.count.shape[0]} "
                "streams: pick one with jax.tree_util.tree_map(lambda a: a[..., i], state)"
            )
        P, w, b = self.unpack(state)
        P = jnp.moveaxis(P, 0, -1)  # [4, k, d + 2]
        d = model.core.input_size
        return eqx.tree_at(
            lambda m: (m.core.weight_ih, m.core.weight_self, m.core.bias_ih, m.weight, m.bias),
            model,
            (P[..., :d], P[..., d], P[..., d + 1], w[None], b[None]),
        )

    def step(self, s: ColumnarTDState, x: Array, cumulant) -> tuple[ColumnarTDState, Array]:
        P, w, b = self.unpack(s)
        d2, _, k = P.shape[:3]
        streams = s.count.shape  # () for one stream, (n,) for a streams-last state
        dt = P.dtype
        x = jnp.asarray(x).astype(dt)
        if x.shape != (d2 - 2,) + streams:
            raise ValueError(
                f"x has shape {x.shape}; this state expects {(d2 - 2,) + streams} (input "
                "features first, then the stream axis when the state holds several streams)"
            )
        # a[g, i] = Σ_j W_ih[g, i, j] x_j + w_self[g, i] h_i + b[g, i], as element-wise terms
        a = sum(P[j] * x[j] for j in range(d2 - 2)) + P[d2 - 2] * s.h + P[d2 - 1]
        ig, fg, og = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[3])
        gg = jnp.tanh(a[2])
        c = fg * s.c + ig * gg
        tc = jnp.tanh(c)
        h = og * tc
        # local derivatives of the column (gates i, f, g, o)
        do_tc = og * (1 - tc * tc)
        dc_da = jnp.stack([gg * ig * (1 - ig), s.c * fg * (1 - fg), ig * (1 - gg * gg),
                           jnp.zeros_like(c)])
        dh_da = jnp.stack([dc_da[0] * do_tc, dc_da[1] * do_tc, dc_da[2] * do_tc,
                           tc * og * (1 - og)])
        w_self = P[d2 - 2]  # [4, k] diagonal recurrent weights
        dc_dh = sum(dc_da[g] * w_self[g] for g in range(4))
        dh_dh = sum(dh_da[g] * w_self[g] for g in range(4))
        dh_dc = do_tc * fg
        # z[j, 0, i] = [x_j, h_{t-1,i}, 1]: the immediate influence of P[j, g, i] is ∂·/∂a[g, i] z[j, i]
        z = jnp.concatenate(
            [jnp.broadcast_to(x[:, None], (d2 - 2, k) + streams), s.h[None], jnp.ones((1, k) + streams, dt)]
        )[:, None]
        TH = dh_dh * s.TH + dh_dc * s.TC + dh_da * z
        TC = dc_dh * s.TH + fg * s.TC + dc_da * z
        y = jnp.sum(w * h, axis=0) + b
        # TD error; normalised update along δ e (as td_rmsprop); e ← γλ e + ∇ŷ
        delta = cumulant + self.gamma * y - s.y_prev
        count = s.count + 1
        inv_corr = 1 / (1 - self.decay ** count.astype(dt))
        u = delta * s.E
        V = self.decay * s.V + (1 - self.decay) * u * u
        theta = s.theta + self.learning_rate * u * jax.lax.rsqrt(V * inv_corr + self.eps**2)
        grad = jnp.concatenate([(w * TH).reshape((-1,) + streams), h, jnp.ones((1,) + streams, dt)])
        E = self.gamma * self.lam * s.E + grad
        return ColumnarTDState(theta, E, V, h, c, TH, TC, count, y), y

    def run(self, s: ColumnarTDState, xs, cumulants, *, unroll: int = 1):
        """``n`` steps in one ``lax.scan``: ``xs`` ``[n, d]`` and ``cumulants`` ``[n]``, or
        ``[n, d, streams]`` and ``[n, streams]`` for a state of several streams."""

        def local(s, xs, cumulants):
            def body(st, xc):
                return self.step(st, *xc)

            return jax.lax.scan(body, s, (xs, cumulants), unroll=unroll)

        if self.mesh is None or not s.count.ndim:
            return local(s, xs, cumulants)
        spec = shd.stream_specs(s, self.mesh, where=-1)
        last = lambda nd: shd.stream_spec(self.mesh, nd, -1)  # noqa: E731
        return shd.shard_streams(
            local, self.mesh, (spec, last(3), last(2)), (spec, last(2))
        )(s, xs, cumulants)

    def run_env(self, s: ColumnarTDState, env, env_state, n: int, *, block: int = 1000):
        """``n`` steps of a stream ``env`` generated inside the scan, for a state of
        several streams: ``env`` is an animal-learning stream (:mod:`rtrlax.tasks.animal`,
        or anything with ``generate(env_state, k) -> (env_state, samples)`` whose samples
        have ``x`` ``[k, d]`` and ``cumulant`` ``[k]``), ``env_state`` one per stream
        (leading axis, e.g. ``jax.vmap(env.init)(keys)``; with a mesh, split it first with
        ``rtrlax.learning.sharding.put_streams(env_state, mesh)``, or the first two calls
        compile twice).  The stream is drawn ``block``
        steps at a time (one RNG call per stream and block); ``n`` must be a multiple of
        ``block`` (or smaller than it).

        Returns ``(s, env_state, ys, cumulants)``: the predictions ``ŷ_t`` and the
        cumulants, ``[n, streams]`` each.  With a mesh every device runs its own streams'
        environments and learners (the environment states are split on their leading
        axis).  Jit it (``jax.jit(td.run_env, static_argnums=(3,))``)."""
        if not s.count.ndim:
            raise ValueError("run_env takes a state of several streams: init(model, streams=n).")
        block = min(block, n)
        if n % block:
            raise ValueError(f"n={n} is not a multiple of block={block}; pick n = k * block.")

        def local(s, env_state):
            def one_block(carry, _):
                s, es = carry
                if hasattr(env, "step_with"):  # as env.generate, but inside the learner's scan
                    keys, subs = jnp.moveaxis(jax.vmap(jax.random.split)(es.key), 1, 0)
                    us = jax.vmap(lambda k: jax.random.uniform(k, (block, env.n_uniforms)),
                                  out_axes=1)(subs)  # [block, streams, n_uniforms]

                    def body(c, u):
                        st, e = c
                        e, smp = jax.vmap(env.step_with)(e, u)
                        st, y = self.step(st, smp.x.T, smp.cumulant)
                        return (st, e), (y, smp.cumulant)

                    (s, es), (ys, cs) = jax.lax.scan(body, (s, es._replace(key=keys)), us)
                    return (s, es), (ys, cs)
                es, smp = jax.vmap(env.generate, (0, None))(es, block)  # [streams, block, ...]
                xs = jnp.transpose(smp.x, (1, 2, 0))  # [block, d, streams]
                cs = smp.cumulant.T  # [block, streams]
                s, ys = jax.lax.scan(lambda st, xc: self.step(st, *xc), s, (xs, cs))
                return (s, es), (ys, cs)

            (s, env_state), (ys, cs) = jax.lax.scan(one_block, (s, env_state), None, length=n // block)
            streams = ys.shape[-1]
            return s, env_state, ys.reshape(n, streams), cs.reshape(n, streams)

        if self.mesh is None:
            return local(s, env_state)
        spec = shd.stream_specs(s, self.mesh, where=-1)
        spec_env = shd.stream_specs(env_state, self.mesh)
        last = shd.stream_spec(self.mesh, 2, -1)
        return shd.shard_streams(
            local, self.mesh, (spec, spec_env), (spec, spec_env, last, last)
        )(s, env_state)


def _check_streams_arg(streams, mesh) -> None:
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"streams must be a positive int (the number of streams), got {streams!r}")
    shd.check_streams(streams, mesh)


def msre_chunk(learner, env, *, block: int, blocks: int):
    """A function ``(learner_state, env_state) -> (learner_state, env_state, msre, mean G²)``
    that runs ``block·blocks`` steps of TD(λ) on ``env`` (an animal-learning stream,
    :mod:`rtrlax.tasks.animal`) in one ``lax.scan``, unbatched (vmap it over streams).

    The stream is produced in fixed blocks of ``block`` steps, so the true return
    ``G_t = Σ_j γ^j c_{t+1+j}`` of every step of the chunk is computed exactly from the
    chunk and a peek at the next block, which the next call regenerates identically
    (the sum is cut ``block`` steps after the chunk: relative error ≤ γ^block).
    ``learner`` is a :class:`TDLambda` or :class:`ColumnarTD`.
    """
    def one_block(es):
        return env.generate(es, block)

    def chunk(ls, es):
        def body(carry, _):
            ls, es = carry
            es, smp = one_block(es)
            ls, ys = learner.run(ls, smp.x, smp.cumulant)
            return (ls, es), (ys, smp.cumulant)

        (ls, es), (ys, cs) = jax.lax.scan(body, (ls, es), None, length=blocks)
        _, peek = one_block(es)
        n = block * blocks
        g = discounted_return(jnp.concatenate([cs.reshape(-1), peek.cumulant]), env.gamma)[:n]
        err = (g - ys.reshape(-1).astype(g.dtype)) ** 2
        return ls, es, jnp.mean(err), jnp.mean(g**2)

    return chunk
