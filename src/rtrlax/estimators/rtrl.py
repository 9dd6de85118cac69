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

* ``M`` is stored as one block ``[S, p_l]`` per recurrent parameter leaf ``l``, never
  as one state × all-parameters matrix; which leaves are recurrent is read from the
  traced computation (a leaf is recurrent when the new state depends on it).
* Each block is read once per step: the row :math:`g_t` is appended to :math:`D_t`, so
  one product :math:`[D_t; g_t] M^l_{t-1}` gives both the update's :math:`D_t M^l_{t-1}`
  and the gradient's :math:`g_t M^l_{t-1}`.
* The immediate term :math:`\\bar I^l_t` is formed per leaf (``S`` vector-Jacobian
  products of the step) and added to its block as the block is written.

Memory ``S·p_r`` (≈ k³ for a dense RNN); time ``S²·p_r`` per step (≈ k⁴, the
"quartic" cost) — the reference every other estimator is measured against, practical
for small models only.  Where a learner jits many steps (``lax.scan``) the blocks are
updated in the loop's own buffers; a caller that jits single steps should donate the
carry (``jax.jit(..., donate_argnums=...)``) so the old blocks' memory is reused.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.extend.core import Literal
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._types import State
from .base import AbstractOnlineEstimator, StepOutput, split_params


class RTRLCarry(NamedTuple):
    state: State  #: s_t
    #: M_t, one block ``[S, leaf.size]`` per recurrent parameter leaf (in leaf order of
    #: ``eqx.filter(model, eqx.is_inexact_array)``; non-recurrent leaves have none)
    influence: tuple[Float[Array, "state leaf"], ...]


def _state_inputs(jaxpr, n_leaves: int, n_state_out: int) -> tuple[bool, ...]:
    """Which of the first ``n_leaves`` inputs of ``jaxpr`` the first ``n_state_out``
    outputs depend on (a forward walk; every equation's outputs are taken to depend on
    all its inputs, so the answer may only err towards "depends")."""
    deps: dict = {v: frozenset([i]) for i, v in enumerate(jaxpr.invars)}
    for eqn in jaxpr.eqns:
        d = frozenset().union(*(deps.get(v, frozenset()) for v in eqn.invars if not isinstance(v, Literal)))
        for v in eqn.outvars:
            deps[v] = d
    used = frozenset().union(
        *(deps.get(v, frozenset()) for v in jaxpr.outvars[:n_state_out] if not isinstance(v, Literal))
    )
    return tuple(i in used for i in range(n_leaves))


def recurrent_leaves(model, x=None) -> tuple[bool, ...]:
    """Per parameter leaf of ``model`` (``eqx.filter(model, eqx.is_inexact_array)``
    order): whether the model's new state depends on it.  Needs an input: ``x``, or one
    of shape ``[model.input_size]``; without either every leaf counts as recurrent."""
    params, static = split_params(model)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if x is None:
        size = getattr(model, "input_size", None)
        if size is None:
            return (True,) * len(leaves)
        x = jax.ShapeDtypeStruct((size,), leaves[0].dtype if leaves else jnp.float32)
    state = model.initial_state()
    n_state = len(jax.tree_util.tree_leaves(state))

    def new_state(leaves, state, x):
        m = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        return jax.tree_util.tree_leaves(m(state, x)[0])

    spec = lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))  # noqa: E731
    closed = jax.make_jaxpr(new_state)(
        [spec(a) for a in leaves], jax.tree_util.tree_map(spec, state), spec(x)
    )
    return _state_inputs(closed.jaxpr, len(leaves), n_state)


class RTRL(AbstractOnlineEstimator):
    """Exact RTRL with a dense influence matrix per recurrent parameter leaf (see the
    module docstring)."""

    def init(self, model, *, key=None) -> RTRLCarry:
        params, _ = split_params(model)
        leaves = jax.tree_util.tree_leaves(params)
        state = model.initial_state()
        s_size = ravel_pytree(state)[0].size
        rec = recurrent_leaves(model)
        blocks = tuple(jnp.zeros((s_size, a.size), a.dtype) for a, r in zip(leaves, rec) if r)
        return RTRLCarry(state, blocks)

    def step(self, model, carry, x, target, loss_fn):
        params, static = split_params(model)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        with_x = None if getattr(model, "input_size", None) is None else x  # as init decides
        rec = [i for i, r in enumerate(recurrent_leaves(model, with_x)) if r]
        if len(rec) != len(carry.influence):
            raise ValueError(
                f"this RTRL carry has {len(carry.influence)} influence blocks but the model has "
                f"{len(rec)} recurrent parameter arrays: build the carry with RTRL().init(model) "
                "for this model."
            )
        s_flat, unravel_state = ravel_pytree(carry.state)
        size = s_flat.size

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
            # D_t: S forward-mode products; [D_t; g_t] reads each block of M_{t-1} once.
            d_t = jax.jacfwd(lambda s: run(leaves, s)[0])(s_flat)
            d_aug = jnp.concatenate([d_t, g_state[None, :].astype(d_t.dtype)], axis=0)

            # Ī_t per recurrent leaf: S vector-Jacobian products of the step.
            def state_of(rec_leaves):
                full = list(leaves)
                for i, a in zip(rec, rec_leaves):
                    full[i] = a
                return run(full, s_flat)[0]

            _, vjp = jax.vjp(state_of, [leaves[i] for i in rec])
            (immediate,) = jax.vmap(vjp)(jnp.eye(size, dtype=s_flat.dtype))
            for i, m_prev, i_t in zip(rec, carry.influence, immediate):
                prod = d_aug @ m_prev  # [S + 1, p_l]
                blocks.append(prod[:size] + i_t.reshape(size, -1))
                grads[i] = g_leaves[i] + prod[size].reshape(leaves[i].shape)
        new_carry = RTRLCarry(unravel_state(s_new), tuple(blocks))
        return new_carry, StepOutput(y, loss, jax.tree_util.tree_unflatten(treedef, grads))
