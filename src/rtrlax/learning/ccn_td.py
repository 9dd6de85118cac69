"""A fused TD(λ) step for constructive / CCN networks (:class:`~rtrlax.Constructive`).

Equal to ``TDLambda(ColoR(), td_rmsprop(lr))`` on a ``Constructive`` network (tested in
float64, across stage changes), written out by hand in the manner of
:class:`~rtrlax.learning.td.ColumnarTD`, and **specialised on the learning stage**
``s*``: the stage is fixed for ``steps_per_stage`` steps, so :meth:`CCNTD.run` splits
its steps at stage boundaries and runs each piece with a step compiled for that stage
(:meth:`CCNTD.step` picks the stage per step with ``lax.switch``, for single steps).
A step of stage ``s*``:

1. **forward of every stage, stage by stage** (stage ``s`` reads the features of the
   stages before it at the same step): column ``i`` of stage ``s`` computes ``a = P z``,
   ``c' = σ(a_f) c + σ(a_i) tanh a_g``, ``h' = σ(a_o) tanh c'`` with
   ``z = [x̂, f̂^0, …, f̂^{s-1}, h_i, 1]`` (the gates as one array,
   ``tanh a = 2σ(2a) − 1``);
2. **ColoR traces** ``TH = ∂h/∂P``, ``TC = ∂c/∂P`` of the learning stage and of the
   stages not built yet (the generic path traces those too: their traces are what the
   stage starts learning with); frozen stages (``s < s*``) get **no** trace work;
3. ``∇ŷ = (w ⊙ n) TH`` for the learning stage's columns only (``n``: the features'
   normalisation factors), the readout's ``(f̂, 1)`` over the built features, and the
   normalised TD update ``θ += α m u / sqrt(v / (1 − β₂ⁿ) + ε²)``, ``u = δ e``,
   ``v ← β₂ v + (1 − β₂) u²``, ``e ← γλ e + ∇ŷ`` on the learning stage's parameters and the
   readout (``m = 1/#built features`` on the readout weights,
   ``Constructive.update_scale``).

Per-stage arrays: stage ``s`` keeps ``P, E, V`` of shape ``[d + s·k + 2, 4, k]`` (rows
``[x̂, f̂^0…f̂^{s-1}, own h, 1]``, no padding) and its traces ``T = (TH, TC)`` as
``[2, d + s·k + 2, 4, k]``.  What the generic path would still change on a frozen stage
— its eligibility decaying, its second moments, its traces — is never read again (the
stage never learns again), so the fused step leaves those arrays as they were when the
stage froze; parameters, predictions, network state and statistics are equal.  Cost
per step: the forward of all stages + the traces of stages ``≥ s*`` + the update of one
stage (measured: ``benchmarks/animal_learning.py --ccn-throughput``).  On a CPU a step
of these tiny shapes costs about what it launches, so the code is written to keep the
number of fused loops per step small.  One stream per state; vmap it for several.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..nets.ccn import Constructive
from .td import _check_td_stream


class CCNTDState(NamedTuple):
    """One stream of :class:`CCNTD` (flat in the number of steps); per-stage tuples
    hold one array per stage (see the module docstring for their rows)."""

    P: tuple  #: per stage ``[rows_s, 4, k]``: column parameters
    E: tuple  #: per stage: eligibility traces of P
    V: tuple  #: per stage: RMSProp second moments of P
    T: tuple  #: per stage ``[2, rows_s, 4, k]``: ColoR traces (∂h/∂P, ∂c/∂P)
    hc: tuple  #: per stage ``[2, k]``: (h, c)
    fs: tuple  #: per stage ``[2, k]``: running mean and variance of the features
    r: Float[Array, " total+1"]  #: readout ``[w, b]``
    Er: Float[Array, " total+1"]  #: eligibility of the readout
    Vr: Float[Array, " total+1"]  #: second moments of the readout
    steps: Int[Array, ""]  #: the network's step count (decides the learning stage)
    count: Int[Array, ""]  #: optimizer steps (bias correction)
    in_mean: Float[Array, " input"]
    in_var: Float[Array, " input"]
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
        dt = model.weight.dtype
        k = model.per_stage
        P = tuple(
            jnp.moveaxis(jnp.concatenate([c.weight_ih, c.weight_self[..., None], c.bias_ih[..., None]], -1), -1, 0)
            for c in model.stages
        )
        zeros = tuple(jnp.zeros_like(p) for p in P)
        st = model.initial_state()
        r = jnp.concatenate([model.weight[0], model.bias]).astype(dt)
        cols = [slice(j * k, (j + 1) * k) for j in range(model.n_stages)]
        return CCNTDState(
            P, zeros, zeros, tuple(jnp.zeros((2,) + p.shape, dt) for p in P),
            tuple(jnp.stack([h, c]) for h, c in st.cells),
            tuple(jnp.stack([st.f_mean[c], st.f_var[c]]) for c in cols),
            r, jnp.zeros_like(r), jnp.zeros_like(r), st.count, jnp.zeros((), jnp.int32),
            st.in_mean, st.in_var, jnp.zeros((), dt),
        )

    def to_model(self, model: Constructive, state: CCNTDState) -> Constructive:
        """Unpack the learned parameters into ``model`` (the one given to :meth:`init`)."""
        stages = []
        for j, cell in enumerate(model.stages):
            Q = jnp.moveaxis(state.P[j], 0, -1)  # [4, k, rows]
            m = cell.input_size
            stages.append(eqx.tree_at(lambda c: (c.weight_ih, c.weight_self, c.bias_ih), cell,
                                      (Q[..., :m], Q[..., m], Q[..., m + 1])))
        return eqx.tree_at(lambda m: (m.stages, m.weight, m.bias), model,
                           (tuple(stages), state.r[None, :-1], state.r[-1:]))

    @staticmethod
    def features(model: Constructive, state: CCNTDState):
        """``(h, f_var)`` of all columns, ``[total]`` each (the network's state, for checks)."""
        return (jnp.concatenate([hc[0] for hc in state.hc]),
                jnp.concatenate([f[1] for f in state.fs]))

    def _check(self, model, x):
        if jnp.shape(x) != (model.input_size,):
            raise ValueError(f"x has shape {jnp.shape(x)}; this network expects ({model.input_size},).")

    def step_stage(self, model: Constructive, s: CCNTDState, x: Array, cumulant, stage: int):
        """One step with the learning stage fixed to ``stage`` (a Python int; the caller
        guarantees ``stage == min(s.steps // steps_per_stage, n_stages - 1)``:
        :meth:`run` and :meth:`step` do)."""
        self._check(model, x)
        dt = s.r.dtype
        d, n, k = model.input_size, model.total, model.per_stage
        S = model.n_stages
        x = jnp.asarray(x).astype(dt)
        norm = model.normalise

        def normed(v, f):
            return (v - f[0]) * jax.lax.rsqrt(f[1] + 1e-5) if norm else v

        x_hat = normed(x, (s.in_mean, s.in_var))
        # 1. forward, stage by stage; gates [σ(a_i), σ(a_f), tanh(a_g), σ(a_o)] = κ σ(κ a) − ι
        kap = jnp.asarray([1.0, 1.0, 2.0, 1.0], dt)[:, None]
        iota = jnp.asarray([0.0, 0.0, 1.0, 0.0], dt)[:, None]
        feats, hcs, us, gates = [], [], [], []
        for j in range(S):
            u = jnp.concatenate([x_hat, *feats])
            Pj, m = s.P[j], d + j * k
            h0, c0 = s.hc[j][0], s.hc[j][1]
            # a[g, i] = Σ_r P[r, g, i] z[r]: element-wise terms (fused into one loop)
            a = sum(Pj[r] * u[r] for r in range(m)) + Pj[m] * h0 + Pj[m + 1]
            G = jax.nn.sigmoid(kap * a) * kap - iota
            c2 = G[1] * c0 + G[0] * G[2]
            hc = jnp.stack([G[3] * jnp.tanh(c2), c2])
            hcs.append(hc)
            feats.append(normed(hc[0], s.fs[j]))
            us.append(u)
            gates.append(G)

        # 2. ColoR traces of the learning stage and the unbuilt ones (gates i, f, g, o)
        T = list(s.T)
        for j in range(stage, S):
            G, m = gates[j], d + j * k
            ig, fg, gg, og = G[0], G[1], G[2], G[3]
            h0, c0 = s.hc[j][0], s.hc[j][1]
            tc = jnp.tanh(hcs[j][1])
            do_tc = og * (1 - tc * tc)
            dc_da = jnp.stack([gg * ig * (1 - ig), c0 * fg * (1 - fg), ig * (1 - gg * gg), jnp.zeros_like(c0)])
            dh_da = jnp.stack([dc_da[0] * do_tc, dc_da[1] * do_tc, dc_da[2] * do_tc, tc * og * (1 - og)])
            w_self = s.P[j][m]
            dc_dh = sum(dc_da[g] * w_self[g] for g in range(4))
            dh_dh = sum(dh_da[g] * w_self[g] for g in range(4))
            dh_dc = do_tc * fg
            z = jnp.concatenate([jnp.broadcast_to(us[j][:, None], (m, k)), h0[None], jnp.ones((1, k), dt)])
            TH0, TC0 = s.T[j][0], s.T[j][1]
            if stage < S - 1:  # measured faster when several stages are traced
                TH = dh_dh * TH0 + dh_dc * TC0 + dh_da * z[:, None]
                TC = dc_dh * TH0 + fg * TC0 + dc_da * z[:, None]
                T[j] = jnp.stack([TH, TC])
            else:  # one traced stage: one loop over (TH, TC)
                A = jnp.stack([dh_dh, dc_dh])[:, None, None, :]
                B = jnp.stack([dh_dc, fg])[:, None, None, :]
                T[j] = A * TH0[None] + B * TC0[None] + jnp.stack([dh_da, dc_da])[:, None] * z[None, :, None]

        # 3. prediction over the built features, TD error, normalised update along δ e
        nb = (stage + 1) * k
        f_hat = jnp.concatenate(feats[: stage + 1])
        y = jnp.dot(s.r[:nb], f_hat) + s.r[n]
        delta = cumulant + self.gamma * y - s.y_prev
        count = s.count + 1
        inv_corr = 1 / (1 - self.decay ** count.astype(dt))
        lr, decay, eps, gl = self.learning_rate, self.decay, self.eps, self.gamma * self.lam

        def rms(theta, E, V, grad, scale):
            u = delta * E
            V = decay * V + (1 - decay) * u * u
            theta = theta + scale * lr * u * jax.lax.rsqrt(V * inv_corr + eps**2)
            return theta, gl * E + grad, V

        # readout: unbuilt weights have e = v = 0, so their update is exactly zero
        scale_r = np.zeros(n + 1)
        scale_r[:nb], scale_r[n] = 1.0 / nb, 1.0
        grad_r = jnp.concatenate([f_hat, jnp.zeros(n - nb, dt), jnp.ones(1, dt)])
        r, Er, Vr = rms(s.r, s.Er, s.Vr, grad_r, jnp.asarray(scale_r, dt))
        w_l = s.r[stage * k : nb]
        f_scale = jax.lax.rsqrt(s.fs[stage][1] + 1e-5) if norm else 1.0
        P, E, V = list(s.P), list(s.E), list(s.V)
        P[stage], E[stage], V[stage] = rms(s.P[stage], s.E[stage], s.V[stage], (w_l * f_scale) * T[stage][0], 1.0)

        # running statistics: inputs during stage 0, the learning stage's features
        beta = model.norm_rate
        in_mean, in_var = s.in_mean, s.in_var
        if stage == 0:
            in_mean = in_mean + beta * (x - in_mean)
            in_var = in_var + beta * ((x - in_mean) ** 2 - in_var)
        fs = list(s.fs)
        fm, fv, hl = s.fs[stage][0], s.fs[stage][1], hcs[stage][0]
        fm = fm + beta * (hl - fm)
        fs[stage] = jnp.stack([fm, fv + beta * ((hl - fm) ** 2 - fv)])
        new = CCNTDState(tuple(P), tuple(E), tuple(V), tuple(T), tuple(hcs), tuple(fs), r, Er, Vr,
                         s.steps + 1, count, in_mean, in_var, y)
        return new, y

    def step(self, model: Constructive, s: CCNTDState, x: Array, cumulant) -> tuple[CCNTDState, Array]:
        """Observe ``x_t`` and its cumulant; update; return ``ŷ_t`` (computed with θ_{t-1}).
        ``model`` supplies the static configuration only (its arrays are not read).  The
        learning stage is chosen per step (``lax.switch``); :meth:`run` is the fast path."""
        self._check(model, x)
        cumulant = jnp.asarray(cumulant, s.r.dtype)
        if model.n_stages == 1:
            return self.step_stage(model, s, x, cumulant, 0)
        stage = jnp.minimum(s.steps // model.steps_per_stage, model.n_stages - 1)
        branches = [lambda s, x, c, j=j: self.step_stage(model, s, x, c, j) for j in range(model.n_stages)]
        return jax.lax.switch(stage, branches, s, x, cumulant)

    def run(self, model: Constructive, s: CCNTDState, xs, cumulants):
        """``n`` steps (``xs`` ``[n, input]``, ``cumulants`` ``[n]``), split at the stage
        boundaries: the steps of each stage run in one loop of the step compiled for that
        stage.  Returns ``(state, ŷ)`` with ``ŷ`` ``[n]``.  Works under ``jit`` (the split
        points are computed from the step count inside the computation)."""
        _check_td_stream(xs, cumulants, (model.input_size,), ())
        n = xs.shape[0]
        dt = s.r.dtype
        cumulants = jnp.asarray(cumulants, dt)
        if model.n_stages == 1:
            return jax.lax.scan(lambda st, xc: self.step_stage(model, st, *xc, 0), s, (xs, cumulants))
        N, S, big = model.steps_per_stage, model.n_stages, 2**31 - 1
        ys = jnp.zeros((n,), dt)
        start = s.steps
        for j in range(S):
            lo = jnp.clip(min(j * N, big) - start, 0, n)
            hi = n if j == S - 1 else jnp.clip(min((j + 1) * N, big) - start, 0, n)

            def body(i, carry, j=j):
                st, ys = carry
                st, y = self.step_stage(model, st, xs[i], cumulants[i], j)
                return st, ys.at[i].set(y)

            s, ys = jax.lax.fori_loop(lo, hi, body, (s, ys))
        return s, ys
