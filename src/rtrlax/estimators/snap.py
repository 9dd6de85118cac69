"""SnAp-n: the sparse n-step approximation of RTRL (Menick et al., 2021).

Keeps only the entries of the influence matrix that the core can make non-zero within
``n`` steps:

.. math::  M_t \\approx (D_t M_{t-1} + \\bar I_t) \\odot P_n, \\qquad
           P_n = \\text{pattern of } \\bar I + D\\bar I + \\dots + D^{n-1}\\bar I.

**SnAp-1** (``n = 1``) on a gated cell: each parameter of unit ``i`` touches only unit
``i`` in one step, so ``M`` keeps ``m`` numbers per parameter (``m`` = state
components per unit) and only the per-unit diagonal blocks of ``D_t`` matter:

.. math::  T^{W}_t[c, g, i, j] = \\textstyle\\sum_{c'} D_t[(c,i),(c',i)]\\, T^{W}_{t-1}[c', g, i, j]
           + \\frac{\\partial s_t[c,i]}{\\partial a[g,i]}\\, u_j .

Memory ``m·p``; time ``O(m²·p)`` — the order of one BPTT step.  Exact when the
recurrent weights are diagonal (columnar networks with ρ = 0, the LRU), which is why
ColoR and the online LRU are SnAp-1 under other names.

**SnAp-n** (``n >= 2``): unit ``i``'s parameters reach the units ``P_n(i)`` within
``n - 1`` hops of the recurrent graph (``_pattern.py``; ``width = max_i |P_n(i)|``).
The traces are one array ``T[i, c, r, e]`` = ∂s_t[c, reach[i, r]] / ∂θ_{i,e}, where
``e`` runs over the ``E`` unmasked parameters of unit ``i`` (W_ih row, W_hh row,
biases, unit parameters).  Because ``M_{t-1}`` is zero outside the pattern, the
update only needs ``D_t``'s sub-block on ``P_n(i)``:

.. math::  T_t[i] = \\big(D_t\\big)_{P_n(i), P_n(i)}\\, T_{t-1}[i] + e_{r=0} \\otimes \\bar I_t[i],
           \\quad (D_t)_{(c,l),(c',j)} = δ_{lj}\\, j_s[c,c',l] + \\textstyle\\sum_g a_h[c,g,l]\\, W_{hh}[g,l,j]\\, ρ[c',j].

Memory ``k·m·width·E`` (≈ ``m·|P_n|·p_unmasked``; SnAp-2 on a density-``d`` net ≈
``d·k`` entries per parameter).  Time per step ``O(k·m·width²·E)`` for the recurrent
product plus ``O(k·m·G·width²)`` to form the sub-blocks.  ``n >= k`` (any connected
net) keeps every structurally non-zero entry: exact RTRL.

On a *masked* cell the pattern's sizes are read from the masks, which must be
concrete: inside ``jit`` (e.g. under ``accumulate_grads``) use
``rx.SnAp(n).bind(model)``, which records the sizes on the host first.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ..cells.base import AbstractGatedCell
from ._gated import (
    local_derivatives,
    mix_components,
    recurrent_diagonal,
    split_unit_params,
    unit_params,
)
from ._pattern import GatedPattern, PatternSizes, gated_pattern, is_concrete, pattern_sizes
from ._traces import AbstractTraceEstimator, outer_per_stream, outer_sum, sum_streams


class GatedTraces(NamedTuple):
    """SnAp-1 traces of a gated cell, per state component ``c``: each field a tuple of
    ``m`` arrays of the parameter's shape (``unit``: the unit parameters' pytree with a
    tuple of ``m`` arrays per leaf).  Separate arrays rather than one stacked
    ``[m, …]`` array, so that the update ``T_c ← Σ_c' D[c, c'] T_c' + I_c`` is one
    fused loop that writes every component in place: for m = 2 (LSTM, columnar) a
    stacked array is copied every step, as each component's update reads the other's
    old values."""

    weight_ih: tuple
    weight_hh: tuple | None
    bias_ih: tuple | None
    bias_hh: tuple | None
    unit: PyTree


def _is_components(x) -> bool:
    return isinstance(x, tuple)


def snap1_init(core: AbstractGatedCell) -> GatedTraces:
    m = len(core.initial_state())
    z = lambda a: None if a is None else tuple(jnp.zeros(a.shape, a.dtype) for _ in range(m))  # noqa: E731
    return GatedTraces(
        z(core.weight_ih),
        z(core.weight_hh),
        z(core.bias_ih),
        z(core.bias_hh),
        jax.tree_util.tree_map(z, unit_params(core)),
    )


def snap1_step(core: AbstractGatedCell, traces: GatedTraces, state, u, *, carry_over: bool = True):
    """One SnAp-1 step.  ``carry_over=False`` drops ``D_t M_{t-1}`` (1-step truncation)."""
    local = local_derivatives(core, state, u)
    d = recurrent_diagonal(core, local) if carry_over else None
    a_x, a_h, j_unit, u, h = local.a_x, local.a_h, local.j_unit, local.u, local.h

    def update(t, imm, unit_axis):  # T_c <- Σ_c' D[c, c'] T_c' + imm[c], per component
        if t is None:
            return None
        mixed = mix_components(d, t, unit_axis) if carry_over else (0,) * len(t)
        return tuple(mc + imm[c] for c, mc in enumerate(mixed))

    new = GatedTraces(
        weight_ih=update(traces.weight_ih, a_x[..., None] * u, 1),
        weight_hh=update(traces.weight_hh, a_h[..., None] * h, 1),
        bias_ih=update(traces.bias_ih, a_x, 1),
        bias_hh=update(traces.bias_hh, a_h, 1),
        unit=jax.tree_util.tree_map(
            lambda t, j: update(t, j, t[0].ndim - 1), traces.unit, j_unit, is_leaf=_is_components
        ),
    )
    return local.state, new


def snap1_influence(core: AbstractGatedCell, traces: GatedTraces, tangent):
    """``M · θ̇`` for SnAp-1 traces: each parameter moves only its own unit.

    Written as element-wise products and sums (not ``einsum``): their transpose — the
    per-stream gradient ``δ ⊙ T`` — then stays element-wise, which XLA fuses on CPU
    (a batched outer-product ``dot_general`` is an order of magnitude slower there).
    """

    def masked(name, mask):
        t = getattr(tangent, name)
        return t if mask is None else jnp.where(mask, t, 0)

    w_ih = masked("weight_ih", core.mask_ih)
    w_hh = None if traces.weight_hh is None else masked("weight_hh", core.mask_hh)
    unit_pairs = list(
        zip(
            jax.tree_util.tree_leaves(traces.unit, is_leaf=_is_components),
            jax.tree_util.tree_leaves(unit_params(tangent)),
        )
    )

    def component(c):
        # weights [G, k, j] · [G, k, j] -> [k]; biases [G, k] · [G, k] -> [k].  One
        # expression per state component (not a sum over a stacked m axis), so the
        # transpose is element-wise too: XLA on CPU reduces over such a small axis slowly.
        out = (traces.weight_ih[c] * w_ih).sum(axis=(0, 2))
        if w_hh is not None:
            out = out + (traces.weight_hh[c] * w_hh).sum(axis=(0, 2))
        if traces.bias_ih is not None:
            out = out + (traces.bias_ih[c] * tangent.bias_ih).sum(axis=0)
        if traces.bias_hh is not None:
            out = out + (traces.bias_hh[c] * tangent.bias_hh).sum(axis=0)
        for t, dt in unit_pairs:
            k = t[c].shape[-1]
            out = out + (t[c] * dt).reshape(-1, k).sum(0)
        return out

    return tuple(component(c) for c in range(len(traces.weight_ih)))


def snap1_chunk_cores(cores, traces, seen, deltas, keep):
    """``chunk_cores`` of SnAp-1 and ColoR: :func:`snap1_chunk` per core."""
    return [snap1_chunk(c, tr, s, u, d, keep) for c, tr, (s, u), d in zip(cores, traces, seen, deltas)]


def snap1_chunk(core: AbstractGatedCell, traces: GatedTraces, s_prev, u, delta, keep=None):
    """SnAp-1 over a chunk of K steps with fixed parameters (``chunk_step``), for B
    streams at once (every argument but ``core`` has a leading stream axis; ``s_prev``,
    ``u`` and ``delta`` then a step axis).  Returns the traces at the chunk's end and
    the gradient summed over streams and steps.  ``keep`` ``[B, K]`` is 0 at the steps
    where a stream restarts (its traces start again from zero: ``D_s = 0`` there).

    With ``D_s`` the per-unit diagonal blocks of the recurrent Jacobian and ``I_s`` the
    immediate influence, the traces obey ``T_s = D_s T_{s-1} + I_s``.  So, with the
    backward sweep ``A_s = δ_s + D_{s+1}ᵀ A_{s+1}`` (``A_K = δ_K``) and the products
    ``P_s = D_K ⋯ D_{s+1}`` (``P_K = 1``), both ``[m, m, k]``-sized per step,

    * the chunk's gradient is ``Σ_s A_s · I_s + (D_1ᵀ A_1) · T_0``;
    * the traces at its end are ``P_0 T_0 + Σ_s P_s I_s``.

    ``I_s`` of a weight is rank one per gate (``∂s_i/∂a_{g,i} · u_j``), so the gradient's
    sum is one ``[G·k, B·K] × [B·K, in]`` matrix product over all streams and steps and
    the trace update one ``[G·k, K] × [K, in]`` product per stream; ``T_0`` is read twice
    and written once per chunk instead of read twice and written once per step.
    """
    local = jax.vmap(jax.vmap(lambda s, x: local_derivatives(core, s, x)))(s_prev, u)
    d = jax.vmap(jax.vmap(lambda loc: recurrent_diagonal(core, loc)))(local)  # [B, K, m, m, k]
    if keep is not None:
        d = d * keep[:, :, None, None, None]
    delta = jnp.stack(delta, axis=2)  # [B, K, m, k]
    m, k = d.shape[2], d.shape[-1]
    eye = jnp.broadcast_to(jnp.eye(m, dtype=d.dtype)[:, :, None], (d.shape[0], m, m, k))
    # per stream: Dᵀ a (vectors [m, k]) and P D (per-unit [m, m] products), by mix_components
    dt_vec = jax.vmap(lambda dd, aa: mix_components(jnp.swapaxes(dd, 0, 1), aa, 0))
    mat_mat = jax.vmap(lambda pp, dd: mix_components(pp, dd, 1))

    def back(carry, inp):
        a_next, d_next, p = carry  # A_{s+1}, D_{s+1}, P_s (each with the stream axis)
        delta_s, d_s = inp
        a = delta_s + dt_vec(d_next, a_next)
        return (a, d_s, mat_mat(p, d_s)), (a, p)

    time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    init = (jnp.zeros_like(delta[:, 0]), jnp.zeros_like(d[:, 0]), eye)
    (a1, d1, p0), (a, p) = jax.lax.scan(back, init, (time_major(delta), time_major(d)), reverse=True)
    a, p = time_major(a), time_major(p)  # [B, K, m, k], [B, K, m, m, k]
    b0 = dt_vec(d1, a1)  # D_1ᵀ A_1 per stream: how T_0 reaches the losses

    def coeff(j):  # j [B, K, m(c'), G, k] -> (Σ_c A[c] j[c], Σ_c' P[c, c'] j[c'])
        q = sum(a[:, :, c, None, :] * j[:, :, c] for c in range(m))
        r = jnp.stack(
            [sum(p[:, :, c, cp, None, :] * j[:, :, cp] for cp in range(m)) for c in range(m)], 2
        )
        return q, r

    def along(v, t, unit_axis):  # a [k] vector broadcast along the unit axis of t
        shape = [1] * t.ndim
        shape[unit_axis] = k
        return v.reshape(shape)

    def with_t0(t0, unit_axis):  # (Σ_b Σ_c b0[b, c] T_0[b, c], P_0 T_0 per stream)
        # t0: the m components, each [B, …]; unit_axis: in one stream's component
        g = sum_streams(lambda bb, t: sum(along(bb[c], t[c], unit_axis) * t[c] for c in range(m)),
                        b0, t0)  # fmt: skip
        return g, jax.vmap(lambda pp, t: mix_components(pp, t, unit_axis))(p0, t0)

    def plus(t, new):  # add new(c) to each component
        return tuple(tc + new(c) for c, tc in enumerate(t))

    q_x, r_x = coeff(local.a_x)
    q_h, r_h = coeff(local.a_h)
    g_ih, t_ih = with_t0(traces.weight_ih, 1)
    lin = {"weight_ih": (g_ih + outer_sum(q_x, local.u),
                         plus(t_ih, lambda c: outer_per_stream(r_x[:, :, c], local.u)),
                         core.mask_ih)}  # fmt: skip
    if traces.weight_hh is not None:
        g_hh, t_hh = with_t0(traces.weight_hh, 1)
        lin["weight_hh"] = (g_hh + outer_sum(q_h, local.h),
                            plus(t_hh, lambda c: outer_per_stream(r_h[:, :, c], local.h)),
                            core.mask_hh)  # fmt: skip
    for name, q, r in (("bias_ih", q_x, r_x), ("bias_hh", q_h, r_h)):
        t0 = getattr(traces, name)
        if t0 is not None:
            g, t = with_t0(t0, 1)
            lin[name] = (g + q.sum((0, 1)), plus(t, lambda c, r=r: r[:, :, c].sum(1)), None)

    class Part(NamedTuple):  # one unit leaf's (gradient, end traces)
        g: Array
        t: tuple

    def unit_leaf(t0, j):  # t0: m components [B, ..., k]; j [B, K, m, ..., k]
        g, t = with_t0(t0, t0[0].ndim - 2)
        bcast = lambda v: v.reshape(*v.shape[:2], *([1] * (j.ndim - 4)), k)  # noqa: E731
        g = g + sum(bcast(a[:, :, c]) * j[:, :, c] for c in range(m)).sum((0, 1))
        t = plus(t, lambda c: sum(bcast(p[:, :, c, cp]) * j[:, :, cp] for cp in range(m)).sum(1))
        return Part(g, t)

    unit_parts = jax.tree_util.tree_map(unit_leaf, traces.unit, local.j_unit, is_leaf=_is_components)
    is_part = lambda x: isinstance(x, Part)  # noqa: E731
    unit_g = jax.tree_util.tree_map(lambda part: part.g, unit_parts, is_leaf=is_part)
    unit_t = jax.tree_util.tree_map(lambda part: part.t, unit_parts, is_leaf=is_part)

    masked = lambda g, mask: g if mask is None else jnp.where(mask, g, 0)  # noqa: E731
    names = list(lin)
    _, rest = split_unit_params(core)
    rest_g = eqx.tree_at(
        lambda c: [getattr(c, n) for n in names],
        eqx.filter(rest, eqx.is_inexact_array),
        [masked(lin[n][0], lin[n][2]) for n in names],
    )
    grads = eqx.combine(unit_g, rest_g)  # unit leaves and linear leaves are disjoint
    new = GatedTraces(
        weight_ih=lin["weight_ih"][1],
        weight_hh=lin["weight_hh"][1] if "weight_hh" in lin else None,
        bias_ih=lin["bias_ih"][1] if "bias_ih" in lin else None,
        bias_hh=lin["bias_hh"][1] if "bias_hh" in lin else None,
        unit=unit_t,
    )
    return new, grads


class PatternTraces(NamedTuple):
    """SnAp-n traces of a gated cell (n >= 2): the pattern and ``T[i, c, r, e]``."""

    pattern: GatedPattern
    trace: Array  #: [hidden, m, width, E]


def _unit_leaves(tree) -> list:
    return jax.tree_util.tree_leaves(unit_params(tree))


def _entry_count(core: AbstractGatedCell, sizes: PatternSizes) -> int:
    g, k = core.weight_ih.shape[:2]
    e = sizes.q_ih + sizes.q_hh
    e += g * (core.bias_ih is not None) + g * (core.bias_hh is not None)
    return e + sum(leaf.size // k for leaf in _unit_leaves(core))


def snapn_init(core: AbstractGatedCell, n: int, sizes: PatternSizes) -> PatternTraces:
    m, k = len(core.initial_state()), core.hidden_size
    pattern = gated_pattern(core, n, sizes)
    trace = jnp.zeros((k, m, sizes.width, _entry_count(core, sizes)), core.weight_ih.dtype)
    return PatternTraces(pattern, trace)


def _per_unit(core, p: GatedPattern, w_ih, w_hh, b_ih, b_hh, unit_leaves) -> Array:
    """Gather, per unit i, the values of its E kept entries: ``[..., k, E]``.

    ``w_ih``/``w_hh`` are ``[..., G, k, src]`` arrays indexed per entry, biases
    ``[..., G, k]``, unit leaves ``[..., F..., k]`` (leading batch axes allowed).
    """
    k = core.hidden_size
    rows = jnp.arange(k)[:, None]
    parts = [jnp.where(p.ih_valid, w_ih[..., p.ih_gate, rows, p.ih_src], 0)]
    if p.hh_gate is not None:
        parts.append(jnp.where(p.hh_valid, w_hh[..., p.hh_gate, rows, p.hh_src], 0))
    for b in (b_ih, b_hh):
        if b is not None:
            parts.append(jnp.swapaxes(b, -1, -2))
    for leaf in unit_leaves:
        parts.append(jnp.swapaxes(leaf.reshape(leaf.shape[0], -1, k), -1, -2))
    return jnp.concatenate(parts, axis=-1)


def snapn_step(core: AbstractGatedCell, traces: PatternTraces, state, u):
    """One SnAp-n step (n >= 2) on the pattern's sub-blocks of D_t."""
    local = local_derivatives(core, state, u)
    p, t = traces.pattern, traces.trace  # t: [k, m, c, E]
    # Immediate influence on the own unit: [m, k, E] -> row r = 0 of each unit.
    imm_x = local.a_x[..., None] * local.u  # [m, G, k, d]: ∂s[c,i]/∂W_ih[g,i,j]
    imm_h = None if p.hh_gate is None else local.a_h[..., None] * local.h
    imm = _per_unit(
        core,
        p,
        imm_x,
        imm_h,
        None if core.bias_ih is None else local.a_x,
        None if core.bias_hh is None else local.a_h,
        jax.tree_util.tree_leaves(local.j_unit),
    )  # [m, k, E]
    reach = p.reach  # [k, c]
    # Contractions over the tiny m / G axes are written element-wise (XLA fuses them;
    # as dot_generals with many batch axes they are slow on CPU); the one real
    # product, [k, m·c, c] @ [k, c, E], stays a batched matmul.
    j_s = jnp.moveaxis(local.j_s[:, :, reach], 2, 0)  # [k, m, m, c]
    new = (j_s[..., None] * t[:, None]).sum(axis=2)  # Σ_c' j_s[c,c',l] T[c',l]
    w_hh = core.effective_weight_hh()
    if w_hh is not None:
        rho = jnp.moveaxis(local.rho[:, reach], 1, 0)  # [k, m, c]
        h_part = (rho[..., None] * t).sum(axis=1)  # [k, c, E]: influence on h at kept units
        w_sub = w_hh[:, reach[:, :, None], reach[:, None, :]]  # [G, k, c, c]
        a_h = jnp.moveaxis(local.a_h[:, :, reach], 2, 0)  # [k, m, G, c]
        w_sub = jnp.moveaxis(w_sub, 1, 0)  # [k, G, c, c]
        # Σ_g as explicit terms: XLA:CPU reduces over a small inner axis slowly
        w_eff = sum(
            a_h[:, :, g, :, None] * w_sub[:, None, g] for g in range(w_sub.shape[1])
        )  # [k, m, c, c]
        k, m, c = w_eff.shape[:3]
        rec = jnp.matmul(w_eff.reshape(k, m * c, c), h_part)  # [k, m·c, E]
        new = new + rec.reshape(k, m, c, -1)
    new = new.at[:, :, 0, :].add(jnp.swapaxes(imm, 0, 1))
    new = jnp.where(p.reach_valid[:, None, :, None], new, 0)
    return local.state, PatternTraces(p, new)


def snapn_influence(core: AbstractGatedCell, traces: PatternTraces, tangent):
    """``M · θ̇`` for SnAp-n traces: scatter each unit's kept rows back to the state."""
    p, t = traces.pattern, traces.trace
    k, m = t.shape[:2]
    none_if = lambda name, present: getattr(tangent, name)[None] if present else None  # noqa: E731
    theta = _per_unit(
        core,
        p,
        tangent.weight_ih[None],
        None if p.hh_gate is None else tangent.weight_hh[None],
        none_if("bias_ih", core.bias_ih is not None),
        none_if("bias_hh", core.bias_hh is not None),
        [leaf[None] for leaf in _unit_leaves(tangent)],
    )  # [1, k, E]
    # a batched matrix-vector product per unit (its transpose, the gradient, is a batched
    # product too; an element-wise product + reduction over the width axis is slow on CPU)
    v = jnp.swapaxes(jnp.einsum("kmce,ke->kmc", t, theta[0]), 0, 1)  # [m, k, c]
    v = jnp.where(p.reach_valid[None], v, 0).reshape(m, -1)
    total = jnp.zeros((m, k), t.dtype).at[:, p.reach.reshape(-1)].add(v)
    return tuple(total[c] for c in range(m))


def kept_support(core: AbstractGatedCell, traces: PatternTraces) -> Array:
    """Boolean ``[k, m, width, E]``: which trace slots are kept entries of P_n."""
    p, t = traces.pattern, traces.trace
    ones = lambda a: None if a is None else jnp.ones(a.shape, bool)  # noqa: E731
    e_valid = _per_unit(
        core,
        p,
        ones(core.weight_ih)[None],
        None if p.hh_gate is None else ones(core.weight_hh)[None],
        None if core.bias_ih is None else ones(core.bias_ih)[None],
        None if core.bias_hh is None else ones(core.bias_hh)[None],
        [ones(leaf)[None] for leaf in _unit_leaves(core)],
    )[0]
    return p.reach_valid[:, None, :, None] & e_valid[:, None, None, :] & jnp.ones(t.shape, bool)


class SnAp(AbstractTraceEstimator):
    """SnAp-n on the gated cells (vanilla RNN, GRU, LSTM, EGRU, columnar, LRU cores).

    ``SnAp(1)`` stores one trace per parameter and state component (never a ``k×p``
    array).  ``SnAp(n)``, ``n >= 2``, stores the entries of the pattern ``P_n`` derived
    from the cell's structure and masks (see the module docstring); on masked cells
    used inside ``jit`` call :meth:`bind` first.
    """

    n: int = eqx.field(static=True)
    sizes: PatternSizes | None = eqx.field(static=True)

    def __init__(self, n: int = 1, *, sizes: PatternSizes | None = None):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"SnAp needs n >= 1 (an integer number of steps), got {n!r}.")
        self.n = n
        self.sizes = None if sizes is None else PatternSizes(*sizes)

    def bind(self, model) -> "SnAp":
        """This estimator with the pattern sizes of ``model``'s cores recorded (host-side),
        so that it works inside ``jit`` on masked cells.  The bound estimator suits any
        model whose patterns fit those sizes (e.g. the same model after training)."""
        self.check_model(model)
        if self.n == 1:
            return self
        sizes = None
        for core in model.cores():
            own = pattern_sizes(core, self.n)
            sizes = own if sizes is None else sizes.max(own)
        return SnAp(self.n, sizes=sizes)

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, AbstractGatedCell):
                raise ValueError(
                    f"SnAp works on gated cells (VanillaRNN, GRU, LSTM, EGRU, Columnar, LRU); "
                    f"got a core of type {type(core).__name__}."
                )

    def core_sizes(self, core) -> PatternSizes:
        """The pattern sizes used for ``core`` (its own when its masks are concrete)."""
        if is_concrete(core) or self.sizes is None:
            return pattern_sizes(core, self.n)
        return self.sizes

    def init_traces(self, core):
        if self.n == 1:
            return snap1_init(core)
        return snapn_init(core, self.n, self.core_sizes(core))

    def core_step(self, core, traces, state, u):
        if self.n == 1:
            return snap1_step(core, traces, state, u)
        return snapn_step(core, traces, state, u)

    @property
    def chunked(self) -> bool:
        return self.n == 1

    def chunk_cores(self, cores, traces, seen, deltas, keep):
        """:func:`snap1_chunk` per core (``chunk_step``; ``chunked`` is false for n ≥ 2)."""
        return snap1_chunk_cores(cores, traces, seen, deltas, keep)

    def influence(self, core, traces, tangent):
        if self.n == 1:
            return snap1_influence(core, traces, tangent)
        return snapn_influence(core, traces, tangent)
