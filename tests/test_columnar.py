"""Columnar cell and ColoR: exactness at ρ = 0, approximation at ρ > 0, structure."""

import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from rtrlax.cells.columnar import Columnar
from rtrlax.nets.columnar import columnar_network
from rtrlax.estimators.color import ColoR


def _rel(a, b):
    a, _ = ravel_pytree(a)
    b, _ = ravel_pytree(b)
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def _loss(y, t):
    return jnp.sum((y - t) ** 2)


@pytest.mark.parametrize("n,d,out,seed", [(1, 3, 1, 0), (4, 5, 1, 1), (9, 2, 3, 2)])
def test_color_equals_bptt_at_rho_zero(n, d, out, seed):
    keys = jax.random.split(jax.random.key(seed), 4)
    model = rx.Readout(Columnar(d, n, key=keys[0]), out, key=keys[1])
    xs = jax.random.normal(keys[2], (25, d))
    ts = jax.random.normal(keys[3], (25, out))
    g_color, l1 = rx.accumulate_grads(ColoR(), model, xs, ts, _loss)
    g_bptt, l2 = rx.accumulate_grads(rx.BPTT(), model, xs, ts, _loss)
    assert _rel(g_color, g_bptt) <= 1e-10
    assert jnp.allclose(l1, l2)
    # each column's own recurrent weights do learn
    assert jnp.abs(g_color.core.weight_self).sum() > 0


@pytest.mark.slow  # benchmarks/gradient_alignment.py measures this over 50 networks per density
def test_color_is_biased_for_cross_column_connections():
    keys = jax.random.split(jax.random.key(7), 4)
    model = rx.Readout(Columnar(4, 8, density=0.5, key=keys[0]), 1, key=keys[1])
    xs = jax.random.bernoulli(keys[2], 0.5, (30, 4)).astype(jnp.float64)
    ts = jax.random.normal(keys[3], (30, 1))
    g_color, _ = rx.accumulate_grads(ColoR(), model, xs, ts, _loss)
    g_bptt, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, _loss)
    err = _rel(g_color, g_bptt)
    assert 1e-6 < err < 0.5  # an approximation, but a close one


def test_columnar_mask_structure():
    cell = Columnar(3, 10, density=0.3, key=jax.random.key(0))
    mask = cell.mask_hh  # the cross-column connections only
    assert mask.shape == (4, 10, 10) and cell.weight_self.shape == (4, 10)
    assert not bool(jnp.any(jnp.diagonal(mask, axis1=1, axis2=2)))
    assert bool(jnp.all(mask == mask[0]))  # same connections for every gate
    assert 0 < int(mask[0].sum()) < 90
    assert jnp.all(jnp.where(mask, 0.0, cell.weight_hh) == 0)
    plain = Columnar(3, 10, key=jax.random.key(0))  # ρ = 0: no k × k weight at all
    assert plain.weight_hh is None and plain.mask_hh is None
    s, y = plain(plain.initial_state(), jnp.ones(3))
    assert y.shape == (10,) and len(s) == 2


def test_columnar_step_is_the_column_lstm():
    # a = W_ih x + w_self ⊙ h_i + W_hh h + b per column, then the LSTM update
    cell = Columnar(3, 6, density=0.4, key=jax.random.key(2))
    h, c = jax.random.normal(jax.random.key(3), (2, 6))
    x = jax.random.normal(jax.random.key(4), (3,))
    a = cell.weight_ih @ x + cell.weight_self * h + cell.weight_hh @ h + cell.bias_ih
    sig = jax.nn.sigmoid
    c_new = sig(a[1]) * c + sig(a[0]) * jnp.tanh(a[2])
    (h_t, c_t), y = cell((h, c), x)
    assert jnp.allclose(c_t, c_new) and jnp.allclose(h_t, sig(a[3]) * jnp.tanh(c_new))
    assert jnp.allclose(y, h_t)


def test_columnar_network_readout_starts_at_zero():
    net = columnar_network(5, 6, key=jax.random.key(1))
    assert float(jnp.abs(net.weight).sum()) == 0.0
    _, y = net(net.initial_state(), jnp.ones(5))
    assert y.shape == (1,) and float(y[0]) == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="density"):
        Columnar(3, 4, density=1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="n_columns"):
        Columnar(3, 0, key=jax.random.key(0))
    lstm = rx.Readout(rx.LSTM(3, 4, key=jax.random.key(0)), 1, key=jax.random.key(1))
    with pytest.raises(ValueError, match="Columnar"):
        ColoR().init(lstm)
