"""EGRU activity sparsity: the activity regulariser's term and gradient, and the
pseudo-derivative window that sets the backward activity (that SparseRTRL processes
exactly the backward-active units is tested in test_sparse_rtrl.py)."""

import jax
import jax.numpy as jnp

import rtrlax as rx


def test_firing_rate_value_and_gradient():
    cell = rx.EGRU(2, 6, key=jax.random.key(0), threshold_init=0.2, pseudo_derivative=0.5, pseudo_width=0.3)
    c = jnp.array([-0.5, 0.0, 0.15, 0.25, 0.45, 1.0])
    state = (c, jnp.where(c > 0.2, c, 0.0))
    assert jnp.isclose(cell.firing_rate(state), 3 / 6)
    g_c = jax.grad(lambda c: cell.firing_rate((c, state[1])))(c)
    pd = 0.5 * jnp.maximum(0.0, 1 - jnp.abs(c - 0.2) / 0.3) / 6
    assert jnp.allclose(g_c, pd) and int(jnp.sum(g_c > 0)) == 4  # only inside the window
    g_th = jax.grad(lambda m: m.firing_rate(state))(cell).threshold  # raising ϑ lowers the rate
    assert jnp.allclose(g_th, -pd)


def test_window_width_sets_backward_activity():
    c = jnp.linspace(-1.0, 1.5, 26)
    for width, want in ((1.0, jnp.abs(c - 0.3) < 1.0), (0.1, jnp.abs(c - 0.3) < 0.1)):
        cell = rx.EGRU(2, 26, key=jax.random.key(0), pseudo_width=width)
        state = (c, jnp.where(c > 0.3, c, 0.0))
        assert jnp.array_equal(cell.fired(state), c > 0.3)
        assert jnp.array_equal(cell.backward_active(state), (c > 0.3) | want)
    narrow = rx.EGRU(2, 26, key=jax.random.key(0), pseudo_width=0.1)
    wide = rx.EGRU(2, 26, key=jax.random.key(0), pseudo_width=1.0)
    silent = ~narrow.fired(state)
    assert int(jnp.sum(narrow.backward_active(state) & silent)) < int(jnp.sum(wide.backward_active(state) & silent))
