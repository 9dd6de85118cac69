"""Exact real-time recurrent learning (Williams & Zipser, 1989), dense.

Carries the influence matrix :math:`M_t = ds_t/d\\theta_r` of the model's whole state
(``S`` scalars) with respect to its *recurrent* parameters θ_r — those the new state
depends on — with

.. math::

    M_t = D_t M_{t-1} + \\bar I_t, \\qquad
    D_t = \\partial s_t / \\partial s_{t-1}, \\quad \\bar I_t = \\partial s_t / \\partial\\theta_r,

and reports the exact gradient of the step-t loss through the whole past (θ held fixed)

.. math::

    \\frac{d\\ell_t}{d\\theta} = \\frac{\\partial\\ell_t}{\\partial\\theta}
        + g_t M_{t-1}, \\qquad g_t = \\partial\\ell_t/\\partial s_{t-1},

where :math:`g_t M_{t-1} + \\partial\\ell_t/\\partial\\theta_r` is the same number as
:math:`\\delta_t M_t` with :math:`\\delta_t = \\partial\\ell_t/\\partial s_t` (since
:math:`g_t = \\delta_t D_t`), written so that it works for models whose output reads
the previous state too.  Non-recurrent parameters (readouts) get their instantaneous
gradient :math:`\\partial\\ell_t/\\partial\\theta` and have no columns in ``M``.

How a step runs at the cost of its matrix product (the "matmul floor"):

* ``M`` is stored as one block per recurrent parameter leaf ``l``, never as one state ×
  all-parameters matrix; which leaves are recurrent is read from the traced computation
  (a leaf is recurrent when the new state depends on it).  Each block is ``[S + 1, p_l]``:
  rows ``0 … S-1`` are :math:`M^l_t`, and the spare last row is scratch (it holds the
  last step's gradient row; nothing reads it).
* Each block is read once per step, by one product: the row :math:`g_t` is appended to
  :math:`D_t` and a zero column for the spare row, so
  :math:`[D_t, 0; g_t, 0]\,M^l_{t-1}` gives both the update's :math:`D_t M^l_{t-1}` and,
  in its last row, the gradient's :math:`g_t M^l_{t-1}` — and it already has the block's
  shape, so it *is* the new block once the immediate term is added.
* The immediate term :math:`\bar I^l_t` of a leaf of a gated core (the ``weight_*`` /
  ``bias_*`` arrays and the unit parameters of an
  :class:`~rtrlax.cells.base.AbstractGatedCell`) is unit-local: an entry that feeds unit
  ``i`` moves only unit ``i``'s state in one step, so :math:`\bar I^l_t` has ``m·p_l``
  non-zeros (``m`` = state components per unit) out of ``S·p_l``.  They come from ``m``
  vector-Jacobian products (cotangent: ones on one state component — every other term of
  the sum is a structural zero) and are added into the product's buffer in place, a
  scatter touching ``1/k`` of it.  :func:`unit_axes` decides which leaves qualify, from
  the model's structure: a single gated core whose new state *is* the model's new state
  and whose input does not depend on the core's own parameters (both checked on the
  traced computation).  Every other recurrent leaf (an encoder in front of the core, the
  layers of a deep network) gets its dense immediate term (``S`` vector-Jacobian
  products) added as the block is written.
* The product cannot write into the block it reads, so a step that updates M in place
  leaves it in a fresh buffer; a scan over single steps would copy it back every step.
  :meth:`RTRL.scan_unroll` asks rtrlax's scans (``accumulate_grads``, the online
  learner) to take two steps per iteration when every block is updated in place: XLA
  then alternates between the carry's buffer and one scratch buffer and M is never
  copied.  With dense immediate terms the add is that pass anyway, and one step per
  iteration is faster.

Memory ``S·p_r`` (≈ k³ for a dense RNN) plus one block-sized scratch buffer; time
``S²·p_r`` per step (≈ k⁴, the "quartic" cost) — the reference every other estimator is
measured against, practical for small models only.  A caller that jits single steps
should donate the carry (``jax.jit(..., donate_argnums=...)``) so the old blocks' memory
is reused.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.extend.core import Literal
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._types import State
from ..cells.base import LINEAR_FIELDS, AbstractGatedCell
from ._gated import unit_params
from .base import AbstractOnlineEstimator, StepOutput, split_params


class RTRLCarry(NamedTuple):
    state: State  #: s_t
    #: M_t, one block ``[S + 1, leaf.size]`` per recurrent parameter leaf (in leaf order of
    #: ``eqx.filter(model, eqx.is_inexact_array)``; non-recurrent leaves have none); the
    #: last row of each block is scratch (see the module docstring)
    influence: tuple[Float[Array, "state_plus_1 leaf"], ...]


def _depends_on(jaxpr, n_leaves: int, n_out: int) -> tuple[bool, ...]:
    """Which of the first ``n_leaves`` inputs of ``jaxpr`` the first ``n_out`` outputs
    depend on (a forward walk; every equation's outputs are taken to depend on all its
    inputs, so the answer may only err towards "depends")."""
    deps: dict = {v: frozenset([i]) for i, v in enumerate(jaxpr.invars)}
    for eqn in jaxpr.eqns:
        d = frozenset().union(*(deps.get(v, frozenset()) for v in eqn.invars if not isinstance(v, Literal)))
        for v in eqn.outvars:
            deps[v] = d
    used = frozenset().union(
        *(deps.get(v, frozenset()) for v in jaxpr.outvars[:n_out] if not isinstance(v, Literal))
    )
    return tuple(i in used for i in range(n_leaves))


def _spec(a):
    return jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))


def _traced_inputs(model):
    """``(leaves, treedef, static, state, x)`` with ``x`` an input of shape
    ``[model.input_size]`` (or ``None`` when the model does not say its input size)."""
    params, static = split_params(model)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    size = getattr(model, "input_size", None)
    x = None if size is None else jax.ShapeDtypeStruct((size,), leaves[0].dtype if leaves else jnp.float32)
    return leaves, treedef, static, model.initial_state(), x


def recurrent_leaves(model, x=None) -> tuple[bool, ...]:
    """Per parameter leaf of ``model`` (``eqx.filter(model, eqx.is_inexact_array)``
    order): whether the model's new state depends on it.  Needs an input: ``x``, or one
    of shape ``[model.input_size]``; without either every leaf counts as recurrent."""
    leaves, treedef, static, state, x_spec = _traced_inputs(model)
    x = x_spec if x is None else x
    if x is None:
        return (True,) * len(leaves)
    n_state = len(jax.tree_util.tree_leaves(state))

    def new_state(leaves, state, x):
        m = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        return jax.tree_util.tree_leaves(m(state, x)[0])

    closed = jax.make_jaxpr(new_state)(
        [_spec(a) for a in leaves], jax.tree_util.tree_map(_spec, state), _spec(x)
    )
    return _depends_on(closed.jaxpr, len(leaves), n_state)


def _core_axes(core: AbstractGatedCell) -> dict[int, int]:
    """``id`` of each of a gated core's parameter arrays -> its unit axis (``weight_*``,
    ``bias_*``: ``[G, k, …]``, axis 1; unit parameters: the last axis)."""
    k = core.hidden_size
    axes = {}
    for name in LINEAR_FIELDS:
        a = getattr(core, name)
        if eqx.is_inexact_array(a) and a.ndim >= 2 and a.shape[1] == k:
            axes[id(a)] = 1
    for a in jax.tree_util.tree_leaves(unit_params(core)):
        if a.ndim >= 1 and a.shape[-1] == k:
            axes[id(a)] = a.ndim - 1
    return axes


def unit_axes(model, x=None) -> tuple[int | None, ...]:
    """Per parameter leaf of ``model``: the axis along which its entries belong to single
    units of the model's gated core — entry ``[…, i, …]`` moves only unit ``i``'s state
    (each of its ``m`` components) within a step — or ``None`` where that is not known.

    A leaf qualifies when it is a ``weight_*``/``bias_*`` array or unit parameter of the
    model's only core, that core is an :class:`~rtrlax.cells.base.AbstractGatedCell` (the
    protocol makes the linear maps row-per-unit and the rest element-wise), its state is
    ``m`` arrays of shape ``[k]``, the model's state has the same structure, and the traced
    step proves the rest: the model's new state *is* what the core computes, and the
    core's inputs (``x_t`` as the model feeds it, ``s_{t-1}``) do not depend on the
    core's parameters.  ``x`` as for :func:`recurrent_leaves`."""
    leaves, treedef, static, state, x_spec = _traced_inputs(model)
    x = x_spec if x is None else x
    none = (None,) * len(leaves)
    cores = tuple(model.cores()) if hasattr(model, "cores") else ()
    if (x is None or not hasattr(model, "forward") or len(cores) != 1
            or not isinstance(cores[0], AbstractGatedCell)):
        return none
    core = cores[0]
    core_state = core.initial_state()
    if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(core_state) or any(
        jnp.shape(a) != (core.hidden_size,) for a in jax.tree_util.tree_leaves(core_state)
    ):
        return none
    axes = _core_axes(core)
    candidate = tuple(axes.get(id(a)) for a in leaves)
    if all(a is None for a in candidate):
        return none

    proof = {}

    def core_inputs(leaves, state, x):
        m = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        calls = []

        def core_call(c, s, u):
            out = jax.tree_util.tree_map(lambda a: a + jnp.zeros_like(a), c.update(s, u))
            calls.append((c, s, u, out))
            return out

        new_state, _ = m.forward(state, x, core_call=core_call)
        if len(calls) != 1 or calls[0][0] is not m.cores()[0]:
            proof["ok"] = False
            return []
        _, s, u, out = calls[0]
        mine = jax.tree_util.tree_leaves(new_state)
        theirs = jax.tree_util.tree_leaves(out)
        proof["ok"] = len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs))
        return jax.tree_util.tree_leaves((s, u))

    closed = jax.make_jaxpr(core_inputs)(
        [_spec(a) for a in leaves], jax.tree_util.tree_map(_spec, state), _spec(x)
    )
    if not proof.get("ok", False):
        return none
    feeds = _depends_on(closed.jaxpr, len(leaves), len(closed.jaxpr.outvars))
    if any(f and a is not None for f, a in zip(feeds, candidate)):
        return none
    return candidate


def _add_unit_local(block, values, axis: int):
    """``block`` ``[S + 1, p]`` plus the unit-local immediate term ``values`` ``[m, *leaf]``
    (component ``c``'s values of the entries of unit ``i`` go to state row ``c·k + i``),
    as a scatter into ``block``'s own buffer."""
    shape = values.shape[1:]
    units = shape[axis]
    a, b = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    out = block.reshape(block.shape[0], a, units, b)
    ids = jnp.arange(units)
    for c in range(values.shape[0]):
        v = jnp.moveaxis(values[c].reshape(a, units, b), 1, 0)  # [k, a, b]
        out = out.at[c * units + ids, :, ids, :].add(v)
    return out.reshape(block.shape)


class RTRL(AbstractOnlineEstimator):
    """Exact RTRL with a dense influence matrix per recurrent parameter leaf (see the
    module docstring)."""

    def init(self, model, *, key=None) -> RTRLCarry:
        params, _ = split_params(model)
        leaves = jax.tree_util.tree_leaves(params)
        state = model.initial_state()
        s_size = ravel_pytree(state)[0].size
        rec = recurrent_leaves(model)
        blocks = tuple(jnp.zeros((s_size + 1, a.size), a.dtype) for a, r in zip(leaves, rec) if r)
        return RTRLCarry(state, blocks)

    def scan_unroll(self, model) -> int:
        """2 when every block of M is updated in place (unit-local immediate terms), so
        that a scan alternates between two buffers instead of copying M back each step;
        else 1."""
        rec, axes = recurrent_leaves(model), unit_axes(model)
        return 2 if any(rec) and all(a is not None for a, r in zip(axes, rec) if r) else 1

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        with_x = None if getattr(model, "input_size", None) is None else x  # as init decides
        rec = [i for i, r in enumerate(recurrent_leaves(model, with_x)) if r]
        s_flat, unravel_state = ravel_pytree(carry.state)
        size = s_flat.size
        if len(rec) != len(carry.influence) or any(
            m.shape != (size + 1, leaves[i].size) for i, m in zip(rec, carry.influence)
        ):
            raise ValueError(
                f"this RTRL carry's influence blocks {[m.shape for m in carry.influence]} do not "
                f"fit the model's {len(rec)} recurrent parameter arrays and state of size {size}: "
                "build the carry with RTRL().init(model) for this model."
            )
        axes = unit_axes(model, with_x)
        local = [i for i in rec if axes[i] is not None]
        dense = [i for i in rec if axes[i] is None]

        def run(leaves, s_flat):
            m = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
            new_state, y = m(unravel_state(s_flat), x)
            return ravel_pytree(new_state)[0], y

        def loss_of(leaves, s_flat):
            s_new, y = run(leaves, s_flat)
            return loss_fn(y, target), (s_new, y)

        (loss, (s_new, y)), (g_leaves, g_state) = jax.value_and_grad(
            loss_of, argnums=(0, 1), has_aux=True
        )(leaves, s_flat)

        grads = list(g_leaves)
        blocks = []
        if rec:
            # [D_t, 0; g_t, 0] (S forward-mode products for D_t): one product per block
            # gives D_t M_{t-1} in rows 0..S-1 and g_t M_{t-1} in the spare last row
            d_t = jax.jacfwd(lambda s: run(leaves, s)[0])(s_flat)
            d_aug = jnp.concatenate([d_t, g_state[None, :].astype(d_t.dtype)], axis=0)
            d_aug = jnp.pad(d_aug, ((0, 0), (0, 1)))
            immediate = dict(zip(local, _immediate(run, leaves, s_flat, local, _components(carry.state))))
            immediate.update(zip(dense, _immediate(run, leaves, s_flat, dense, jnp.eye(size, dtype=s_flat.dtype))))
            for i, m_prev in zip(rec, carry.influence):
                prod = d_aug @ m_prev  # [S + 1, p_l]
                if axes[i] is None:
                    new = prod + jnp.pad(immediate[i].reshape(size, -1), ((0, 1), (0, 0)))
                else:
                    new = _add_unit_local(prod, immediate[i], axes[i])
                blocks.append(new)
                grads[i] = g_leaves[i] + new[size].reshape(leaves[i].shape)
        new_carry = RTRLCarry(unravel_state(s_new), tuple(blocks))
        return new_carry, StepOutput(y, loss, jax.tree_util.tree_unflatten(treedef, grads))


def _components(state) -> Array:
    """``[m, S]``: row ``c`` is one on state component ``c``'s entries, zero elsewhere."""
    sizes = [a.size for a in jax.tree_util.tree_leaves(state)]
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(state))
    return jax.scipy.linalg.block_diag(*[jnp.ones((1, n), dtype) for n in sizes])


def _immediate(run, leaves, s_flat, which, cotangents) -> list:
    """Per leaf in ``which``: the vector-Jacobian products of the new state with respect
    to it, one per row of ``cotangents`` (``[rows, *leaf]``); ``[]`` when ``which`` is
    empty."""
    if not which:
        return []

    def state_of(chosen):
        full = list(leaves)
        for i, a in zip(which, chosen):
            full[i] = a
        return run(full, s_flat)[0]

    _, vjp = jax.vjp(state_of, [leaves[i] for i in which])
    (out,) = jax.vmap(vjp)(cotangents)
    return out
