"""Exact RTRL that skips zeros: parameter sparsity and activity sparsity (Subramoney 2023).

Same recursion as dense RTRL, per core (k units, m state components per unit, G gates):

.. math::

    M_t = D_t M_{t-1} + \\bar I_t, \\qquad
    D_t[(c,i),(c',j)] = \\delta_{ij}\\, j_s[c,c',i]
        + \\underbrace{\\textstyle\\sum_g a_h[c,g,i]\\, W_{hh}[g,i,j]}_{V[c,i,j]}\\,\\rho[c',j]

(the local derivatives of :mod:`rtrlax.estimators._gated`), but nothing that is known
to be zero is stored or multiplied:

* **Parameter sparsity.** Masked parameters have no column in ``M``: it is stored as
  ``[m, k, n]`` with ``n`` = the number of *kept* parameters (unmasked weights, biases,
  unit parameters), so memory is ``m·k·n`` instead of ``m·k·p``.
* **Activity sparsity.** The dense part of ``D_t`` reaches ``M_{t-1}`` only through
  ``H_{t-1} = Σ_c' ρ[c',j] M_{t-1}[c',j]`` = ``dh_{t-1,j}/dθ``.  A unit whose
  recurrent-input row is zero (for the EGRU: ``y_{t-1,j} = 0`` and outside the
  pseudo-derivative window, so every local derivative of ``y`` vanishes) contributes
  nothing, and is skipped: ``V[:, :, j] H[j]`` runs over *active* units only.  Which
  rows are zero is known exactly and cheaply from the local derivatives: the row
  ``M_t[c,i]`` is zero whenever every local derivative of ``s_t[c,i]`` is zero (and its
  own previous rows were zero), tracked as a boolean ``[m, k]`` in the carry.
* Immediate terms of ``W_hh[g,i,j]`` are ``a_h[c,g,i]·h_{t-1,j}`` — zero for silent
  presynaptic units (they cost ``O(n)`` either way).

**Fixed capacity under jit.** The active units are gathered (``jnp.nonzero`` with a
static size) and processed in chunks of ``C`` units (``capacity``, default ``k/4``):
``dense += V[:, :, idx] @ H[idx]``, in a ``lax.fori_loop`` over
``ceil(#active / C)`` chunks.  When activity overflows ``C`` the loop simply runs more
chunks, so the result is exact for every activity level and the cost is
``ceil(a/C)·C`` units rather than ``k``.  A loop was chosen over ``lax.cond`` to a
dense product because under ``vmap`` (a batch of streams) a ``cond`` with a batched
predicate runs *both* branches, whereas the loop runs ``max`` over the batch of
the chunk counts.

Cost per step (multiply-adds): ``m·k·⌈a/C⌉C·n`` (dense part, ``a`` = active units)
``+ m²·k·n`` (diagonal part) ``+ m·G·k²`` (forming V) ``+ O(m·n)`` (immediate),
against ``(m·k)²·p`` for dense RTRL.  Memory ``m·k·n`` floats.

The number of kept entries of a masked weight must be static: the EGRU records it
(``kept_counts``); cells that do not (GRU, LSTM, VanillaRNN) keep a column for every
entry and zero the masked ones (exact, without the memory saving).  On cells without
activity sparsity (GRU, LSTM) every unit is active and this is dense RTRL on the core.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..cells.base import AbstractGatedCell
from ._gated import local_derivatives, unit_params
from ._traces import AbstractTraceEstimator


class SparseTraces(NamedTuple):
    """Sparse-RTRL traces of one gated core."""

    influence: Float[Array, "m hidden kept"]  #: M_t over the kept parameters' columns
    row_nonzero: Bool[Array, "m hidden"]  #: rows of M_t that may be non-zero
    active: Int[Array, ""]  #: units whose recurrent-input row of M_{t-1} entered D_t M_{t-1}
    chunks: Int[Array, ""]  #: capacity-sized chunks the dense part ran this step


class _Block(NamedTuple):
    name: str  #: "weight_ih", "weight_hh", "bias_ih", "bias_hh" or "unit"
    leaf: int  #: index among the unit-parameter leaves (for "unit")
    size: int  #: number of columns of this block (static)


def _blocks(core: AbstractGatedCell) -> list[_Block]:
    """The static column layout of one core's compressed influence matrix."""
    kept = getattr(core, "kept_counts", None)
    blocks = []
    for pos, name in enumerate(("weight_ih", "weight_hh")):
        w = getattr(core, name)
        if w is None:
            continue
        mask = getattr(core, "mask_ih" if pos == 0 else "mask_hh")
        n = w.size if (mask is None or kept is None) else int(kept[pos])
        blocks.append(_Block(name, -1, n))
    for name in ("bias_ih", "bias_hh"):
        b = getattr(core, name)
        if b is not None:
            blocks.append(_Block(name, -1, b.size))
    for i, leaf in enumerate(jax.tree_util.tree_leaves(unit_params(core))):
        blocks.append(_Block("unit", i, leaf.size))
    return blocks


def _mask_of(core, name):
    return {"weight_ih": core.mask_ih, "weight_hh": core.mask_hh}.get(name)


def _columns(core: AbstractGatedCell, block: _Block) -> Int[Array, " n"]:
    """Flat indices (into the parameter array) of the block's kept entries."""
    mask = _mask_of(core, block.name)
    if mask is None or block.size == mask.size:
        return jnp.arange(block.size)
    return jnp.nonzero(mask.ravel(), size=block.size, fill_value=0)[0]


def num_columns(core: AbstractGatedCell) -> int:
    """``n``: the number of columns of the compressed influence matrix of ``core``."""
    return sum(b.size for b in _blocks(core))


def _resolve_capacity(capacity, k: int) -> int:
    if isinstance(capacity, float):
        return max(1, min(k, math.ceil(capacity * k)))
    return max(1, min(k, capacity))


class SparseRTRL(AbstractTraceEstimator):
    """Exact RTRL on gated cores that skips masked parameters and inactive units.

    ``capacity``: units gathered per chunk of the activity-sparse product — an ``int``
    (units) or a ``float`` in (0, 1] (fraction of the core's units).  Any value is
    exact; it only trades loop iterations against wasted padding.
    """

    capacity: int | float = eqx.field(static=True)

    def __init__(self, capacity: int | float = 0.25):
        ok_float = isinstance(capacity, float) and 0.0 < capacity <= 1.0
        ok_int = isinstance(capacity, int) and not isinstance(capacity, bool) and capacity >= 1
        if not (ok_float or ok_int):
            raise ValueError(
                "SparseRTRL capacity must be a positive int (units per chunk) or a float in "
                f"(0, 1] (fraction of the units), got {capacity!r}."
            )
        self.capacity = capacity

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, AbstractGatedCell):
                raise ValueError(
                    "SparseRTRL works on gated cells (EGRU, GRU, LSTM, VanillaRNN); got a "
                    f"core of type {type(core).__name__}."
                )

    def init_traces(self, core) -> SparseTraces:
        m, k = len(core.initial_state()), core.hidden_size
        dtype = core.weight_ih.dtype
        zero = jnp.zeros((), jnp.int32)
        return SparseTraces(
            jnp.zeros((m, k, num_columns(core)), dtype), jnp.zeros((m, k), bool), zero, zero
        )

    def core_step(self, core, traces: SparseTraces, state, u):
        local = local_derivatives(core, state, u)
        m_prev = traces.influence
        m, k, n = m_prev.shape
        cap = _resolve_capacity(self.capacity, k)

        # Diagonal part: Σ_c' j_s[c, c', i] M_{t-1}[c', i, :].
        new = jnp.einsum("cdi,din->cin", local.j_s, m_prev)

        # Dense part through the active units only, in chunks of `cap` units.
        w_hh = core.effective_weight_hh()
        rows_nz = traces.row_nonzero
        active = jnp.any((local.rho != 0) & rows_nz, axis=0)  # [k]
        count = jnp.sum(active, dtype=jnp.int32)
        chunks = (count + cap - 1) // cap
        if w_hh is not None:
            v = jnp.einsum("cgi,gij->cij", local.a_h, w_hh)  # [m, k, k]
            n_pad = -(-k // cap) * cap
            order = jnp.nonzero(active, size=n_pad, fill_value=k)[0]

            def chunk(b, acc):
                idx = jax.lax.dynamic_slice(order, (b * cap,), (cap,))
                valid = idx < k
                idx = jnp.minimum(idx, k - 1)
                h_rows = jnp.einsum("cq,cqn->qn", local.rho[:, idx], m_prev[:, idx, :])
                v_cols = jnp.where(valid, v[:, :, idx], 0)
                return acc + jnp.einsum("ciq,qn->cin", v_cols, h_rows)

            new = jax.lax.fori_loop(0, chunks, chunk, new)
        else:
            chunks = jnp.zeros((), jnp.int32)

        # Immediate part: column -> (row unit i, value per component c).
        rows, vals = _immediate(core, local)
        new = new.at[:, rows, jnp.arange(n)].add(vals)

        row_nonzero = _row_nonzero(local, rows_nz)
        return local.state, SparseTraces(new, row_nonzero, count, chunks.astype(jnp.int32))

    def influence(self, core, traces: SparseTraces, tangent):
        pieces = []
        unit_leaves = jax.tree_util.tree_leaves(unit_params(tangent))
        for block in _blocks(core):
            leaf = unit_leaves[block.leaf] if block.name == "unit" else getattr(tangent, block.name)
            flat = leaf.ravel()
            if block.name in ("weight_ih", "weight_hh"):
                cols = _columns(core, block)
                mask = _mask_of(core, block.name)
                flat = flat[cols] if mask is None else jnp.where(mask.ravel()[cols], flat[cols], 0)
            pieces.append(flat)
        theta_dot = jnp.concatenate(pieces)
        total = jnp.einsum("cin,n->ci", traces.influence, theta_dot)
        return tuple(total[c] for c in range(total.shape[0]))


def _immediate(core, local):
    """``(rows [n], vals [m, n])``: the single non-zero row of each column of Ī_t."""
    m = local.a_x.shape[0]
    k = core.hidden_size
    rows, vals = [], []
    unit_j = jax.tree_util.tree_leaves(local.j_unit)
    for block in _blocks(core):
        if block.name in ("weight_ih", "weight_hh"):
            w = getattr(core, block.name)
            _, _, d = w.shape
            cols = _columns(core, block)
            g, i, j = cols // (k * d), (cols // d) % k, cols % d
            a, src = (local.a_x, local.u) if block.name == "weight_ih" else (local.a_h, local.h)
            val = a[:, g, i] * src[j]
            mask = _mask_of(core, block.name)
            if mask is not None and block.size == mask.size:  # full columns: zero masked ones
                val = jnp.where(mask.ravel(), val, 0)
        elif block.name in ("bias_ih", "bias_hh"):
            cols = jnp.arange(block.size)
            g, i = cols // k, cols % k
            a = local.a_x if block.name == "bias_ih" else local.a_h
            val = a[:, g, i]
        else:
            i = jnp.arange(block.size) % k
            val = unit_j[block.leaf].reshape(m, -1)
        rows.append(i)
        vals.append(val)
    return jnp.concatenate(rows), jnp.concatenate(vals, axis=1)


def _row_nonzero(local, rows_nz_prev):
    """Rows of M_t that can be non-zero: some local derivative of s_t[c, i] is non-zero."""
    nz = jnp.any(local.a_x != 0, axis=1) | jnp.any(local.a_h != 0, axis=1)  # [m, k]
    nz = nz | jnp.any((local.j_s != 0) & rows_nz_prev[None, :, :], axis=1)
    for leaf in jax.tree_util.tree_leaves(local.j_unit):
        nz = nz | jnp.any((leaf != 0).reshape(leaf.shape[0], -1, leaf.shape[-1]), axis=1)
    return nz
