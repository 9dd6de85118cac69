"""Shared test utilities: models, sequences and gradient comparison."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import rtrlax as rx

CELLS = {"vanilla": rx.VanillaRNN, "gru": rx.GRU, "lstm": rx.LSTM}


def mse(y, t):
    return jnp.sum((y - t) ** 2)


def make_cell(name, d_in, hidden, seed, density=1.0, input_density=1.0):
    return CELLS[name](
        d_in, hidden, key=jax.random.key(seed), density=density, input_density=input_density
    )


def sequence(seed, steps, d_in, d_out):
    kx, kt = jax.random.split(jax.random.key(1000 + seed))
    return jax.random.normal(kx, (steps, d_in)), jax.random.normal(kt, (steps, d_out))


def flat(tree):
    return ravel_pytree(tree)[0]


def rel_err(a, b):
    a, b = flat(a), flat(b)
    return float(jnp.linalg.norm(a - b) / jnp.maximum(jnp.linalg.norm(b), 1e-300))


def bptt(model, xs, ts, loss_fn=mse):
    return rx.accumulate_grads(rx.BPTT(), model, xs, ts, loss_fn)


def diagonal_recurrence(cell):
    """The same cell with its recurrent mask set to the identity (element-wise recurrence)."""
    g, k, _ = cell.weight_hh.shape
    eye = jnp.broadcast_to(jnp.eye(k, dtype=bool), (g, k, k))
    cell = eqx.tree_at(lambda c: c.mask_hh, cell, eye, is_leaf=lambda x: x is None)
    return eqx.tree_at(lambda c: c.weight_hh, cell, jnp.where(eye, cell.weight_hh, 0.0))
