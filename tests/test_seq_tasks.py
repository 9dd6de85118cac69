"""Sequence-classification tasks: sequential digits and the ListOps generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrlax.tasks import digits, listops


def test_sequential_digits_split_and_scaling():
    xs, ys = digits.sequential_digits("train", seed=0)
    xt, yt = digits.sequential_digits("test", seed=0)
    assert xs.shape[1:] == (64, 1) and xt.shape[1:] == (64, 1)
    assert xs.shape[0] + xt.shape[0] == 1797 and xt.shape[0] == round(0.2 * 1797)
    assert 0.0 <= xs.min() and xs.max() == 1.0
    assert set(np.unique(ys)) == set(range(10))
    # pixel order: row by row
    from sklearn.datasets import load_digits

    xa, _ = digits.sequential_digits("all")
    np.testing.assert_allclose(xa[5, 8:16, 0], load_digits().images[5, 1] / 16.0)
    # the same seed gives the same split; another seed another
    xs2, _ = digits.sequential_digits("train", seed=0)
    np.testing.assert_array_equal(xs, xs2)
    assert not np.array_equal(digits.sequential_digits("train", seed=1)[1], ys)
    with pytest.raises(ValueError, match="split"):
        digits.sequential_digits("valid")


def test_class_targets_and_loss():
    t = digits.class_targets(jnp.array([3, 7]), 5, every_step=False)
    assert t.label.shape == (2, 5) and float(t.weight[0, -1]) == 1.0 and float(t.weight[0, 0]) == 0.0
    logits = jnp.log(jnp.array([0.1, 0.2, 0.7]))
    loss = digits.class_loss(logits, digits.ClassTarget(jnp.array(2), jnp.array(1.0)))
    assert abs(float(loss) + np.log(0.7)) < 1e-6
    assert float(digits.class_loss(logits, digits.ClassTarget(jnp.array(2), jnp.array(0.0)))) == 0.0


def test_listops_evaluation_by_hand():
    cases = {
        "[MAX 2 9 [MIN 4 7 ] 0 ]": 9,
        "[MIN 4 7 ]": 4,
        "[MED 1 9 2 ]": 2,
        "[MED 1 9 2 8 ]": 5,  # median 5.0
        "[MED 1 2 ]": 1,  # median 1.5, rounded down
        "[SM 9 8 7 ]": 4,
        "[SM [MAX 3 5 ] [MED 9 9 1 ] 1 ]": 5,
    }
    for text, value in cases.items():
        assert listops.evaluate(listops.parse(text.split())) == value, text


def test_listops_generator_constraints_and_determinism():
    kw = dict(seed=3, max_length=60, min_length=10, max_depth=4, max_args=5, operator_prob=0.4)
    tokens, lengths, labels = listops.listops(100, **kw)
    tokens2, _, labels2 = listops.listops(100, **kw)
    np.testing.assert_array_equal(tokens, tokens2)
    np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(listops.listops(100, **{**kw, "seed": 4})[0], tokens)
    assert tokens.shape == (100, 60) and tokens.dtype == np.int32
    assert lengths.min() >= 10 and lengths.max() <= 60
    for row, n, label in zip(tokens, lengths, labels):
        toks = listops.decode(row)
        assert len(toks) == n and np.all(row[n:] == listops.PAD)
        tree = listops.parse(toks)
        assert listops.evaluate(tree) == label
        assert listops.depth_of(tree) <= 4
        stack = [tree]
        while stack:
            node = stack.pop()
            if not isinstance(node, int):
                assert 2 <= len(node[1]) <= 5
                stack.extend(node[1])
    assert len(np.unique(labels)) >= 8  # all sorts of answers, not a constant


def test_listops_rejects_bad_configuration():
    with pytest.raises(ValueError, match="max_args"):
        listops.listops(3, max_args=1)
    with pytest.raises(ValueError, match="min_length"):
        listops.listops(3, min_length=50, max_length=10)
    with pytest.raises(ValueError, match="could not draw"):
        listops.listops(2, max_length=3, min_length=3, max_depth=1, operator_prob=0.0)


def test_pooled_lrunet_learns_digits_a_little():
    """Smoke: a few Adam steps with OnlineLRU on digits lower the loss (pooling + loss)."""
    import equinox as eqx
    import optax

    import rtrlax as rx

    xs, ys = digits.sequential_digits("train")
    xs, ys = jnp.asarray(xs[:32], jnp.float64), jnp.asarray(ys[:32])
    targets = digits.class_targets(ys, 64)
    model = rx.LRUNet(1, 10, d_model=8, d_hidden=8, n_layers=1, key=jax.random.key(0), pool=True)
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def update(model, state):
        def one(x, t):
            return rx.accumulate_grads(rx.OnlineLRU(), model, x, t, digits.class_loss)

        grads, losses = jax.vmap(one)(xs, targets)
        grads = jax.tree_util.tree_map(lambda g: g.mean(0), grads)
        upd, state = opt.update(grads, state)
        return eqx.apply_updates(model, upd), state, losses.mean()

    losses = []
    for _ in range(8):
        model, state, loss = update(model, state)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
