"""Local (one-step, per-unit) derivatives of a gated cell, shared by every structured
estimator that works on :class:`~rtrlax.cells.base.AbstractGatedCell`.

Because a gated cell mixes units only through ``W_ih x`` and ``W_hh h``, the immediate
Jacobian and the recurrent Jacobian factor into per-unit pieces (k = units,
m = state components per unit, G = gates):

* ``a_x[c, g, i] = ∂s_t[c, i] / ∂a^x[g, i]`` and ``a_h`` likewise — so the immediate
  influence of ``W_ih[g, i, j]`` is ``a_x[:, g, i] · x_j`` on unit i only;
* ``j_s[c, c', i] = ∂s_t[c, i] / ∂s_{t-1}[c', i]`` (the direct, element-wise part);
* ``rho[c', i] = ∂h_{t-1}[i] / ∂s_{t-1}[c', i]`` — so
  ``D_t[(c,i),(c',j)] = δ_ij j_s[c,c',i] + Σ_g a_h[c,g,i] W_hh[g,i,j] rho[c',j]``;
* ``j_unit[leaf][c, ..., i] = ∂s_t[c, i] / ∂leaf[..., i]`` for every unit parameter.

All of them come from one ``vmap`` over units of ``jacfwd`` of the element-wise maps.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._types import State
from ..cells.base import LINEAR_FIELDS, AbstractGatedCell


class GatedLocal(NamedTuple):
    state: State  #: s_t (differentiable with respect to the input u)
    u: Float[Array, " input"]  #: the core's input x_t
    h: Float[Array, " hidden"]  #: the recurrent input h_{t-1} = rho(s_{t-1})
    a_x: Float[Array, "m gates hidden"]
    a_h: Float[Array, "m gates hidden"]
    j_s: Float[Array, "m m hidden"]
    rho: Float[Array, "m hidden"]
    j_unit: PyTree  #: like unit_params(core), each leaf with a leading m axis


def split_unit_params(core: AbstractGatedCell):
    """``(unit, rest)``: the unit parameters of a gated cell (every trainable array
    other than the weights/biases; last axis = unit) and the remainder of the core."""
    is_linear = eqx.tree_at(
        lambda c: [getattr(c, f) for f in LINEAR_FIELDS if getattr(c, f) is not None],
        jax.tree_util.tree_map(lambda _: False, core),
        replace_fn=lambda leaf: jax.tree_util.tree_map(lambda _: True, leaf),
    )
    unit_mask = jax.tree_util.tree_map(
        lambda lin, leaf: (not lin) and eqx.is_inexact_array(leaf), is_linear, core
    )
    return eqx.partition(core, unit_mask)


def unit_params(core: AbstractGatedCell) -> PyTree:
    return split_unit_params(core)[0]


def local_derivatives(core: AbstractGatedCell, state: State, u: Array) -> GatedLocal:
    """One step of ``core`` with every per-unit derivative the trace rules need."""
    h = core.recurrent_input(state)
    ax, ah = core.preactivations(state, u)
    unit, rest = split_unit_params(core)
    s_t = core.pointwise(ax, ah, state)

    def phi(ax_i, ah_i, s_i, unit_i):
        return eqx.combine(unit_i, rest).pointwise(ax_i, ah_i, s_i)

    def rho_fn(s_i):
        return core.recurrent_input(s_i)

    unit_axes = jax.tree_util.tree_map(lambda _: -1, unit)
    jac = jax.vmap(
        jax.jacfwd(phi, argnums=(0, 1, 2, 3)),
        in_axes=(1, 1, 0, unit_axes),
        out_axes=-1,
    )(ax, ah, state, unit)
    # jac[c] = (d/dax [G, k], d/dah [G, k], d/ds (tuple of m [k]), d/dunit (pytree [..., k]))
    stop = jax.lax.stop_gradient
    a_x = stop(jnp.stack([jc[0] for jc in jac]))
    a_h = stop(jnp.stack([jc[1] for jc in jac]))
    j_s = stop(jnp.stack([jnp.stack(jc[2]) for jc in jac]))
    j_unit = stop(
        jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *[jc[3] for jc in jac])
    )
    rho = jax.vmap(jax.jacfwd(rho_fn), in_axes=(0,), out_axes=-1)(stop(state))
    rho = stop(jnp.stack(rho))
    return GatedLocal(s_t, stop(u), stop(h), a_x, a_h, j_s, rho, j_unit)


def recurrent_diagonal(core: AbstractGatedCell, local: GatedLocal) -> Float[Array, "m m hidden"]:
    """The per-unit diagonal blocks of D_t: ``D_t[(c,i),(c',i)]``."""
    d = local.j_s
    w_hh = core.effective_weight_hh()
    if w_hh is not None:
        w_ii = jnp.diagonal(w_hh, axis1=1, axis2=2)  # [G, k]
        self_drive = jnp.einsum("cgk,gk->ck", local.a_h, w_ii)
        d = d + self_drive[:, None, :] * local.rho[None, :, :]
    return d


def mix_components(d: Float[Array, "m m hidden"], trace, unit_axis: int):
    """``Σ_c' d[c, c', i] trace[c', ..., i, ...]`` with the unit axis of ``trace[c']`` at
    ``unit_axis``; written as element-wise products (m is 1 or 2).  ``trace`` is a
    stacked ``[m, …]`` array (the result is stacked too) or a tuple of ``m`` arrays
    (the result is a tuple: each component can then be updated in place)."""
    m = d.shape[0]
    components = isinstance(trace, tuple)
    ndim = trace[0].ndim if components else trace.ndim - 1

    def along(v):  # broadcast a [k] vector along the unit axis of one trace slice
        shape = [1] * ndim
        shape[unit_axis] = v.shape[0]
        return v.reshape(shape)

    if m == 1 and not components:  # no stack/slice: XLA can then update it in place
        return along(d[0, 0]) * trace
    mixed = tuple(sum(along(d[c, cp]) * trace[cp] for cp in range(m)) for c in range(m))
    return mixed if components else jnp.stack(mixed)
