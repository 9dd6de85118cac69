"""Dense RTRL's storage: one influence block per recurrent parameter array, nothing
for the readout, and a step whose working memory is about one influence matrix."""

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrlax as rx
from rtrlax.estimators.rtrl import recurrent_leaves


def _mse(y, t):
    return jnp.sum((y - t) ** 2)


def test_influence_blocks_cover_the_recurrent_arrays_only():
    core = rx.GRU(3, 5, key=jax.random.key(0))
    net = rx.Readout(core, 2, key=jax.random.key(1))
    rec = recurrent_leaves(net)
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    core_ids = {id(a) for a in jax.tree_util.tree_leaves(eqx.filter(core, eqx.is_inexact_array))}
    assert rec == tuple(id(a) in core_ids for a in leaves)  # the readout's weight and bias: False
    carry = jax.eval_shape(lambda: rx.RTRL().init(net))
    assert [b.shape for b in carry.influence] == [(5, a.size) for a, r in zip(leaves, rec) if r]


def test_a_donated_batch_step_needs_about_one_influence_matrix_of_scratch():
    net = rx.Readout(rx.GRU(8, 32, key=jax.random.key(0), dtype=jnp.float32), 4, key=jax.random.key(1))
    est, b = rx.RTRL(), 2
    carry = jax.vmap(lambda _: est.init(net))(jnp.arange(b))
    x, t = jnp.ones((b, 8), jnp.float32), jnp.ones((b, 4), jnp.float32)
    step = jax.jit(lambda c, x, t: est.batch_step(net, c, x, t, _mse), donate_argnums=0)
    temp = step.lower(carry, x, t).compile().memory_analysis().temp_size_in_bytes
    m = sum(a.nbytes for a in carry.influence)
    # the product [D; g]·M needs one block-sized result; the old step (a dense
    # state x all-parameters immediate Jacobian, M read twice) needed about 3x M
    assert temp <= 1.25 * m, (temp, m)
