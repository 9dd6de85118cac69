import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx
from helpers import CELLS


@pytest.mark.parametrize("name", sorted(CELLS))
def test_contract_shapes_and_state(name):
    cell = CELLS[name](3, 6, key=jax.random.key(0))
    s0 = cell.initial_state()
    assert all(jnp.all(a == 0) for a in jax.tree_util.tree_leaves(s0))
    s1, y1 = cell(s0, jnp.ones(3))
    assert jax.tree_util.tree_structure(s1) == jax.tree_util.tree_structure(s0)
    assert y1.shape == (6,)
    assert not jnp.allclose(y1, 0.0)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_masks_are_fixed_and_exact_fraction(name):
    cell = CELLS[name](8, 10, key=jax.random.key(1), density=0.3, input_density=0.5)
    g = cell.weight_ih.shape[0]
    assert cell.mask_hh.dtype == jnp.bool_
    assert int(cell.mask_hh.sum()) == g * round(0.3 * 100)
    assert int(cell.mask_ih.sum()) == g * round(0.5 * 80)
    assert jnp.all(jnp.where(cell.mask_hh, 0.0, cell.weight_hh) == 0)
    assert jnp.all(jnp.where(cell.mask_ih, 0.0, cell.weight_ih) == 0)
    # masks are not trainable: no gradient leaves for them
    params = eqx.filter(cell, eqx.is_inexact_array)
    assert params.mask_hh is None and params.mask_ih is None


@pytest.mark.parametrize("name", sorted(CELLS))
def test_masked_weights_get_zero_gradient(name):
    cell = CELLS[name](4, 5, key=jax.random.key(2), density=0.4, input_density=0.6)
    xs = jax.random.normal(jax.random.key(3), (6, 4))
    grads, _ = rx.accumulate_grads(rx.BPTT(), cell, xs, jnp.ones((6, 5)), lambda y, t: jnp.sum(y * t))
    assert jnp.all(jnp.where(cell.mask_hh, 0.0, grads.weight_hh) == 0)
    assert jnp.all(jnp.where(cell.mask_ih, 0.0, grads.weight_ih) == 0)
    assert jnp.any(grads.weight_hh != 0)


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan")])
def test_density_outside_unit_interval_is_rejected(density):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        rx.GRU(3, 4, key=jax.random.key(0), density=density)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        rx.LSTM(3, 4, key=jax.random.key(0), input_density=density)


def test_wrong_input_shape_is_a_clear_error():
    cell = rx.GRU(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        cell(cell.initial_state(), jnp.ones(5))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        cell(cell.initial_state(), jnp.ones((2, 3)))


def test_bad_sizes_rejected():
    with pytest.raises(ValueError, match="hidden_size"):
        rx.VanillaRNN(3, 0, key=jax.random.key(0))


def test_gru_matches_reference_equations():
    cell = rx.GRU(2, 3, key=jax.random.key(4))
    h = jnp.array([0.1, -0.2, 0.3])
    x = jnp.array([0.5, -1.0])
    wi, wh, bi, bh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    r = jax.nn.sigmoid(wi[0] @ x + bi[0] + wh[0] @ h + bh[0])
    z = jax.nn.sigmoid(wi[1] @ x + bi[1] + wh[1] @ h + bh[1])
    n = jnp.tanh(wi[2] @ x + bi[2] + r * (wh[2] @ h + bh[2]))
    (h_new,), y = cell((h,), x)
    assert jnp.allclose(h_new, (1 - z) * n + z * h, atol=1e-12)
    assert jnp.allclose(y, h_new)


def test_batching_with_vmap():
    cell = rx.LSTM(3, 4, key=jax.random.key(0))
    s0 = jax.tree_util.tree_map(lambda a: jnp.stack([a] * 5), cell.initial_state())
    s1, y = jax.vmap(cell)(s0, jnp.ones((5, 3)))
    assert y.shape == (5, 4) and s1[1].shape == (5, 4)
