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
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ..cells.base import AbstractGatedCell
from ._gated import local_derivatives, mix_components, recurrent_diagonal, unit_params
from ._traces import AbstractTraceEstimator


class GatedTraces(NamedTuple):
    """SnAp-1 traces of a gated cell: each the parameter's shape with a leading m axis."""

    weight_ih: Array
    weight_hh: Array | None
    bias_ih: Array | None
    bias_hh: Array | None
    unit: PyTree


def _zeros_like_with_m(m, a):
    return None if a is None else jnp.zeros((m,) + a.shape, a.dtype)


def snap1_init(core: AbstractGatedCell) -> GatedTraces:
    m = len(core.initial_state())
    z = lambda a: _zeros_like_with_m(m, a)  # noqa: E731
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
    a_x, a_h = local.a_x, local.a_h

    if carry_over:
        d = recurrent_diagonal(core, local)
        mix = lambda t, axis: mix_components(d, t, axis)  # noqa: E731
    else:
        mix = lambda t, axis: jnp.zeros_like(t)  # noqa: E731

    new = GatedTraces(
        weight_ih=mix(traces.weight_ih, 1) + a_x[..., None] * local.u,
        weight_hh=None
        if traces.weight_hh is None
        else mix(traces.weight_hh, 1) + a_h[..., None] * local.h,
        bias_ih=None if traces.bias_ih is None else mix(traces.bias_ih, 1) + a_x,
        bias_hh=None if traces.bias_hh is None else mix(traces.bias_hh, 1) + a_h,
        unit=jax.tree_util.tree_map(
            lambda t, j: mix(t, t.ndim - 2) + j, traces.unit, local.j_unit
        ),
    )
    return local.state, new


def snap1_influence(core: AbstractGatedCell, traces: GatedTraces, tangent):
    """``M · θ̇`` for SnAp-1 traces: each parameter moves only its own unit."""

    def masked(name, mask):
        t = getattr(tangent, name)
        return t if mask is None else jnp.where(mask, t, 0)

    terms = [jnp.einsum("cgkj,gkj->ck", traces.weight_ih, masked("weight_ih", core.mask_ih))]
    if traces.weight_hh is not None:
        terms.append(
            jnp.einsum("cgkj,gkj->ck", traces.weight_hh, masked("weight_hh", core.mask_hh))
        )
    if traces.bias_ih is not None:
        terms.append(jnp.einsum("cgk,gk->ck", traces.bias_ih, tangent.bias_ih))
    if traces.bias_hh is not None:
        terms.append(jnp.einsum("cgk,gk->ck", traces.bias_hh, tangent.bias_hh))
    m = traces.weight_ih.shape[0]
    for t, dt in zip(
        jax.tree_util.tree_leaves(traces.unit), jax.tree_util.tree_leaves(unit_params(tangent))
    ):
        k = t.shape[-1]
        terms.append((t * dt).reshape(m, -1, k).sum(1))
    total = sum(terms)
    return tuple(total[c] for c in range(m))


class SnAp(AbstractTraceEstimator):
    """SnAp-n on the gated cells (vanilla RNN, GRU, LSTM, EGRU, columnar, LRU cores).

    ``SnAp(1)`` stores one trace per parameter and state component (never a ``k×p``
    array).  The pattern is derived from the cell's structure and masks.
    """

    n: int = eqx.field(static=True)

    def __init__(self, n: int = 1):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"SnAp needs n >= 1 (an integer number of steps), got {n!r}.")
        if n > 1:
            raise NotImplementedError("SnAp-n for n > 1 is not implemented yet.")
        self.n = n

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, AbstractGatedCell):
                raise ValueError(
                    f"SnAp works on gated cells (VanillaRNN, GRU, LSTM, EGRU, Columnar, LRU); "
                    f"got a core of type {type(core).__name__}."
                )

    def init_traces(self, core):
        return snap1_init(core)

    def core_step(self, core, traces, state, u):
        return snap1_step(core, traces, state, u)

    def influence(self, core, traces, tangent):
        return snap1_influence(core, traces, tangent)
