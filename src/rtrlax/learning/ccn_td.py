"""A fused TD(λ) step for constructive / CCN networks (:class:`~rtrlax.Constructive`).

Equal to ``TDLambda(ColoR(), td_rmsprop(lr))`` on a ``Constructive`` network (tested in
float64, across a stage change), written out by hand in the manner of
:class:`~rtrlax.learning.td.ColumnarTD`, with the work of each stage matched to its role.
With ``s*`` the learning stage (from the step count):

* **frozen stages** ``s < s*`` run forward only: their columns' LSTM step
  (``a = P z``, ``c' = σ(a_f) c + σ(a_i) tanh a_g``, ``h' = σ(a_o) tanh c'``, with
  ``z = [x̂, f̂^0, …, f̂^{s-1}, h, 1]``) — no traces, no eligibility, no update;
* **the learning stage** ``s*`` carries its ColoR traces
  ``TH = ∂h/∂P``, ``TC = ∂c/∂P`` (per column, exact: its inputs from frozen stages are
  constants), forms ``∇ŷ = (w ⊙ n) TH`` (``n`` = the features' normalisation factors),
  and applies the normalised TD update ``P += α u / sqrt(v / (1 − β₂ⁿ) + ε²)``,
  ``u = δ e``, ``v ← β₂ v + (1 − β₂) u²``, ``e ← γλ e + ∇ŷ``;
* **stages not yet built** ``s > s*`` keep their state and traces running (forward and
  trace recursion, no update): the generic path does the same, and when such a stage
  starts learning its traces already hold the exact ``∂h/∂P`` of the whole past.  (CCN's
  last stages are the ones that run longest, so from the second stage on most of the
  network is frozen.)

The readout ``ŷ = Σ_{built} w_i f̂_i + b`` is updated every step with step size divided
by the number of built features (``Constructive.update_scale``).  Running statistics of
the inputs (stage 0) and of the learning stage's features follow ``Constructive``.

Each stage's parameters are packed input-major as ``P[j, g, i]`` =
``[W_ih[g, i, :], w_self[g, i], b[g, i]][j]`` (``[d_s + 2, 4, k]``), as in
``ColumnarTD``.  One stream per state; vmap it for several.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..nets.ccn import Constructive


class CCNTDState(NamedTuple):
    """One stream of :class:`CCNTD` (flat in the number of steps).  Per-stage tuples."""

    P: tuple  #: packed column parameters per stage, ``[d_s + 2, 4, k]``
    E: tuple  #: eligibility traces of P
    V: tuple  #: RMSProp second moments of P
    TH: tuple  #: ∂h/∂P (ColoR)
    TC: tuple  #: ∂c/∂P (ColoR)
    h: tuple  #: ``[k]`` per stage
    c: tuple  #: ``[k]`` per stage
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
        P = tuple(
            jnp.moveaxis(jnp.concatenate([s.weight_ih, s.weight_self[..., None], s.bias_ih[..., None]], -1), -1, 0)
            for s in model.stages
        )
        zeros = lambda t: tuple(jnp.zeros_like(a) for a in t)  # noqa: E731
        st = model.initial_state()
        dt = model.weight.dtype
        zero = jnp.zeros((), dt)
        return CCNTDState(
            P, zeros(P), zeros(P), zeros(P), zeros(P),
            tuple(h for h, _ in st.cells), tuple(c for _, c in st.cells),
            model.weight[0], model.bias[0], jnp.zeros_like(model.weight[0]), zero,
            jnp.zeros_like(model.weight[0]), zero,
            st.count, jnp.zeros((), jnp.int32), st.in_mean, st.in_var, st.f_mean, st.f_var, zero,
        )

    def to_model(self, model: Constructive, state: CCNTDState) -> Constructive:
        """Unpack the learned parameters into ``model`` (the one given to :meth:`init`)."""
        stages = []
        for cell, P in zip(model.stages, state.P):
            Q = jnp.moveaxis(P, 0, -1)  # [4, k, d_s + 2]
            d = cell.input_size
            stages.append(eqx.tree_at(lambda c: (c.weight_ih, c.weight_self, c.bias_ih), cell,
                                      (Q[..., :d], Q[..., d], Q[..., d + 1])))
        return eqx.tree_at(lambda m: (m.stages, m.weight, m.bias), model,
                           (tuple(stages), state.w[None], state.b[None]))

    def step(self, model: Constructive, s: CCNTDState, x: Array, cumulant) -> tuple[CCNTDState, Array]:
        """Observe ``x_t`` and its cumulant; update; return ``ŷ_t`` (computed with θ_{t-1}).
        ``model`` supplies the static configuration only (its arrays are not read)."""
        dt = s.w.dtype
        k, n_st = model.per_stage, model.n_stages
        stage = jnp.minimum(s.steps // model.steps_per_stage, n_st - 1)
        x = jnp.asarray(x).astype(dt)
        if x.shape != (model.input_size,):
            raise ValueError(f"x has shape {x.shape}; this network expects ({model.input_size},).")
        norm = (lambda v, m, var: (v - m) * jax.lax.rsqrt(var + 1e-5)) if model.normalise else (
            lambda v, m, var: v)
        feats = [norm(x, s.in_mean, s.in_var)]
        h_new, c_new, TH_new, TC_new = [], [], [], []
        for j in range(n_st):
            P, h, c = s.P[j], s.h[j], s.c[j]
            u = jnp.concatenate(feats)
            d = u.shape[0]
            a = sum(P[i] * u[i] for i in range(d)) + P[d] * h + P[d + 1]  # [4, k]
            ig, fg, og = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[3])
            gg = jnp.tanh(a[2])
            c2 = fg * c + ig * gg
            tc = jnp.tanh(c2)
            h2 = og * tc

            def traces(TH, TC, P=P, h=h, c=c, u=u, d=d, ig=ig, fg=fg, og=og, gg=gg, tc=tc):
                do_tc = og * (1 - tc * tc)
                dc_da = jnp.stack([gg * ig * (1 - ig), c * fg * (1 - fg), ig * (1 - gg * gg),
                                   jnp.zeros_like(c)])
                dh_da = jnp.stack([dc_da[0] * do_tc, dc_da[1] * do_tc, dc_da[2] * do_tc,
                                   tc * og * (1 - og)])
                w_self = P[d]
                dc_dh = sum(dc_da[g] * w_self[g] for g in range(4))
                dh_dh = sum(dh_da[g] * w_self[g] for g in range(4))
                dh_dc = do_tc * fg
                z = jnp.concatenate([jnp.broadcast_to(u[:, None], (d, k)), h[None], jnp.ones((1, k), dt)])[:, None]
                return dh_dh * TH + dh_dc * TC + dh_da * z, dc_dh * TH + fg * TC + dc_da * z

            # frozen stages (j < stage) keep their (unused) traces; the others update them
            TH, TC = jax.lax.cond(stage <= j, traces, lambda TH, TC: (TH, TC), s.TH[j], s.TC[j])
            h_new.append(h2)
            c_new.append(c2)
            TH_new.append(TH)
            TC_new.append(TC)
            sl = slice(j * k, (j + 1) * k)
            feats.append(norm(h2, s.f_mean[sl], s.f_var[sl]))
        f_hat = jnp.concatenate(feats[1:])
        col_stage = jnp.arange(model.total) // k
        built = col_stage <= stage
        y = jnp.dot(jnp.where(built, s.w, 0), f_hat) + s.b

        # TD error and the normalised update along δ e (td_rmsprop), scaled as update_scale
        delta = cumulant + self.gamma * y - s.y_prev
        count = s.count + 1
        inv_corr = 1 / (1 - self.decay ** count.astype(dt))
        lr, decay, eps, gl = self.learning_rate, self.decay, self.eps, self.gamma * self.lam

        def rms(theta, E, V, grad, scale):
            u = delta * E
            V = decay * V + (1 - decay) * u * u
            theta = theta + scale * lr * u * jax.lax.rsqrt(V * inv_corr + eps**2)
            return theta, gl * E + grad, V

        n_active = ((stage + 1) * k).astype(dt)
        w, Ew, Vw = rms(s.w, s.Ew, s.Vw, jnp.where(built, f_hat, 0), 1 / n_active)
        b, Eb, Vb = rms(s.b, s.Eb, s.Vb, jnp.ones((), dt), 1.0)
        scale = jax.lax.rsqrt(s.f_var + 1e-5) if model.normalise else jnp.ones_like(s.f_var)
        P_new, E_new, V_new = [], [], []
        for j in range(n_st):
            sl = slice(j * k, (j + 1) * k)

            def learn(P, E, V, TH, coef=s.w[sl] * scale[sl]):
                return rms(P, E, V, coef * TH, 1.0)

            P, E, V = jax.lax.cond(stage == j, learn, lambda P, E, V, TH: (P, E, V),
                                   s.P[j], s.E[j], s.V[j], TH_new[j])
            P_new.append(P)
            E_new.append(E)
            V_new.append(V)

        # running statistics: inputs during stage 0, the learning stage's features
        def stats(v, mean, var, learn):
            beta = jnp.where(learn, model.norm_rate, 0.0).astype(dt)
            mean = mean + beta * (v - mean)
            return mean, var + beta * ((v - mean) ** 2 - var)

        in_mean, in_var = stats(x, s.in_mean, s.in_var, stage == 0)
        f_mean, f_var = stats(jnp.concatenate(h_new), s.f_mean, s.f_var, col_stage == stage)
        new = CCNTDState(
            tuple(P_new), tuple(E_new), tuple(V_new), tuple(TH_new), tuple(TC_new),
            tuple(h_new), tuple(c_new), w, b, Ew, Eb, Vw, Vb, s.steps + 1, count,
            in_mean, in_var, f_mean, f_var, y,
        )
        return new, y

    def run(self, model: Constructive, s: CCNTDState, xs, cumulants):
        """``n`` steps in one ``lax.scan`` (``xs`` ``[n, input]``, ``cumulants`` ``[n]``)."""

        def body(st, xc):
            return self.step(model, st, *xc)

        return jax.lax.scan(body, s, (xs, cumulants))
