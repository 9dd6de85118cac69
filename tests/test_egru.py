"""EGRU: the cell's equations, its pseudo-derivative, masks, and exact gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx
from rtrlax.cells.egru import heaviside


def _loss(y, t):
    return jnp.sum((y - t) ** 2)


def _relerr(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    num = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(la, lb)) ** 0.5
    return num / sum(float(jnp.sum(y**2)) for y in lb) ** 0.5


def test_step_matches_equations():
    cell = rx.EGRU(4, 6, key=jax.random.key(0), threshold_init=0.05)
    x = jax.random.normal(jax.random.key(1), (4,))
    c_tm1 = jnp.linspace(-0.5, 0.8, 6)
    y_tm1 = jnp.where(c_tm1 > 0.05, c_tm1, 0.0)
    (c, y), out = cell((c_tm1, y_tm1), x)
    w, v, b, bh, th = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, cell.threshold
    ax = w @ x + b
    ah = v @ y_tm1 + bh
    u = jax.nn.sigmoid(ax[0] + ah[0])
    r = jax.nn.sigmoid(ax[1] + ah[1])
    z = jnp.tanh(ax[2] + r * ah[2])
    want_c = u * (c_tm1 - (c_tm1 > th) * th) + (1 - u) * z
    assert jnp.allclose(c, want_c, atol=1e-14)
    assert jnp.allclose(y, jnp.where(want_c > th, want_c, 0.0), atol=1e-14)
    assert jnp.array_equal(out, y)
    assert jnp.allclose(cell.threshold, 0.05)


def test_pseudo_derivative():
    v = jnp.array([-2.0, -0.5, 0.0, 0.25, 0.9, 3.0])
    d = jax.vmap(jax.grad(lambda a: heaviside(a, 0.7, 1.0)))(v)
    assert jnp.allclose(d, 0.7 * jnp.maximum(0.0, 1 - jnp.abs(v)))
    d2 = jax.vmap(jax.grad(lambda a: heaviside(a, 0.3, 0.5)))(v)
    assert jnp.allclose(d2, 0.3 * jnp.maximum(0.0, 1 - jnp.abs(v) / 0.5))
    assert jnp.array_equal(heaviside(v, 0.7, 1.0), (v > 0).astype(v.dtype))


def test_masks_and_counts():
    cell = rx.EGRU(5, 20, key=jax.random.key(0), density=0.1, input_density=0.4)
    assert cell.kept_counts == (int(cell.mask_ih.sum()), int(cell.mask_hh.sum()))
    assert cell.kept_counts == (3 * 40, 3 * 40)
    assert jnp.all(jnp.where(cell.mask_hh, 0.0, cell.weight_hh) == 0)
    dense = rx.EGRU(5, 20, key=jax.random.key(0))
    assert dense.kept_counts == (300, 1200) and dense.mask_hh is None


def test_activity_is_sparse():
    cell = rx.EGRU(3, 32, key=jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (50, 3))

    def body(s, x):
        s, y = cell(s, x)
        return s, y

    _, ys = jax.lax.scan(body, cell.initial_state(), xs)
    fired = jnp.mean(ys != 0)
    assert 0.0 < fired < 0.6


@pytest.mark.parametrize("density", [1.0, 0.3])
def test_bptt_equals_rtrl(density):
    cell = rx.EGRU(3, 7, key=jax.random.key(2), density=density, threshold_init=0.0)
    xs = 2 * jax.random.normal(jax.random.key(3), (25, 3))
    ts = jax.random.normal(jax.random.key(4), (25, 7))
    gb, lb = rx.accumulate_grads(rx.BPTT(), cell, xs, ts, _loss)
    gr, lr = rx.accumulate_grads(rx.RTRL(), cell, xs, ts, _loss)
    assert jnp.allclose(lb, lr)
    assert _relerr(gr, gb) < 1e-10
    assert float(jnp.max(jnp.abs(gb.threshold))) > 0  # the threshold learns


def test_bad_arguments():
    with pytest.raises(ValueError, match="pseudo_width"):
        rx.EGRU(3, 4, key=jax.random.key(0), pseudo_width=0.0)
    with pytest.raises(ValueError, match="density"):
        rx.EGRU(3, 4, key=jax.random.key(0), density=0.0)
    with pytest.raises(ValueError, match="input"):
        rx.EGRU(3, 4, key=jax.random.key(0))(rx.EGRU(3, 4, key=jax.random.key(0)).initial_state(), jnp.zeros(2))


def test_is_a_module_with_static_config():
    cell = rx.EGRU(3, 4, key=jax.random.key(0), pseudo_derivative=0.5, pseudo_width=0.4)
    params = eqx.filter(cell, eqx.is_inexact_array)
    assert params.threshold.shape == (4,)
    assert cell.pseudo_derivative == 0.5 and cell.pseudo_width == 0.4
