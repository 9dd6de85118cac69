"""The kept pattern P_n of SnAp-n on a gated cell, derived from the cell's structure.

A parameter that feeds unit ``i`` (a row of ``W_ih``/``W_hh``, a bias entry, a unit
parameter) touches only unit ``i`` in one step; after that, unit ``i`` reaches unit
``l`` in one more step when some gate connects them (``mask_hh[g, l, i]``).  So

.. math::  P_n(i) = \\{ l : l \\text{ reachable from } i \\text{ within } n-1 \\text{ hops of the
           recurrent graph (union over gates)} \\} \\cup \\{i\\},

and the kept entries of ``M`` are ``(component c, unit l ∈ P_n(i))`` × (every
unmasked parameter of unit ``i``).  :class:`GatedPattern` stores this as padded index
lists: ``reach[i, :width]`` (``reach[i, 0] = i``) and, for each weight matrix, the
``(gate, source)`` pairs of the unmasked entries of row ``i`` (``[i, :q]``), so that
masked parameters take no storage.

The sizes (``width``, ``q_ih``, ``q_hh``) fix array shapes, so they are computed on the
host from concrete masks (:func:`pattern_sizes`); the index arrays themselves are
computed with ``jax.numpy`` (:func:`gated_pattern`) and so work under ``jit`` once
the sizes are known.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from ..cells.base import AbstractGatedCell


class GatedPattern(NamedTuple):
    """Padded index lists of the SnAp-n pattern of one gated cell (k units)."""

    reach: Int[Array, "hidden width"]  #: units reached from unit i; reach[i, 0] = i
    reach_valid: Bool[Array, "hidden width"]
    ih_gate: Int[Array, "hidden q_ih"]  #: gate of the j-th unmasked W_ih entry of row i
    ih_src: Int[Array, "hidden q_ih"]  #: its input index
    ih_valid: Bool[Array, "hidden q_ih"]
    hh_gate: Int[Array, "hidden q_hh"] | None
    hh_src: Int[Array, "hidden q_hh"] | None
    hh_valid: Bool[Array, "hidden q_hh"] | None


class PatternSizes(NamedTuple):
    width: int  #: max |P_n(i)| over units
    q_ih: int  #: max number of unmasked W_ih entries feeding one unit
    q_hh: int  #: max number of unmasked W_hh entries feeding one unit (0: no W_hh)

    def max(self, other: "PatternSizes") -> "PatternSizes":
        return PatternSizes(*(max(a, b) for a, b in zip(self, other)))


def is_concrete(core: AbstractGatedCell) -> bool:
    """Whether the core's masks are concrete (not traced), so sizes can be read off."""
    return not any(
        isinstance(m, jax.core.Tracer) for m in (core.mask_ih, core.mask_hh) if m is not None
    )


def _adjacency(core, xp):
    """``adj[l, i]``: unit ``i`` feeds unit ``l`` through some gate of ``W_hh``."""
    k = core.hidden_size
    if core.weight_hh is None:
        return xp.zeros((k, k), bool)
    if core.mask_hh is None:
        return xp.ones((k, k), bool)
    return xp.asarray(core.mask_hh).any(axis=0)


def _bool_matmul(a, b, xp):
    return (a.astype(xp.int32) @ b.astype(xp.int32)) > 0


def reach_matrix(core: AbstractGatedCell, n: int, xp=jnp) -> Bool[Array, "hidden hidden"]:
    """``R[l, i]``: unit ``l`` is reachable from unit ``i`` within ``n - 1`` hops
    (``R[i, i]`` always).  ``xp`` is ``numpy`` (host) or ``jax.numpy`` (traceable)."""
    k = core.hidden_size
    step = _adjacency(core, xp) | xp.eye(k, dtype=bool)
    hops = min(n - 1, k - 1)  # the reachable set saturates after k - 1 hops
    result, power = xp.eye(k, dtype=bool), step
    while hops:  # (I + A)^hops by repeated squaring
        if hops & 1:
            result = _bool_matmul(power, result, xp)
        hops >>= 1
        if hops:
            power = _bool_matmul(power, power, xp)
    return result


def _row_entries(mask, gates: int, hidden: int, src: int, xp):
    """``rows[i, g * src + j]``: entry ``(g, i, j)`` of a weight matrix is trainable."""
    if mask is None:
        return xp.ones((hidden, gates * src), bool)
    return xp.moveaxis(xp.asarray(mask), 0, 1).reshape(hidden, gates * src)


def pattern_sizes(core: AbstractGatedCell, n: int) -> PatternSizes:
    """The static sizes of the SnAp-n pattern (host-side; needs concrete masks)."""
    if not is_concrete(core):
        raise ValueError(
            "SnAp-n (n >= 2) on a masked cell needs its masks to size the pattern, but they "
            "are traced here (inside jit). Bind the estimator to the model outside jit: "
            "`estimator = rx.SnAp(n).bind(model)`, then use that estimator."
        )
    g, k, d = core.weight_ih.shape
    width = int(reach_matrix(core, n, np).sum(axis=0).max())
    q_ih = int(_row_entries(core.mask_ih, g, k, d, np).sum(axis=1).max())
    q_hh = 0
    if core.weight_hh is not None:
        q_hh = int(_row_entries(core.mask_hh, g, k, k, np).sum(axis=1).max())
    return PatternSizes(width, q_ih, q_hh)


def _first_true(rows: Bool[Array, "k n"], size: int, first: Int[Array, " k"] | None = None):
    """Per row, the indices of the True entries (``first[i]`` leading, then in order),
    padded to ``size`` with indices of False entries; and which are valid."""
    keyed = jnp.where(rows, 1, 2)
    if first is not None:
        keyed = keyed.at[jnp.arange(rows.shape[0]), first].set(0)
    order = jnp.argsort(keyed, axis=1, stable=True)[:, :size]
    return order, jnp.take_along_axis(rows, order, axis=1)


def gated_pattern(core: AbstractGatedCell, n: int, sizes: PatternSizes) -> GatedPattern:
    """The padded index lists of P_n (traceable; ``sizes`` must cover the masks)."""
    g, k, d = core.weight_ih.shape
    reach_rows = reach_matrix(core, n, jnp).T  # [i, l]
    reach, reach_valid = _first_true(reach_rows, sizes.width, jnp.arange(k))
    ih, ih_valid = _first_true(_row_entries(core.mask_ih, g, k, d, jnp), sizes.q_ih)
    hh_gate = hh_src = hh_valid = None
    if core.weight_hh is not None:
        hh, hh_valid = _first_true(_row_entries(core.mask_hh, g, k, k, jnp), sizes.q_hh)
        hh_gate, hh_src = hh // k, hh % k
    return GatedPattern(reach, reach_valid, ih // d, ih % d, ih_valid, hh_gate, hh_src, hh_valid)
