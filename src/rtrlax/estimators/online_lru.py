"""The online LRU (Zucchet, Meier, Schug, Mujika, Sacramento; NeurIPS 2023), streaming.

Each LRU layer keeps exact diagonal eligibility traces of its recurrent parameters
(complex notation; the code stores real and imaginary parts):

.. math::

    e^{\\lambda}_t &= \\lambda \\odot e^{\\lambda}_{t-1} + h_{t-1}
        && \\to \\nu_{\\log},\\ \\theta_{\\log} \\text{ by the chain rule}\\\\
    e^{\\gamma}_t  &= \\lambda \\odot e^{\\gamma}_{t-1} + B u_t\\\\
    e^{B}_t        &= \\lambda \\odot e^{B}_{t-1} + \\gamma\\, u_t^\\top  && [N, H]

and every layer's error ``δ_t = ∂ℓ_t/∂h_t`` comes from backprop through the stack at
time t only (no backprop through time between layers).  The gradient is
``δ_t · e_t`` per parameter (for B: ``grad B_re = Re(δ̄ e^B)``, ``grad B_im = −Im(δ̄ e^B)``
with JAX's conjugate cotangent ``δ̄``); every other parameter (C, D, norms, GLU,
encoder, decoder) gets its instantaneous gradient.

**This is SnAp-1 on each LRU core.**  :class:`~rtrlax.cells.lru.LRUCore` is a gated
cell with a diagonal recurrence, so SnAp-1's per-unit traces (estimators/snap.py) are
exactly the traces above, ``rx.SnAp(1)`` on an LRU network computes the same gradients
(tested to round-off), and the shared driver (estimators/_traces.py) does the spatial
backprop for both.  :class:`OnlineLRU` keeps the driver and replaces only the generic
SnAp-1 trace step by the LRU's closed form, because the generic form costs 2–36× more
per step (docs/results/online_lru.md; noisy): SnAp-1 stores ``∂(h_re, h_im)/∂B_re``
and ``∂(h_re, h_im)/∂B_im`` separately (``4·N·H`` numbers) and forms per-unit
Jacobians with ``jacfwd``; here ``h`` is holomorphic in ``B``
(``∂h/∂B_im = i·∂h/∂B_re``), so one complex trace ``e^B`` (``2·N·H`` numbers) suffices,
and ``λ ⊙ e`` is written out.  Ablations (the paper's):

* ``horizon=None`` (default): full traces — exact RTRL for a single layer and for the
  last layer of a stack; approximate below it (the layers above are differentiated
  spatially).
* ``horizon=1`` ("1-truncated"): traces restart every step, ``e^λ_t = h_{t-1}``,
  ``e^γ_t = B u_t``, ``e^B_t = γ u_t^⊤`` (as ``snap1_step(carry_over=False)``).
* ``horizon=0`` ("spatial"): the recurrent term ``λ ⊙ h_{t-1}`` is treated as a
  constant input (the paper's code stops its gradient): ν and θ get zero gradient,
  B and γ their immediate term.

Memory per layer: ``2·N·H + 4·N`` trace numbers (half of generic SnAp-1's), plus the
state; independent of the stream length.  Time per step: ``O(N·H)`` per layer for the
traces (one complex multiply-add per entry of ``e^B``; the gradient ``Re/Im(δ̄ e^B)``
is one more), plus one forward and one backward pass through the network at time t.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..cells.lru import LRUCore, lambda_parts
from ._traces import AbstractTraceEstimator, outer_per_stream, outer_sum, sum_streams

Complex = tuple  #: (real part, imaginary part) of a complex array


class LRUTraces(NamedTuple):
    """The exact traces of one LRU core, each a complex array stored as (re, im)."""

    lam: Complex  #: e^λ = ∂h/∂λ, each [N]
    gamma: Complex  #: e^γ = ∂h/∂γ, each [N]
    B: Complex  #: e^B = ∂h/∂B (row n of B moves h_n only), each [N, H]


def _cmul(ar, ai, br, bi):
    return ar * br - ai * bi, ar * bi + ai * br


class OnlineLRU(AbstractTraceEstimator):
    """Online learning of deep LRU networks with per-layer exact traces.

    Args:
        horizon: ``None`` for full traces (the online LRU), ``1`` for the 1-truncated
            ablation, ``0`` for the spatial ablation (see the module docstring).
    """

    horizon: int | None = eqx.field(static=True)

    def __init__(self, horizon: int | None = None):
        if horizon not in (None, 0, 1) or isinstance(horizon, bool):
            raise ValueError(
                f"OnlineLRU(horizon=...) takes None (full traces), 1 (1-truncated) or 0 "
                f"(spatial), got {horizon!r}."
            )
        self.horizon = horizon

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, LRUCore):
                raise ValueError(
                    "OnlineLRU works on models whose recurrent cores are LRU cores "
                    f"(rx.LRU, rx.LRUNet); got a core of type {type(core).__name__}. "
                    "For other gated cells use rx.SnAp(1)."
                )

    def init_traces(self, core: LRUCore) -> LRUTraces:
        z = jnp.zeros(core.hidden_size, core.weight_ih.dtype)
        zb = jnp.zeros(core.weight_ih.shape[1:], core.weight_ih.dtype)
        return LRUTraces((z, z), (z, z), (zb, zb))

    def core_step(self, core: LRUCore, traces: LRUTraces, state, u: Float[Array, " input"]):
        lam_re, lam_im = lambda_parts(core.nu_log, core.theta_log)
        gamma = jnp.exp(core.gamma_log)
        bu = core.weight_ih @ u  # [2, N]: (Re, Im) of B u, differentiable in u
        h_re, h_im = state
        rec_re, rec_im = _cmul(lam_re, lam_im, h_re, h_im)
        s_t = (rec_re + gamma * bu[0], rec_im + gamma * bu[1])

        bu, u = jax.lax.stop_gradient((bu, u))
        if self.horizon is None:  # e_t = λ ⊙ e_{t-1} + immediate
            decay = lambda e: _cmul(lam_re, lam_im, *e)  # noqa: E731
            decay_b = lambda e: _cmul(lam_re[:, None], lam_im[:, None], *e)  # noqa: E731
        else:  # e_t = immediate
            decay = decay_b = lambda e: (jnp.zeros_like(e[0]), jnp.zeros_like(e[1]))  # noqa: E731
        e_lam = decay(traces.lam)
        if self.horizon != 0:  # spatial (0): λ ⊙ h_{t-1} is a constant input, e^λ = 0
            e_lam = (e_lam[0] + h_re, e_lam[1] + h_im)
        e_gamma = decay(traces.gamma)
        e_gamma = (e_gamma[0] + bu[0], e_gamma[1] + bu[1])
        e_b = decay_b(traces.B)
        e_b = (e_b[0] + gamma[:, None] * u, e_b[1])
        return s_t, LRUTraces(e_lam, e_gamma, e_b)

    def influence(self, core: LRUCore, traces: LRUTraces, tangent) -> Complex:
        """``dh = e^λ dλ + e^γ dγ + Σ_j e^B[:, j] dB[:, j]`` with
        ``dλ = λ (−e^{ν_log} dν_log + i e^{θ_log} dθ_log)``, ``dγ = γ dγ_log``,
        ``dB = dB_re + i dB_im``."""
        lam_re, lam_im = lambda_parts(core.nu_log, core.theta_log)
        d_lam = _cmul(
            lam_re,
            lam_im,
            -jnp.exp(core.nu_log) * tangent.nu_log,
            jnp.exp(core.theta_log) * tangent.theta_log,
        )
        by_lam = _cmul(*traces.lam, *d_lam)
        d_gamma = jnp.exp(core.gamma_log) * tangent.gamma_log
        db_re, db_im = tangent.weight_ih[0], tangent.weight_ih[1]
        eb_re, eb_im = traces.B
        by_b_re = jnp.sum(eb_re * db_re - eb_im * db_im, axis=-1)
        by_b_im = jnp.sum(eb_re * db_im + eb_im * db_re, axis=-1)
        return (
            by_lam[0] + traces.gamma[0] * d_gamma + by_b_re,
            by_lam[1] + traces.gamma[1] * d_gamma + by_b_im,
        )

    # --- K steps at once ----------------------------------------------------------------

    @property
    def chunked(self) -> bool:
        return True

    def chunk_cores(self, cores, traces, seen, deltas, keep):
        """The chunk sums of all LRU cores (see ``AbstractTraceEstimator.chunk_step``):
        ``Σ_t δ̄_t e_t = Σ_s a_s imm_s + λ a_1 e_0`` with ``a_s = δ̄_s + λ a_{s+1}`` — one
        backward sweep over K vectors of size N, for all cores in one scan — where
        ``imm_s`` is a trace's input at step s (``h_{s-1}``, ``B u_s``, ``γ u_sᵀ``); for
        ``e^B`` that sum is a ``[N, K] × [K, H]`` matrix product.  The trace at the
        chunk's end is ``e_K = λ^K e_0 + Σ_s λ^{K-s} imm_s``, another matrix product.  A
        stream that restarts at step s has its decay set to 0 there (``keep``)."""
        swept = self._sweep(cores, deltas, keep)
        return [self._chunk_core(core, tr, s_prev, u, a, p, keep[:, 0])
                for core, tr, (s_prev, u), (a, p) in zip(cores, traces, seen, swept)]  # fmt: skip

    def _sweep(self, cores, deltas, keep) -> list[tuple[Complex, Complex | None]]:
        """Per core ``(a, p)``: ``a_s = δ̄_s + λ κ_{s+1} a_{s+1}`` (``a_K = δ̄_K``)
        and ``p_s = λ^{K-s}`` with the same restarts (``p_s = λ κ_{s+1} p_{s+1}``,
        ``p_K = 1``), each ``[B, K, N]``, where ``κ = keep`` is 0 at a stream's restarts;
        one backward scan over the chunk for all cores and streams together (the scan's
        per-iteration overhead, not its arithmetic, is what costs here; the powers by
        recursion, as the per-step traces multiply, not by cos/sin, which XLA would
        recompute in every consumer).  When the traces restart every step:
        ``a_s = δ̄_s`` and no powers."""
        conj = [(d[0], -d[1]) for d in deltas]
        if self.horizon is not None:
            return [(c, None) for c in conj]
        lam = [lambda_parts(c.nu_log, c.theta_log) for c in cores]
        lam_re = jnp.concatenate([lr for lr, _ in lam])
        lam_im = jnp.concatenate([li for _, li in lam])
        k = conj[0][0].shape[1]
        time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        d = jnp.stack([jnp.concatenate([c[0] for c in conj], axis=-1),
                       jnp.concatenate([c[1] for c in conj], axis=-1)], axis=2)  # fmt: skip
        keep_next = jnp.concatenate([keep[:, 1:], jnp.ones_like(keep[:, :1])], axis=1)
        last = jnp.zeros(k, lam_re.dtype).at[-1].set(1)
        one = jnp.stack([jnp.ones_like(lam_re), jnp.zeros_like(lam_re)])  # 1 + 0i

        def times_lam(x, kappa):  # (x[:, 0] + i x[:, 1]) λ κ, per stream
            re, im = _cmul(lam_re, lam_im, x[:, 0, :], x[:, 1, :])
            return jnp.stack([re, im], axis=1) * kappa[:, None, None]

        def step(carry, inp):
            a, p = carry  # each [B, 2 (re, im), ΣN]
            d_s, last_s, kappa = inp
            new = (times_lam(a, kappa) + d_s, times_lam(p, kappa) + last_s * one)
            return new, new

        init = (jnp.zeros_like(d[:, 0]), jnp.zeros_like(d[:, 0]))
        _, (a, p) = jax.lax.scan(step, init, (time_major(d), last, time_major(keep_next)),
                                 reverse=True)  # fmt: skip
        a, p = time_major(a), time_major(p)  # [B, K, 2, ΣN]
        out, start = [], 0
        for c in cores:
            sl = slice(start, start + c.hidden_size)
            out.append(((a[..., 0, sl], a[..., 1, sl]), (p[..., 0, sl], p[..., 1, sl])))
            start += c.hidden_size
        return out

    def _chunk_core(self, core: LRUCore, traces: LRUTraces, s_prev, u, a, p, keep_1):
        """One core's chunk, for B streams: the gradient summed over streams and steps and
        each stream's traces at the chunk's end, from its states before each step
        ``s_prev`` ``([B, K, N], [B, K, N])``, its inputs ``u`` ``[B, K, H]``, its swept
        errors ``a``, the powers ``p`` and ``keep_1`` = 0 for streams that restart at the
        chunk's first step (:meth:`_sweep`)."""
        lam = lambda_parts(core.nu_log, core.theta_log)
        gamma = jnp.exp(core.gamma_log)
        bu = (u @ core.weight_ih[0].T, u @ core.weight_ih[1].T)  # B u_s, [B, K, N]

        def pair(x, y, axes):  # Σ x y over ``axes`` (complex, element-wise over N)
            re, im = _cmul(*x, *y)
            return re.sum(axes), im.sum(axes)

        q_lam = pair(a, s_prev, (0, 1))
        q_gamma = pair(a, bu, (0, 1))
        q_b = (outer_sum(a[0] * gamma, u), outer_sum(a[1] * gamma, u))  # Σ a γ uᵀ, [N, H]
        if self.horizon is None:  # + Σ_b λ a_1 e_0
            la = _cmul(*lam, a[0][:, 0] * keep_1[:, None], a[1][:, 0] * keep_1[:, None])
            q_lam = tuple(q + c.sum(0) for q, c in zip(q_lam, _cmul(*la, *traces.lam)))
            q_gamma = tuple(q + c.sum(0) for q, c in zip(q_gamma, _cmul(*la, *traces.gamma)))
            e0_b = sum_streams(
                lambda lr, li, er, ei: _cmul(lr[:, None], li[:, None], er, ei), *la, *traces.B
            )
            q_b = (q_b[0] + e0_b[0], q_b[1] + e0_b[1])
        lq = _cmul(*lam, *q_lam)
        if self.horizon == 0:  # spatial: no gradient reaches λ
            g_nu = g_theta = jnp.zeros_like(gamma)
        else:
            g_nu = -jnp.exp(core.nu_log) * lq[0]
            g_theta = -jnp.exp(core.theta_log) * lq[1]
        grads = eqx.tree_at(
            lambda c: (c.nu_log, c.theta_log, c.gamma_log, c.weight_ih),
            jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(core, eqx.is_inexact_array)),
            (g_nu, g_theta, gamma * q_gamma[0], jnp.stack([q_b[0], -q_b[1]])),
        )

        if self.horizon is None:  # e_K = λ^K e_0 + Σ_s λ^{K-s} imm_s, per stream
            lam_k = _cmul(*lam, p[0][:, 0] * keep_1[:, None], p[1][:, 0] * keep_1[:, None])
            decayed = lambda e: _cmul(*lam_k, *e)  # noqa: E731
            e_lam = tuple(x + y for x, y in zip(decayed(traces.lam), pair(p, s_prev, 1)))
            e_gamma = tuple(x + y for x, y in zip(decayed(traces.gamma), pair(p, bu, 1)))
            e_b0 = _cmul(lam_k[0][..., None], lam_k[1][..., None], *traces.B)
            e_b = (e_b0[0] + outer_per_stream(p[0] * gamma, u),
                   e_b0[1] + outer_per_stream(p[1] * gamma, u))  # fmt: skip
        else:  # the last step's immediate terms
            last = lambda x: (x[0][:, -1], x[1][:, -1])  # noqa: E731
            e_lam = last(s_prev) if self.horizon == 1 else tuple(map(jnp.zeros_like, traces.lam))
            e_gamma = last(bu)
            e_b = (gamma[:, None] * u[:, -1, None, :], jnp.zeros_like(traces.B[1]))
        return LRUTraces(e_lam, e_gamma, e_b), grads
