"""``batch_step`` of the trace estimators (stream-mean gradient with the streams vmapped
inside one ``value_and_grad``) equals the default: vmap of ``step`` then the mean."""

import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx
from rtrlax.estimators.base import AbstractOnlineEstimator

KEY = jax.random.key(0)


def _loss(y, t):
    return jnp.sum((y - t) ** 2)


CASES = {
    "snap1-gru": lambda: (rx.SnAp(1), rx.Readout(rx.GRU(4, 5, key=KEY), 2, key=KEY)),
    "snap2-sparse-gru": lambda: (
        rx.SnAp(2),
        rx.Readout(rx.GRU(4, 5, key=KEY, density=0.5), 2, key=KEY),
    ),
    "color": lambda: (rx.ColoR(), rx.Readout(rx.Columnar(4, 5, key=KEY), 2, key=KEY)),
    "rflo": lambda: (rx.RFLO(), rx.Readout(rx.VanillaRNN(4, 5, key=KEY), 2, key=KEY)),
    "kf-rtrl": lambda: (rx.KFRTRL(), rx.Readout(rx.VanillaRNN(4, 5, key=KEY), 2, key=KEY)),
    "online-lru-2-layers": lambda: (
        rx.OnlineLRU(),
        rx.LRUNet(4, 2, d_model=6, d_hidden=3, n_layers=2, key=KEY),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_step_equals_mean_of_vmapped_steps(name, monkeypatch):
    if name == "snap1-gru":  # also the path for more streams than are summed term by term
        monkeypatch.setattr(rx.estimators._traces, "UNROLL_STREAMS", 2)
    est, model = CASES[name]()
    est = rx.estimators.base.bind_estimator(est, model)
    streams = 3
    carry = jax.vmap(lambda k: est.init(model, key=k))(jax.random.split(KEY, streams))
    xs = jax.random.normal(jax.random.key(1), (4, streams, 4))
    ts = jax.random.normal(jax.random.key(2), (4, streams, 2))
    for x, t in zip(xs, ts):
        c_ref, ref = AbstractOnlineEstimator.batch_step(est, model, carry, x, t, _loss)
        c_new, new = est.batch_step(model, carry, x, t, _loss)
        for a, b in zip(jax.tree_util.tree_leaves(ref.grads), jax.tree_util.tree_leaves(new.grads)):
            assert a.shape == b.shape
            assert float(jnp.max(jnp.abs(a - b))) <= 1e-12 * (1.0 + float(jnp.max(jnp.abs(a))))
        assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(ref.grads))
        assert jnp.allclose(ref.loss, new.loss, atol=1e-14, rtol=0)
        for a, b in zip(jax.tree_util.tree_leaves(c_ref), jax.tree_util.tree_leaves(c_new)):
            assert jnp.array_equal(a, b)
        carry = c_ref
