"""The online LRU: exactness where promised, the ablations, streaming memory."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlax as rx

LOSS = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-300))


def data(seed, T, n_in, n_out):
    xs = jax.random.normal(jax.random.key(100 + seed), (T, n_in))
    ts = jax.random.normal(jax.random.key(200 + seed), (T, n_out))
    return xs, ts


def net(n_layers, seed, pool=False):
    return rx.LRUNet(
        3, 2, d_model=6, d_hidden=5, n_layers=n_layers, key=jax.random.key(seed),
        r_min=0.5, r_max=0.99, pool=pool,
    )  # fmt: skip


def assert_close(online, exact, tol=1e-10):
    for a, b in zip(jax.tree_util.tree_leaves(online), jax.tree_util.tree_leaves(exact)):
        assert rel_err(a, b) <= tol, rel_err(a, b)


@pytest.mark.parametrize("seed", [0, 1])
def test_single_lru_layer_is_exact(seed):
    layer = rx.LRU(3, 4 + seed, key=jax.random.key(seed), r_min=0.3, r_max=0.99)
    xs, ts = data(seed, 30, 3, 3)
    exact, _ = rx.accumulate_grads(rx.BPTT(), layer, xs, ts, LOSS)
    online, _ = rx.accumulate_grads(rx.OnlineLRU(), layer, xs, ts, LOSS)
    assert_close(online, exact)


@pytest.mark.parametrize("seed, pool", [(1, True)])
def test_single_layer_network_is_exact_above_the_recurrence(seed, pool):
    """One block: every parameter at or above the LRU (λ, γ, B, C, D, GLU, decoder) is
    exact.  The encoder and the block's LayerNorm sit *below* the only recurrence: their
    exact gradient needs temporal credit, and the online rule gives them the spatial
    (instantaneous) one, as in the paper — asserted to differ."""
    model = net(1, seed, pool)
    xs, ts = data(seed, 20, 3, 2)
    exact, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, LOSS)
    online, _ = rx.accumulate_grads(rx.OnlineLRU(), model, xs, ts, LOSS)
    block_e, block_o = exact.blocks[0], online.blocks[0]
    assert_close(block_o.lru, block_e.lru)
    assert_close(block_o.glu, block_e.glu)
    assert_close(online.decoder, exact.decoder)
    assert rel_err(online.encoder.weight, exact.encoder.weight) > 1e-3
    assert rel_err(block_o.norm.weight, block_e.norm.weight) > 1e-3


@pytest.mark.parametrize("n_layers, seed", [(2, 0), (3, 1)])
def test_last_layer_of_a_stack_is_exact(n_layers, seed):
    model = net(n_layers, seed)
    xs, ts = data(seed, 20, 3, 2)
    exact, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, LOSS)
    online, _ = rx.accumulate_grads(rx.OnlineLRU(), model, xs, ts, LOSS)
    last_e, last_o = exact.blocks[-1], online.blocks[-1]
    assert_close(last_o.lru.core, last_e.lru.core)  # λ (ν, θ), γ, B
    assert_close(last_o.lru.C_re, last_e.lru.C_re)
    assert_close(last_o.glu, last_e.glu)
    assert_close(online.decoder, exact.decoder)
    # below the last layer the rule is an approximation (no temporal credit between layers)
    first_o, first_e = online.blocks[0].lru.core, exact.blocks[0].lru.core
    assert rel_err(first_o.weight_ih, first_e.weight_ih) > 1e-4
    # ... but a good one: the recurrent gradients of the lower layers stay well aligned
    a, b = first_o.weight_ih.ravel(), first_e.weight_ih.ravel()
    assert float(a @ b / jnp.linalg.norm(a) / jnp.linalg.norm(b)) > 0.5


def test_lru_core_with_readout_is_exact():
    model = rx.Readout(rx.LRUCore(3, 6, key=jax.random.key(7), r_min=0.4), 2, key=jax.random.key(8))
    xs, ts = data(7, 25, 3, 2)
    exact, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, LOSS)
    online, _ = rx.accumulate_grads(rx.OnlineLRU(), model, xs, ts, LOSS)
    assert_close(online, exact)


def test_online_lru_is_snap1():
    model = net(2, 3)
    xs, ts = data(3, 15, 3, 2)
    a, la = rx.accumulate_grads(rx.OnlineLRU(), model, xs, ts, LOSS)
    b, lb = rx.accumulate_grads(rx.SnAp(1), model, xs, ts, LOSS)
    assert_close(a, b, 1e-13)
    np.testing.assert_allclose(la, lb, rtol=1e-13)


def test_spatial_gives_zero_lambda_gradient_and_immediate_B():
    layer = rx.LRU(3, 5, key=jax.random.key(4), r_min=0.5, r_max=0.99)
    xs, ts = data(4, 12, 3, 3)
    spatial, _ = rx.accumulate_grads(rx.OnlineLRU(horizon=0), layer, xs, ts, LOSS)
    assert float(jnp.max(jnp.abs(spatial.core.nu_log))) == 0.0
    assert float(jnp.max(jnp.abs(spatial.core.theta_log))) == 0.0
    assert float(jnp.max(jnp.abs(spatial.core.weight_ih))) > 0.0

    # reference: BPTT through the model with the recurrent term's gradient stopped
    class Stopped(eqx.Module):
        layer: rx.LRU

        def initial_state(self):
            return self.layer.initial_state()

        def __call__(self, state, u):
            core = self.layer.core
            frozen = jax.lax.stop_gradient(core.pointwise(jnp.zeros((2, 5)), None, state))
            ax, _ = core.preactivations(state, u)
            g = jnp.exp(core.gamma_log)
            h = (frozen[0] + g * ax[0], frozen[1] + g * ax[1])
            return h, self.layer.C_re @ h[0] - self.layer.C_im @ h[1] + self.layer.D * u

    ref, _ = rx.accumulate_grads(rx.BPTT(), Stopped(layer), xs, ts, LOSS)
    assert_close(spatial, ref.layer)
    # C and D are glue: identical under every variant
    full, _ = rx.accumulate_grads(rx.OnlineLRU(), layer, xs, ts, LOSS)
    np.testing.assert_allclose(spatial.C_re, full.C_re, rtol=1e-12)


def test_one_truncated_traces():
    """horizon=1: e^λ = h_{t-1}, e^γ = B u_t, e^B = γ u_tᵀ — i.e. BPTT with h_{t-1} held
    constant (gradient stopped on the previous state only)."""
    layer = rx.LRU(3, 5, key=jax.random.key(5), r_min=0.5, r_max=0.99)
    xs, ts = data(5, 12, 3, 3)
    trunc, _ = rx.accumulate_grads(rx.OnlineLRU(horizon=1), layer, xs, ts, LOSS)

    class Truncated(eqx.Module):
        layer: rx.LRU

        def initial_state(self):
            return self.layer.initial_state()

        def __call__(self, state, u):
            return self.layer(jax.lax.stop_gradient(state), u)

    ref, _ = rx.accumulate_grads(rx.BPTT(), Truncated(layer), xs, ts, LOSS)
    assert_close(trunc, ref.layer)
    assert float(jnp.max(jnp.abs(trunc.core.nu_log))) > 0.0


def test_bad_configuration():
    with pytest.raises(ValueError, match="horizon"):
        rx.OnlineLRU(horizon=2)
    gru = rx.Readout(rx.GRU(2, 3, key=jax.random.key(0)), 1, key=jax.random.key(1))
    with pytest.raises(ValueError, match="LRU cores"):
        rx.OnlineLRU().init(gru)


def test_streaming_carry_is_independent_of_stream_length():
    """The carry after 3 or 40 steps has the same leaves (no per-step storage).  The
    steps run in a Python loop, not a ``lax.scan`` (whose carry could not change shape
    whatever the estimator did), so a carry that grew with the steps would show here."""
    model = net(2, 0)
    est = rx.OnlineLRU()
    carry = est.init(model)
    step = eqx.filter_jit(lambda c, x, t: est.step(model, c, x, t, LOSS)[0])

    def run(T):
        xs, ts = data(0, T, 3, 2)
        c = carry
        for t in range(T):
            c = step(c, xs[t], ts[t])
        return c

    def layout(c):
        return jax.tree_util.tree_structure(c), [leaf.shape for leaf in jax.tree_util.tree_leaves(c)]

    assert layout(run(3)) == layout(run(40)) == layout(carry)
    n_numbers = sum(leaf.size for leaf in jax.tree_util.tree_leaves(run(40)))
    N, H, layers = 5, 6, 2
    # per layer: state 2N + traces e^λ, e^γ (2N each) and e^B (2NH); nothing else
    assert n_numbers == layers * (2 * N + 4 * N + 2 * N * H)
