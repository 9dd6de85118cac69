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

**One pass for the element-wise work.** The diagonal part
``Σ_c' j_s[c,c',i] M_{t-1}[c',i,:]`` and the dense part's product are added in one fused
element-wise pass over ``M`` (no batched tiny matrix products); the immediate term, one
non-zero row per column of ``Ī_t`` (``rows[col]``), is then scattered into that pass's
output in place: ``m·n`` entries, where a ``[k, n]`` row mask would be built and read in
the pass (``benchmarks/sparse_rtrl_profile.py`` shows a step's ops).

**Dense path at the matmul floor.** When more than ``dense_above`` of the units are
active (default one half), the product runs over all units as one matrix product,
``V.reshape(m·k, k) @ H`` with ``H = Σ_c' ρ[c'] M_{t-1}[c']`` (``[k, n]``, one read of
``M``) — the same ``[m·k, k] @ [k, n]`` shape dense RTRL's ``[D; g] · M`` has per block,
with half its rows (``D``'s dense part has rank ``k``, not ``m·k``); readouts stay
outside ``M``.  At full activity this is the cheaper of the two estimators
(``m·k²·n`` against ``(m·k)²·p`` multiply-adds).

**Fixed capacity under jit.** Otherwise the active units are gathered
(``jnp.nonzero`` with a static size) and processed in chunks of ``C`` units
(``capacity``, default ``k/4``): ``P += V[:, :, idx] @ H[idx]``, in a
``lax.fori_loop`` over ``ceil(#active / C)`` chunks, so the result is exact for every
activity level and the cost is ``ceil(a/C)·C`` units rather than ``k``.  Under ``vmap``
(a batch of streams) the choice of path and the loop's trip count are made once for the
batch, from its largest active count (a ``custom_vmap`` rule): the branch stays a real
branch (a ``cond`` with a batched predicate would run both) and the loop a plain loop.

Cost per step (multiply-adds): ``m·k·u·n`` (dense part through ``u`` units: ``k`` on
the dense path, ``⌈a/C⌉C`` on the chunked one, ``a`` = active units)
``+ m²·k·n`` (diagonal part) ``+ m·G·k²`` (forming V) ``+ O(m·n)`` (immediate),
against ``(m·k)²·p_r`` for dense RTRL (``p_r`` = its recurrent parameters).  Memory
``m·k·n`` floats.

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
from ._gated import local_derivatives, mix_components, unit_params
from ._traces import AbstractTraceEstimator
from .rtrl import recurrent_leaves


class SparseTraces(NamedTuple):
    """Sparse-RTRL traces of one gated core."""

    influence: Float[Array, "m hidden kept"]  #: M_t over the kept parameters' columns
    row_nonzero: Bool[Array, "m hidden"]  #: rows of M_t that may be non-zero
    active: Int[Array, ""]  #: units whose recurrent-input row of M_{t-1} entered D_t M_{t-1}
    chunks: Int[Array, ""]  #: capacity-sized chunks this stream's active units filled
    dense: Bool[Array, ""]  #: whether the product ran over all units (one dense product)


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


def _tree_size(tree) -> int:
    return sum(int(a.size) for a in jax.tree_util.tree_leaves(tree))


def _resolve_capacity(capacity, k: int) -> int:
    if isinstance(capacity, float):
        return max(1, min(k, math.ceil(capacity * k)))
    return max(1, min(k, capacity))


class SparseRTRL(AbstractTraceEstimator):
    """Exact RTRL on gated cores that skips masked parameters and inactive units.

    ``capacity``: units gathered per chunk of the activity-sparse product — an ``int``
    (units) or a ``float`` in (0, 1] (fraction of the core's units).  ``dense_above``:
    the fraction of active units above which the product runs over all units as one
    dense matrix product instead (the chunked gathers cost more per multiply-add than
    one large product; 0 = always dense, 1 = never).  Any values are exact; they only
    trade loop iterations, padding and gathers against skipped work.
    """

    capacity: int | float = eqx.field(static=True)
    dense_above: float = eqx.field(static=True)

    def __init__(self, capacity: int | float = 0.25, dense_above: float = 0.5):
        if isinstance(dense_above, bool) or not (
            isinstance(dense_above, (int, float)) and 0.0 <= dense_above <= 1.0
        ):
            raise ValueError(
                f"SparseRTRL dense_above must be a fraction in [0, 1], got {dense_above!r}."
            )
        ok_float = isinstance(capacity, float) and 0.0 < capacity <= 1.0
        ok_int = isinstance(capacity, int) and not isinstance(capacity, bool) and capacity >= 1
        if not (ok_float or ok_int):
            raise ValueError(
                "SparseRTRL capacity must be a positive int (units per chunk) or a float in "
                f"(0, 1] (fraction of the units), got {capacity!r}."
            )
        self.capacity = capacity
        self.dense_above = float(dense_above)

    def scan_unroll(self, model) -> int:
        """2 when a core's state has several components (EGRU, LSTM): its new ``M`` mixes
        them, so it cannot be written over ``M_{t-1}``, and a scan of two steps per
        iteration alternates two buffers instead of copying it back each step; else 1."""
        cores = model.cores() if hasattr(model, "cores") else ()
        return 2 if any(len(c.initial_state()) > 1 for c in cores) else 1

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, AbstractGatedCell):
                raise ValueError(
                    "SparseRTRL works on gated cells (EGRU, GRU, LSTM, VanillaRNN); got a "
                    f"core of type {type(core).__name__}."
                )

    def cost(self, model, carry) -> dict:
        """Per-step activity, multiply-add and memory counters read from ``carry`` (the
        learner reports them with its metrics; the counting is explained in
        :mod:`rtrlax.diagnostics.accounting`)."""
        cores = model.cores()
        state_size = _tree_size(model.initial_state())
        # dense rx.RTRL keeps columns for the recurrent parameters only (readouts get
        # instantaneous gradients); masked entries are columns like any other for it
        leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
        n_rec = sum(int(a.size) for a, r in zip(leaves, recurrent_leaves(model)) if r)
        macs = 0
        active = 0
        floats = 0
        units = 0
        for core, traces in zip(cores, carry.traces):
            m, k = len(core.initial_state()), core.hidden_size
            n, g = num_columns(core), core.num_gates
            cap = _resolve_capacity(self.capacity, k)
            through = jnp.where(traces.dense, k, traces.chunks * cap) * 1.0
            # the fixed part as a Python float: at hidden 512 it passes 2**31, which JAX
            # would refuse to take as a (32-bit) integer
            macs = macs + m * k * through * n + float(m * m * k * n + m * g * k * k + m * n + m * k * n)
            active = active + traces.active
            floats += m * k * n
            units += k
        dense = float(state_size) ** 2 * n_rec + float(state_size) * n_rec
        out = {
            "active_fraction": active / units,
            "macs": macs,
            "dense_macs": jnp.full_like(macs, dense),
            "op_reduction": dense / macs,
            "influence_floats": jnp.full_like(macs, floats),
            "dense_influence_floats": jnp.full_like(macs, state_size * n_rec),
            "memory_fraction": jnp.full_like(macs, floats / (state_size * n_rec)),
        }
        if len(cores) == 1:
            h = cores[0].recurrent_input(carry.state)
            out["activity"] = jnp.mean(h != 0, axis=-1)
        return out

    def init_traces(self, core) -> SparseTraces:
        m, k = len(core.initial_state()), core.hidden_size
        dtype = core.weight_ih.dtype
        zero = jnp.zeros((), jnp.int32)
        return SparseTraces(
            jnp.zeros((m, k, num_columns(core)), dtype), jnp.zeros((m, k), bool), zero, zero,
            jnp.zeros((), bool),
        )

    def core_step(self, core, traces: SparseTraces, state, u):
        local = local_derivatives(core, state, u)
        m_prev = traces.influence
        m, k, n = m_prev.shape
        cap = _resolve_capacity(self.capacity, k)

        # Which units' recurrent-input rows of M_{t-1} can be non-zero.
        w_hh = core.effective_weight_hh()
        rows_nz = traces.row_nonzero
        active = jnp.any((local.rho != 0) & rows_nz, axis=0)  # [k]
        count = jnp.sum(active, dtype=jnp.int32)
        chunks = (count + cap - 1) // cap

        # Element-wise part, one fused pass over M: the diagonal Σ_c' j_s[c, c', i]
        # M_{t-1}[c', i, :] (plus the dense part's product below)
        base = mix_components(local.j_s, m_prev, 0)

        if w_hh is None:
            new, dense = base, jnp.zeros((), bool)
            chunks = jnp.zeros((), jnp.int32)
        else:
            # V[c, i, j] = Σ_g a_h[c, g, i] W_hh[g, i, j] (element-wise: G is 3 or 4)
            v = sum(local.a_h[:, g, :, None] * w_hh[g][None] for g in range(w_hh.shape[0]))
            # one decision for all streams of a vmapped batch (their maximum), so that the
            # branch and the loop below stay a real branch and a plain loop under vmap
            worst = _batch_max(count)
            dense = worst > self.dense_above * k

            def full(_):  # H = Σ_c' ρ[c', j] M_{t-1}[c', j, :]; one [m·k, k] @ [k, n] product
                h = sum(local.rho[c][:, None] * m_prev[c] for c in range(m))
                return (v.reshape(m * k, k) @ h).reshape(m, k, n)

            def sparse(_):  # the active units only, gathered in chunks of `cap`
                n_pad = -(-k // cap) * cap
                order = jnp.nonzero(active, size=n_pad, fill_value=k)[0]

                def chunk(b):
                    idx = jax.lax.dynamic_slice(order, (b * cap,), (cap,))
                    valid = idx < k
                    idx = jnp.minimum(idx, k - 1)
                    h_rows = sum(local.rho[c, idx][:, None] * m_prev[c, idx, :] for c in range(m))
                    v_cols = jnp.where(valid, v[:, :, idx], 0).reshape(m * k, cap)
                    return (v_cols @ h_rows).reshape(m, k, n)

                # the first chunk's product starts the sum (zero if no unit is active): no
                # zero-filled accumulator to write and then read back
                n_chunks = (worst + cap - 1) // cap
                return jax.lax.fori_loop(1, n_chunks, lambda b, acc: acc + chunk(b), chunk(0))

            new = base + jax.lax.cond(dense, full, sparse, None)

        # the immediate term: one non-zero row per column (``rows[col]``), added in place
        # into the pass's fresh output (m·n entries, no [k, n] row mask)
        rows, vals = _immediate(core, local)
        new = new.at[:, rows, jnp.arange(n)].add(vals)

        row_nonzero = _row_nonzero(local, rows_nz)
        traces = SparseTraces(new, row_nonzero, count, chunks.astype(jnp.int32), dense)
        return local.state, traces

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


@jax.custom_batching.custom_vmap
def _batch_max(count):
    """``count`` itself; under ``vmap``, the maximum over the batch, unbatched."""
    return count


@_batch_max.def_vmap
def _batch_max_rule(axis_size, in_batched, count):
    return (jnp.max(count) if in_batched[0] else count), False
