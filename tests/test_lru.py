"""The LRU cell and layer: parameterisation, initialisation, and a complex reference."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlax as rx
from rtrlax.cells.lru import LRU, LRUCore, lambda_parts


def complex_reference(layer, xs):
    """The LRU written directly in complex arithmetic (independent of the gated form)."""
    core = layer.core
    lam = jnp.exp(-jnp.exp(core.nu_log) + 1j * jnp.exp(core.theta_log))
    gamma = jnp.exp(core.gamma_log)
    B = core.weight_ih[0] + 1j * core.weight_ih[1]
    C = layer.C_re + 1j * layer.C_im

    def body(h, u):
        h = lam * h + gamma * (B @ u)
        return h, ((C @ h).real + layer.D * u, h)

    _, (ys, hs) = jax.lax.scan(body, jnp.zeros(core.hidden_size, complex), xs)
    return ys, hs


def test_ring_initialisation():
    core = LRUCore(4, 2000, key=jax.random.key(0), r_min=0.4, r_max=0.9, max_phase=math.pi / 4)
    lam_re, lam_im = lambda_parts(core.nu_log, core.theta_log)
    modulus = np.asarray(jnp.hypot(lam_re, lam_im))
    phase = np.asarray(jnp.exp(core.theta_log))
    assert modulus.min() >= 0.4 - 1e-9 and modulus.max() <= 0.9 + 1e-9
    assert phase.min() >= 0 and phase.max() <= math.pi / 4 + 1e-9
    # uniform over the annulus: |λ|² uniform on [r_min², r_max²] (mean of |λ|² at the midpoint)
    assert abs(np.mean(modulus**2) - (0.4**2 + 0.9**2) / 2) < 0.02
    np.testing.assert_allclose(np.exp(2 * np.asarray(core.gamma_log)), 1 - modulus**2, rtol=1e-12)
    # B ~ N(0, 1/(2H)) for each of the real and imaginary parts
    assert abs(float(jnp.var(core.weight_ih)) - 1 / 8) < 0.01
    # every stored parameter is real
    for leaf in jax.tree_util.tree_leaves(eqx.filter(core, eqx.is_inexact_array)):
        assert not jnp.iscomplexobj(leaf)


@pytest.mark.parametrize("seed", [0])
def test_layer_matches_complex_reference(seed):
    layer = LRU(3, 6, key=jax.random.key(seed), r_min=0.5, r_max=0.99)
    xs = jax.random.normal(jax.random.key(10 + seed), (25, 3))

    def run(state, x):
        state, y = layer(state, x)
        return state, (y, state[0] + 1j * state[1])

    _, (ys, hs) = jax.lax.scan(run, layer.initial_state(), xs)
    ys_ref, hs_ref = complex_reference(layer, xs)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-12, atol=1e-12)
    assert layer.cores() == (layer.core,)
    assert len(layer.core.initial_state()) == 2


def test_B_gradient_convention_against_jax_grad():
    """ALGORITHMS.md §6: ∂L/∂B_re = Re(Σ δ̄_t ⊙ e^B_t), ∂L/∂B_im = −Im(·), where δ̄ is JAX's
    (conjugate) cotangent of the complex state and e^B the complex trace."""
    layer = LRU(3, 5, key=jax.random.key(3), r_min=0.6, r_max=0.95)
    xs = jax.random.normal(jax.random.key(4), (20, 3))
    targets = jax.random.normal(jax.random.key(5), (20, 3))
    loss = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
    core = layer.core
    lam = jnp.exp(-jnp.exp(core.nu_log) + 1j * jnp.exp(core.theta_log))
    gamma = jnp.exp(core.gamma_log)
    C = layer.C_re + 1j * layer.C_im

    _, hs = complex_reference(layer, xs)
    # δ̄_t = jax.grad of ℓ_t with respect to the complex h_t
    delta = jax.vmap(jax.grad(lambda h, u, t: loss((C @ h).real + layer.D * u, t)))(hs, xs, targets)

    def trace(e, u):
        e = lam[:, None] * e + gamma[:, None] * u[None, :]
        return e, e

    _, es = jax.lax.scan(trace, jnp.zeros((5, 3), complex), xs)
    total = jnp.einsum("tn,tnh->nh", delta, es)
    by_formula = (total.real, -total.imag)

    def summed(w):
        ys, _ = complex_reference(eqx.tree_at(lambda m: m.core.weight_ih, layer, w), xs)
        return jnp.sum(jax.vmap(loss)(ys, targets))

    g = jax.grad(summed)(layer.core.weight_ih)
    np.testing.assert_allclose(by_formula[0], g[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(by_formula[1], g[1], rtol=1e-10, atol=1e-12)
    # and the online estimator (SnAp-1 traces on the gated form) agrees
    g_online, _ = rx.accumulate_grads(rx.OnlineLRU(), layer, xs, targets, loss)
    np.testing.assert_allclose(g_online.core.weight_ih, g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(r_min=0.9, r_max=0.5), "r_min < r_max"),
        (dict(r_max=1.0), "r_min < r_max"),
        (dict(max_phase=0.0), "max_phase"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRU(3, 4, key=jax.random.key(0), **kwargs)


def test_bad_input_shape_is_rejected():
    layer = LRU(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="unbatched input of shape"):
        layer(layer.initial_state(), jnp.zeros((2, 3)))


def test_lrunet_contract():
    net = rx.LRUNet(2, 3, d_model=8, d_hidden=4, n_layers=3, key=jax.random.key(0))
    state = net.initial_state()
    assert len(net.cores()) == 3 and all(isinstance(c, LRUCore) for c in net.cores())
    state, y = net(state, jnp.ones(2))
    assert y.shape == (3,)
    called = []

    def core_call(core, s, u):
        called.append(core)
        return core.update(s, u)

    _, y2 = net.forward(net.initial_state(), jnp.ones(2), core_call=core_call)
    np.testing.assert_allclose(y, y2)
    assert len(called) == 3 and all(a is b for a, b in zip(called, net.cores()))
    with pytest.raises(ValueError, match="n_layers"):
        rx.LRUNet(2, 3, d_model=8, d_hidden=4, n_layers=0, key=jax.random.key(0))


def test_lrunet_pooling_is_running_mean():
    net = rx.LRUNet(2, 3, d_model=8, d_hidden=4, n_layers=1, key=jax.random.key(1), pool=True)
    plain = rx.LRUNet(2, 3, d_model=8, d_hidden=4, n_layers=1, key=jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (7, 2))

    def run(model):
        def body(state, x):
            state, y = model(state, x)
            return state, y

        return jax.lax.scan(body, model.initial_state(), xs)[1]

    ys, ys_plain = run(net), run(plain)
    # the decoder is affine, so the pooled output is the running mean of the per-step outputs
    means = jnp.cumsum(ys_plain, 0) / jnp.arange(1, 8)[:, None]
    np.testing.assert_allclose(ys, means, rtol=1e-10, atol=1e-12)
