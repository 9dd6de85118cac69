"""ColoR's online meta-gradient through online updates of a linear head (test bed).

A columnar network ``h_t = f_θ(h_{t-1}, x_t)`` (:class:`~rtrlax.Columnar`, ``k``
columns) feeds a linear head ``ŷ_t = w_t · h_t`` that is learned *inside* the episode by
least mean squares (LMS) with step size ``α``:

.. math::

    e_t = y_t - w_t \\cdot h_t, \\qquad w_{t+1} = w_t + α\\, e_t\\, h_t, \\qquad
    L(θ) = \\textstyle\\sum_t \\tfrac12 e_t^2 ,

with ``w_0`` given (not a function of θ).  The meta-gradient ``dL/dθ`` flows through
``h_t`` *and* through ``w_t`` (every earlier inner update used earlier ``h``'s).  This is
the use of columnar networks for meta-learning in Javed et al. ("Scalable real-time
recurrent learning using columnar-constructive networks"); the recursion below is our
reading of it (``docs/results/meta_gradient.md``).

Online, in forward mode, with ``H_t = dh_t/dθ`` (ColoR's column traces: exact at
``ρ = 0``) and ``W_t = dw_t/dθ`` (``W_0 = 0``):

.. math::

    G_t = \\frac{dŷ_t}{dθ} = h_t^\\top W_t + w_t^\\top H_t, \\qquad
    \\frac{dL}{dθ} \\mathrel{+}= -e_t\\, G_t, \\qquad
    W_{t+1} = W_t - α\\, h_t\\, G_t + α\\, e_t\\, H_t .

``head="dense"`` keeps ``W_t`` as a dense ``k × p`` matrix (``O(k·p)`` per step; the
shared error ``e_t`` couples every head weight to every column's parameters): with
exact traces (``ρ = 0``) this *is* ``jax.grad`` of ``L`` through the unrolled process.
``head="column"`` keeps only each column's own block ``dw_i/dθ_i`` (ColoR-style, ``O(p)``
per step, exact for one column); ``head="none"`` drops ``W`` (``G_t = w_t^\\top H_t``:
the ordinary online gradient of the prediction error with the current head held fixed).

:func:`exact_meta_gradient` (``jax.grad`` through the unrolled inner learning) and
:func:`truncated_meta_gradient` (backprop through windows of ``K`` steps, the state and
head at each window's start held fixed) are the references the online ones are measured
against.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._types import Params
from ..cells.columnar import Columnar
from ..estimators.snap import GatedTraces, _is_components, snap1_init, snap1_step

HEADS = ("dense", "column", "none")


class MetaCarry(NamedTuple):
    """The online meta-gradient's carry (one episode, unbatched)."""

    state: PyTree  #: the columns' state ``(h, c)``
    traces: GatedTraces  #: ColoR's traces of ``(h, c)`` (SnAp-1 on the columnar cell)
    w: Float[Array, " columns"]  #: the head ``w_t``
    W: Params | None  #: ``dw_t/dθ``: leaves ``[k, *leaf]`` (dense), ``leaf`` (column), or None
    grad: Params  #: ``Σ_{s<t} dℓ_s/dθ`` so far


class MetaStep(NamedTuple):
    prediction: Float[Array, ""]  #: ``ŷ_t = w_t · h_t``
    error: Float[Array, ""]  #: ``e_t = y_t − ŷ_t``
    loss: Float[Array, ""]  #: ``½ e_t²``


def column_traces(cell: Columnar, traces: GatedTraces) -> Params:
    """``H_t``'s non-zero entries as a pytree shaped like the cell's parameters:
    ``H[leaf][g, i, …] = ∂h_{t,i}/∂leaf[g, i, …]`` (every parameter of column ``i`` moves
    only ``h_i`` under ColoR's traces; masked cross-column entries are zero)."""
    params = eqx.filter(cell, eqx.is_inexact_array)
    unit = jax.tree_util.tree_map(lambda t: t[0], traces.unit, is_leaf=_is_components)
    where = lambda p: [p.weight_ih, p.bias_ih, p.weight_self] + (  # noqa: E731
        [p.weight_hh] if p.weight_hh is not None else []
    )
    new = [traces.weight_ih[0], traces.bias_ih[0], unit.weight_self]
    if cell.weight_hh is not None:
        new.append(jnp.where(cell.mask_hh, traces.weight_hh[0], 0))
    return eqx.tree_at(where, params, new)


def _along_columns(v: Array, leaf: Array) -> Array:
    """A length-``k`` vector broadcast along axis 1 (the column axis) of a parameter leaf."""
    return v.reshape((1, v.shape[0]) + (1,) * (leaf.ndim - 2))


class OnlineMetaGradient(eqx.Module):
    """The online (forward-mode) meta-gradient through LMS updates of a linear head.

    Args:
        alpha: the inner (LMS) step size ``α``.
        head: how ``W_t = dw_t/dθ`` is kept: ``"dense"`` (``k × p``, exact at ``ρ = 0``),
            ``"column"`` (each column's own block, ``O(p)``), or ``"none"`` (dropped: the
            plain online gradient of the prediction error).

    A pure state machine: :meth:`init` builds the carry, :meth:`step` advances it by
    one ``(x_t, y_t)``; the meta-gradient so far is ``carry.grad``.  See the module
    docstring for the recursion.
    """

    alpha: float
    head: str = eqx.field(static=True)

    def __init__(self, alpha: float, *, head: str = "dense"):
        alpha = float(alpha)
        if not (alpha > 0.0 and math.isfinite(alpha)):
            raise ValueError(f"alpha (the LMS step size) must be a positive finite number, got {alpha}.")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS} (how dw/dθ is kept), got {head!r}.")
        self.alpha, self.head = alpha, head

    def init(self, cell: Columnar, w0: Array | None = None) -> MetaCarry:
        _check_cell(cell)
        k = cell.n_columns
        dtype = cell.weight_ih.dtype
        w0 = jnp.zeros(k, dtype) if w0 is None else jnp.asarray(w0, dtype)
        if w0.shape != (k,):
            raise ValueError(f"w0 (the initial head) must have shape [{k}] (one weight per column), got {w0.shape}.")
        params = eqx.filter(cell, eqx.is_inexact_array)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        if self.head == "dense":
            W = jax.tree_util.tree_map(lambda a: jnp.zeros((k,) + a.shape, a.dtype), params)
        elif self.head == "column":
            W = zeros
        else:
            W = None
        return MetaCarry(cell.initial_state(), snap1_init(cell), w0, W, zeros)

    def step(self, cell: Columnar, carry: MetaCarry, x: Array, y: Array) -> tuple[MetaCarry, MetaStep]:
        alpha = self.alpha
        state, traces = snap1_step(cell, carry.traces, carry.state, x)
        h = cell.output(state)
        H = column_traces(cell, traces)
        w = carry.w
        y_hat = jnp.dot(w, h)
        e = y - y_hat
        tmap = jax.tree_util.tree_map
        w_H = tmap(lambda t: _along_columns(w, t) * t, H)  # wᵀ H (column-local H)
        if self.head == "dense":
            G = tmap(lambda Wl, wh: jnp.tensordot(h, Wl, axes=1) + wh, carry.W, w_H)
            k = h.shape[0]
            eye = jnp.eye(k, dtype=h.dtype)

            def dense_update(Wl, g, t):  # W[j] -= α h_j G; W[j][:, j, …] += α e H[:, j, …]
                embed = eye.reshape((k, 1, k) + (1,) * (t.ndim - 2)) * t[None]
                return Wl - alpha * h.reshape((k,) + (1,) * g.ndim) * g[None] + alpha * e * embed

            W = tmap(dense_update, carry.W, G, H)
        elif self.head == "column":
            G = tmap(lambda Wl, wh: _along_columns(h, Wl) * Wl + wh, carry.W, w_H)
            W = tmap(lambda Wl, g, t: Wl - alpha * _along_columns(h, g) * g + alpha * e * t, carry.W, G, H)
        else:
            G, W = w_H, None
        grad = tmap(lambda a, g: a - e * g, carry.grad, G)
        new = MetaCarry(state, traces, w + alpha * e * h, W, grad)
        return new, MetaStep(y_hat, e, 0.5 * e**2)


def online_meta_gradient(
    cell: Columnar,
    xs: Float[Array, "T input"],
    ys: Float[Array, " T"],
    *,
    alpha: float,
    w0: Array | None = None,
    head: str = "dense",
) -> tuple[Params, Float[Array, " T"]]:
    """``(dL/dθ, losses)`` of one episode by :class:`OnlineMetaGradient` (one ``lax.scan``;
    nothing stored per step).  ``losses[t] = ½ e_t²``."""
    estimator = OnlineMetaGradient(alpha, head=head)
    xs, ys = _check_episode(cell, xs, ys)
    carry = estimator.init(cell, w0)
    return _run_online(estimator, cell, carry, xs, ys)


@eqx.filter_jit
def _run_online(estimator, cell, carry, xs, ys):
    carry, out = jax.lax.scan(lambda c, xy: estimator.step(cell, c, *xy), carry, (xs, ys))
    return carry.grad, out.loss


def meta_objective(
    cell: Columnar, xs: Array, ys: Array, *, alpha: float, w0: Array | None = None,
    state=None,
) -> tuple[Float[Array, ""], tuple]:  # fmt: skip
    """``(L, (losses, state_T, w_T))``: the inner learning unrolled over the episode from
    ``state`` (default: the cell's initial state) and ``w0`` (default zeros)."""
    k = cell.n_columns
    w0 = jnp.zeros(k, cell.weight_ih.dtype) if w0 is None else w0
    state = cell.initial_state() if state is None else state

    def body(carry, xy):
        s, w = carry
        x, y = xy
        s, h = cell(s, x)
        e = y - jnp.dot(w, h)
        return (s, w + alpha * e * h), 0.5 * e**2

    (s, w), losses = jax.lax.scan(body, (state, w0), (xs, ys))
    return jnp.sum(losses), (losses, s, w)


def exact_meta_gradient(
    cell: Columnar, xs: Array, ys: Array, *, alpha: float, w0: Array | None = None
) -> tuple[Params, Float[Array, " T"]]:
    """``(dL/dθ, losses)`` by ``jax.grad`` through the whole unrolled inner learning."""
    xs, ys = _check_episode(cell, xs, ys)
    OnlineMetaGradient(alpha)  # validates alpha
    return _exact(cell, xs, ys, float(alpha), w0)


@eqx.filter_jit
def _exact(cell, xs, ys, alpha, w0):
    params, static = eqx.partition(cell, eqx.is_inexact_array)

    def f(p):
        return meta_objective(eqx.combine(p, static), xs, ys, alpha=alpha, w0=w0)

    (_, (losses, _, _)), grads = jax.value_and_grad(f, has_aux=True)(params)
    return grads, losses


def truncated_meta_gradient(
    cell: Columnar,
    xs: Array,
    ys: Array,
    *,
    alpha: float,
    truncation: int,
    w0: Array | None = None,
) -> tuple[Params, Float[Array, " T"]]:
    """``(g, losses)``: backprop of the meta-objective through consecutive windows of
    ``truncation`` steps (the last one may be shorter); at each window's start the
    columns' state and the head are held fixed (no gradient flows into them).  Memory
    ``O(truncation)``; equals :func:`exact_meta_gradient` when ``truncation ≥ T``."""
    xs, ys = _check_episode(cell, xs, ys)
    OnlineMetaGradient(alpha)
    if not isinstance(truncation, int) or truncation < 1:
        raise ValueError(f"truncation must be a positive integer (steps per window), got {truncation!r}.")
    return _truncated(cell, xs, ys, float(alpha), min(truncation, xs.shape[0]), w0)


@eqx.filter_jit
def _truncated(cell, xs, ys, alpha, K, w0):
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    k = cell.n_columns
    w0 = jnp.zeros(k, cell.weight_ih.dtype) if w0 is None else w0
    T = xs.shape[0]
    n_full = T // K

    def window(carry, xy):
        s, w = carry

        def f(p):
            return meta_objective(eqx.combine(p, static), xy[0], xy[1], alpha=alpha, w0=w, state=s)

        (_, (losses, s, w)), g = jax.value_and_grad(f, has_aux=True)(params)
        return jax.lax.stop_gradient((s, w)), (g, losses)

    split = lambda a: a[: n_full * K].reshape((n_full, K) + a.shape[1:])  # noqa: E731
    carry, (gs, losses) = jax.lax.scan(window, (cell.initial_state(), w0), (split(xs), split(ys)))
    grads = jax.tree_util.tree_map(lambda g: g.sum(0), gs)
    losses = losses.reshape(-1)
    if T % K:
        _, (g, rest) = window(carry, (xs[n_full * K :], ys[n_full * K :]))
        grads = jax.tree_util.tree_map(jnp.add, grads, g)
        losses = jnp.concatenate([losses, rest])
    return grads, losses


def _check_cell(cell) -> None:
    if not isinstance(cell, Columnar):
        raise ValueError(
            f"the meta-gradient test bed learns a columnar network: pass an rx.Columnar, got "
            f"{type(cell).__name__}."
        )


def _check_episode(cell, xs, ys):
    _check_cell(cell)
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    if xs.ndim != 2 or xs.shape[1] != cell.input_size or xs.shape[0] < 1:
        raise ValueError(f"xs must have shape [T, input_size={cell.input_size}] with T >= 1, got {xs.shape}.")
    if ys.shape != (xs.shape[0],):
        raise ValueError(f"ys (one scalar target per step) must have shape [{xs.shape[0]}], got {ys.shape}.")
    return xs, ys
