"""A fused TD(λ) step for constructive / CCN networks (:class:`~rtrlax.Constructive`).

Equal to ``TDLambda(ColoR(), td_rmsprop(lr))`` on a ``Constructive`` network (tested in
float64, across stage changes), written out by hand in the manner of
:class:`~rtrlax.learning.td.ColumnarTD`.  With ``s*`` the learning stage (from the step
count), per step:

1. **forward, stage by stage** (the only sequential part: stage ``s`` reads the
   features of the stages before it at the same step): column ``i`` of stage ``s``
   computes ``a = P z``, ``c' = σ(a_f) c + σ(a_i) tanh a_g``, ``h' = σ(a_o) tanh c'``
   with ``z = [x̂, f̂^0, …, f̂^{s-1}, h_i, 1]``;
2. **ColoR traces of every column at once** (``TH = ∂h/∂P``, ``TC = ∂c/∂P``, exact:
   each stage's inputs from earlier stages are constants for its parameters);
3. ``∇ŷ = (w ⊙ n) TH`` for the learning stage's columns (``n``: the features'
   normalisation factors), the readout's ``(f̂, 1)``, and the normalised TD update
   ``θ += α m u / sqrt(v / (1 − β₂ⁿ) + ε²)``, ``u = δ e``, ``v ← β₂ v + (1 − β₂) u²``,
   ``e ← γλ e + ∇ŷ``, with ``m`` = 1 on the learning stage, 0 on the others, and
   ``1/#built features`` on the readout weights (``Constructive.update_scale``).

All columns live in one array ``P[r, g, i]`` of ``[d + total + 2, 4, total]`` rows
``[x̂ (d), features (total), own h, 1]``: column ``i`` of stage ``s`` uses the rows of
``x̂`` and of the features of stages ``< s``; its other feature rows are zero and stay
zero (their input is masked, so their traces and updates are zero).  Steps 2–3 are then
a few fused element-wise loops over that array, like ``ColumnarTD``'s, instead of a
kernel per stage: on a CPU a step of these tiny shapes costs what it launches, not
what it multiplies.  The price: frozen and unbuilt stages' traces and eligibility are
updated too (as the generic path does), so the cost is that of all ``total`` columns,
not of the learning stage alone (measured: ``benchmarks/animal_learning.py
--ccn-throughput``).  One stream per state; vmap it for several.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..nets.ccn import Constructive


class CCNTDState(NamedTuple):
    """One stream of :class:`CCNTD` (flat in the number of steps)."""

    P: Float[Array, "rows 4 total"]  #: all column parameters (see module docstring)
    E: Float[Array, "rows 4 total"]  #: eligibility traces of P
    V: Float[Array, "rows 4 total"]  #: RMSProp second moments of P
    TH: Float[Array, "rows 4 total"]  #: ∂h/∂P (ColoR)
    TC: Float[Array, "rows 4 total"]  #: ∂c/∂P (ColoR)
    h: Float[Array, " total"]
    c: Float[Array, " total"]
    w: Float[Array, " total"]  #: readout weights
    b: Float[Array, ""]  #: readout bias
    Ew: Float[Array, " total"]
    Eb: Float[Array, ""]
    Vw: Float[Array, " total"]
    Vb: Float[Array, ""]
    steps: Int[Array, ""]  #: the network's step count (decides the learning stage)
    count: Int[Array, ""]  #: optimizer steps (bias correction)
    in_mean: Float[Array, " input"]
    in_var: Float[Array, " input"]
    f_mean: Float[Array, " total"]
    f_var: Float[Array, " total"]
    y_prev: Float[Array, ""]


def _rows_used(model: Constructive) -> np.ndarray:
    """``[rows, total]`` booleans: which rows of ``P`` each column reads."""
    d, n, k = model.input_size, model.total, model.per_stage
    used = np.zeros((d + n + 2, n), bool)
    for i in range(n):
        used[: d + (i // k) * k, i] = True
        used[d + n :, i] = True
    return used


class CCNTD(eqx.Module):
    """The fused CCN TD(λ) step (see module docstring).  Same arguments as
    ``TDLambda(ColoR(), td_rmsprop(learning_rate, decay=decay, eps=eps), gamma=gamma,
    lam=lam)``."""

    learning_rate: float = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    decay: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(self, learning_rate: float, *, gamma=0.9, lam=0.99, decay=0.9999, eps=1e-8):
        if not (0.0 <= gamma < 1.0) or not (0.0 <= lam <= 1.0):
            raise ValueError(f"need 0 <= gamma < 1 and 0 <= lam <= 1, got gamma={gamma}, lam={lam}.")
        self.learning_rate, self.gamma, self.lam = float(learning_rate), float(gamma), float(lam)
        self.decay, self.eps = float(decay), float(eps)

    def init(self, model: Constructive) -> CCNTDState:
        """Pack a :class:`~rtrlax.Constructive` network whose stages have no cross-column
        connections (``density = 0``, as ``Constructive`` builds them)."""
        if not isinstance(model, Constructive) or any(s.weight_hh is not None for s in model.stages):
            raise ValueError(
                "CCNTD is the fused path for rx.Constructive networks (stages without "
                "cross-column connections); use TDLambda(rx.ColoR(), td_rmsprop(lr)) otherwise."
            )
        d, n = model.input_size, model.total
        dt = model.weight.dtype
        blocks = []
        for cell in model.stages:
            q = cell.weight_ih  # [4, k, d_s]
            pad = jnp.zeros(q.shape[:2] + (d + n - q.shape[2],), dt)
            q = jnp.concatenate([q, pad, cell.weight_self[..., None], cell.bias_ih[..., None]], -1)
            blocks.append(jnp.moveaxis(q, -1, 0))  # [rows, 4, k]
        P = jnp.concatenate(blocks, axis=-1)
        zP = jnp.zeros_like(P)
        st = model.initial_state()
        zero = jnp.zeros((), dt)
        w = model.weight[0]
        return CCNTDState(
            P, zP, zP, zP, zP, jnp.concatenate([h for h, _ in st.cells]),
            jnp.concatenate([c for _, c in st.cells]), w, model.bias[0], jnp.zeros_like(w), zero,
            jnp.zeros_like(w), zero, st.count, jnp.zeros((), jnp.int32),
            st.in_mean, st.in_var, st.f_mean, st.f_var, zero,
        )

    def to_model(self, model: Constructive, state: CCNTDState) -> Constructive:
        """Unpack the learned parameters into ``model`` (the one given to :meth:`init`)."""
        d, n, k = model.input_size, model.total, model.per_stage
        stages = []
        for j, cell in enumerate(model.stages):
            Q = jnp.moveaxis(state.P[..., j * k : (j + 1) * k], 0, -1)  # [4, k, rows]
            stages.append(eqx.tree_at(lambda c: (c.weight_ih, c.weight_self, c.bias_ih), cell,
                                      (Q[..., : cell.input_size], Q[..., d + n], Q[..., d + n + 1])))
        return eqx.tree_at(lambda m: (m.stages, m.weight, m.bias), model,
                           (tuple(stages), state.w[None], state.b[None]))

    def step(self, model: Constructive, s: CCNTDState, x: Array, cumulant) -> tuple[CCNTDState, Array]:
        """Observe ``x_t`` and its cumulant; update; return ``ŷ_t`` (computed with θ_{t-1}).
        ``model`` supplies the static configuration only (its arrays are not read)."""
        dt = s.w.dtype
        d, n, k = model.input_size, model.total, model.per_stage
        x = jnp.asarray(x).astype(dt)
        if x.shape != (d,):
            raise ValueError(f"x has shape {x.shape}; this network expects ({d},).")
        stage = jnp.minimum(s.steps // model.steps_per_stage, model.n_stages - 1)
        if model.normalise:
            x_hat = (x - s.in_mean) * jax.lax.rsqrt(s.in_var + 1e-5)
            f_scale = jax.lax.rsqrt(s.f_var + 1e-5)
        else:
            x_hat, f_scale = x, jnp.ones_like(s.f_var)

        # 1. forward, stage by stage: a[g, i] = Σ_r P[r, g, i] z[r, i]
        P = s.P
        feats, a_parts = [], []
        for j in range(model.n_stages):
            cols = slice(j * k, (j + 1) * k)
            u = jnp.concatenate([x_hat, *feats])
            Pj = P[:, :, cols]
            a = jnp.tensordot(u, Pj[: u.shape[0]], axes=1) + Pj[d + n] * s.h[cols] + Pj[d + n + 1]
            c2 = jax.nn.sigmoid(a[1]) * s.c[cols] + jax.nn.sigmoid(a[0]) * jnp.tanh(a[2])
            h2 = jax.nn.sigmoid(a[3]) * jnp.tanh(c2)
            feats.append(model._norm(h2, s.f_mean[cols], s.f_var[cols]) if model.normalise else h2)
            a_parts.append(a)
        a = jnp.concatenate(a_parts, axis=-1)  # [4, total]
        f_hat = jnp.concatenate(feats)

        # 2. ColoR traces of every column (gates i, f, g, o)
        ig, fg, og = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[3])
        gg = jnp.tanh(a[2])
        c = fg * s.c + ig * gg
        tc = jnp.tanh(c)
        h = og * tc
        do_tc = og * (1 - tc * tc)
        dc_da = jnp.stack([gg * ig * (1 - ig), s.c * fg * (1 - fg), ig * (1 - gg * gg), jnp.zeros_like(c)])
        dh_da = jnp.stack([dc_da[0] * do_tc, dc_da[1] * do_tc, dc_da[2] * do_tc, tc * og * (1 - og)])
        w_self = P[d + n]
        dc_dh = sum(dc_da[g] * w_self[g] for g in range(4))
        dh_dh = sum(dh_da[g] * w_self[g] for g in range(4))
        dh_dc = do_tc * fg
        z_rows = jnp.concatenate([x_hat, f_hat])
        z = jnp.where(jnp.asarray(_rows_used(model)[: d + n]), z_rows[:, None], 0)  # [d + n, total]
        z = jnp.concatenate([z, s.h[None], jnp.ones((1, n), dt)])[:, None]  # [rows, 1, total]
        TH = dh_dh * s.TH + dh_dc * s.TC + dh_da * z
        TC = dc_dh * s.TH + fg * s.TC + dc_da * z

        # 3. prediction, TD error, normalised update along δ e, e ← γλ e + ∇ŷ
        col_stage = jnp.arange(n) // k
        built = col_stage <= stage
        y = jnp.dot(jnp.where(built, s.w, 0), f_hat) + s.b
        delta = cumulant + self.gamma * y - s.y_prev
        count = s.count + 1
        inv_corr = 1 / (1 - self.decay ** count.astype(dt))
        lr, decay, eps, gl = self.learning_rate, self.decay, self.eps, self.gamma * self.lam

        def rms(theta, E, V, grad, scale):
            u = delta * E
            V = decay * V + (1 - decay) * u * u
            theta = theta + scale * lr * u * jax.lax.rsqrt(V * inv_corr + eps**2)
            return theta, gl * E + grad, V

        learning = (col_stage == stage).astype(dt)
        w, Ew, Vw = rms(s.w, s.Ew, s.Vw, jnp.where(built, f_hat, 0), 1 / ((stage + 1) * k).astype(dt))
        b, Eb, Vb = rms(s.b, s.Eb, s.Vb, jnp.ones((), dt), 1.0)
        P, E, V = rms(P, s.E, s.V, (learning * s.w * f_scale) * TH, learning)

        # running statistics: inputs during stage 0, the learning stage's features
        def stats(v, mean, var, learn):
            beta = jnp.where(learn, model.norm_rate, 0.0).astype(dt)
            mean = mean + beta * (v - mean)
            return mean, var + beta * ((v - mean) ** 2 - var)

        in_mean, in_var = stats(x, s.in_mean, s.in_var, stage == 0)
        f_mean, f_var = stats(h, s.f_mean, s.f_var, col_stage == stage)
        new = CCNTDState(P, E, V, TH, TC, h, c, w, b, Ew, Eb, Vw, Vb, s.steps + 1, count,
                         in_mean, in_var, f_mean, f_var, y)
        return new, y

    def run(self, model: Constructive, s: CCNTDState, xs, cumulants):
        """``n`` steps in one ``lax.scan`` (``xs`` ``[n, input]``, ``cumulants`` ``[n]``)."""

        def body(st, xc):
            return self.step(model, st, *xc)

        return jax.lax.scan(body, s, (xs, cumulants))
