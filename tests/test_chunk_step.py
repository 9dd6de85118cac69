"""chunk_step (K steps at once, fixed parameters) equals K calls of step: SnAp-1 and ColoR
on every gated cell, dense and masked, single cells and stacks; the online LRU with
every horizon; batched over streams; bad input refused."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx

LOSS = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
key = jax.random.key


def k_steps(est, model, carry, xs, ts):
    def body(acc, xt):
        c, g = acc
        c, out = est.step(model, c, *xt, LOSS)
        return (c, jax.tree_util.tree_map(jnp.add, g, out.grads)), (out.y, out.loss)

    zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
    (carry, grads), (ys, losses) = jax.lax.scan(body, (carry, zero), (xs, ts))
    return carry, grads, ys, losses


def assert_close(a, b, tol):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        err = float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-300))
        assert err <= tol, err


MODELS = {
    "gru": lambda: rx.Readout(rx.GRU(3, 5, key=key(0)), 2, key=key(1)),
    "gru-masked": lambda: rx.Readout(rx.GRU(3, 6, key=key(2), density=0.5), 2, key=key(3)),
    "lstm": lambda: rx.Readout(rx.LSTM(3, 4, key=key(4)), 2, key=key(5)),
    "rnn": lambda: rx.Readout(rx.VanillaRNN(3, 5, key=key(6)), 2, key=key(7)),
    "egru": lambda: rx.Readout(rx.EGRU(3, 5, key=key(12)), 2, key=key(13)),
    "lrunet-2": lambda: rx.LRUNet(3, 2, d_model=4, d_hidden=3, n_layers=2, key=key(14)),
    "columnar": lambda: rx.columnar_network(3, 4, output_size=2, key=key(8)),
    "columnar-rho": lambda: rx.columnar_network(3, 4, output_size=2, density=0.5, key=key(9)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_snap1_chunk_step_equals_k_steps(name):
    """Carry (state and traces), outputs, losses and summed gradient, over two chunks
    (the second starts from the first's nonzero traces), float64."""
    model = MODELS[name]()
    ests = [rx.SnAp(1)] + ([rx.ColoR()] if name.startswith("columnar") else [])
    xs = jax.random.normal(key(10), (2, 6, 3))
    ts = jax.random.normal(key(11), (2, 6, 2))
    for est in ests:
        chunk = eqx.filter_jit(lambda c, x, t, est=est: est.chunk_step(model, c, x, t, LOSS))
        steps = eqx.filter_jit(lambda c, x, t, est=est: k_steps(est, model, c, x, t))
        c_chunk = c_steps = est.init(model)
        for i in range(2):
            c_chunk, out = chunk(c_chunk, xs[i], ts[i])
            c_steps, grads, ys, losses = steps(c_steps, xs[i], ts[i])
            assert_close(out.grads, grads, 1e-10)
            assert_close(c_chunk, c_steps, 1e-10)
            assert_close((out.y, out.loss), (ys, losses), 1e-12)


def test_batch_chunk_step_is_the_stream_mean():
    model = MODELS["lstm"]()
    est = rx.SnAp(1)
    xs = jax.random.normal(key(0), (3, 5, 3))
    ts = jax.random.normal(key(1), (3, 5, 2))
    carry = jax.vmap(lambda _: est.init(model))(jnp.arange(3))
    c_batch, out = est.batch_chunk_step(model, carry, xs, ts, LOSS)
    for b in range(3):
        c_b, out_b = est.chunk_step(model, jax.tree_util.tree_map(lambda a: a[b], carry), xs[b], ts[b], LOSS)
        assert_close(jax.tree_util.tree_map(lambda a: a[b], c_batch), c_b, 1e-12)
        assert_close(out.loss[b], out_b.loss, 1e-12)
    mean = jax.tree_util.tree_map(
        lambda *g: sum(g) / 3,
        *[est.chunk_step(model, jax.tree_util.tree_map(lambda a: a[b], carry), xs[b], ts[b], LOSS)[1].grads
          for b in range(3)],
    )  # fmt: skip
    assert_close(out.grads, mean, 1e-12)


def test_estimators_without_a_chunked_form_say_so():
    model = MODELS["gru"]()
    xs, ts = jnp.zeros((4, 3)), jnp.zeros((4, 2))
    est = rx.SnAp(2).bind(model)
    with pytest.raises(ValueError, match="no chunked form"):
        est.chunk_step(model, est.init(model), xs, ts, LOSS)


# --- the online LRU ------------------------------------------------------------------------


def lrunet(n_layers, seed, pool=False):
    return rx.LRUNet(
        3, 2, d_model=6, d_hidden=5, n_layers=n_layers, key=key(seed),
        r_min=0.5, r_max=0.99, pool=pool,
    )  # fmt: skip


def data(seed, T, n_in, n_out):
    return jax.random.normal(key(100 + seed), (T, n_in)), jax.random.normal(key(200 + seed), (T, n_out))


@pytest.mark.parametrize("horizon", [None, 1, 0])
@pytest.mark.parametrize(
    "make",
    [lambda: lrunet(3, 2), lambda: lrunet(2, 3, pool=True),
     lambda: rx.LRU(3, 4, key=key(5), r_min=0.3, r_max=0.99)],
    ids=["3-layers", "2-layers-pooled", "lru-layer"],
)  # fmt: skip
def test_online_lru_chunk_step_equals_k_steps(make, horizon):
    """K steps at once = K calls of step: carry (state and traces), outputs, losses and
    the summed gradient, over two chunks (the second starts from nonzero traces)."""
    model = make()
    est = rx.OnlineLRU(horizon=horizon)
    n_out = 2 if isinstance(model, rx.LRUNet) else 3
    xs, ts = data(4, 2 * 7, 3, n_out)
    chunk = eqx.filter_jit(lambda c, x, t: est.chunk_step(model, c, x, t, LOSS))
    steps = eqx.filter_jit(lambda c, x, t: k_steps(est, model, c, x, t))
    c_chunk = c_steps = est.init(model)
    for part in (slice(0, 7), slice(7, 14)):
        c_chunk, out = chunk(c_chunk, xs[part], ts[part])
        c_steps, grads, ys, losses = steps(c_steps, xs[part], ts[part])
        assert_close(out.grads, grads, 1e-10)
        assert_close(c_chunk, c_steps, 1e-10)
        assert_close((out.y, out.loss), (ys, losses), 1e-12)
    if horizon is None:  # the traces carried something: the recurrent gradients are live
        assert all(float(jnp.abs(c.nu_log).max()) > 0 for c in eqx.filter(out.grads, eqx.is_array).cores())


def test_online_lru_batch_chunk_step_equals_batch_steps():
    model = lrunet(2, 1)
    est = rx.OnlineLRU()
    xs = jax.random.normal(jax.random.key(0), (3, 6, 3))
    ts = jax.random.normal(jax.random.key(1), (3, 6, 2))
    carry = jax.vmap(lambda _: est.init(model))(jnp.arange(3))
    c_chunk, out = est.batch_chunk_step(model, carry, xs, ts, LOSS)

    def body(acc, xt):
        c, g = acc
        c, o = est.batch_step(model, c, *xt, LOSS)
        return (c, jax.tree_util.tree_map(jnp.add, g, o.grads)), o.loss

    zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
    (c_steps, grads), losses = jax.lax.scan(body, (carry, zero), (xs.swapaxes(0, 1), ts.swapaxes(0, 1)))
    assert_close(out.grads, grads, 1e-10)
    assert_close(c_chunk, c_steps, 1e-10)
    assert_close(out.loss, losses.T, 1e-12)


def test_chunk_step_rejects_bad_input():
    model = lrunet(1, 0)
    est = rx.OnlineLRU()
    carry = est.init(model)
    xs, ts = data(0, 5, 3, 2)
    with pytest.raises(ValueError, match="xs must have shape"):
        est.chunk_step(model, carry, xs[:, :2], ts, LOSS)
    with pytest.raises(ValueError, match="leading axis T = 5"):
        est.chunk_step(model, carry, xs, ts[:4], LOSS)
    with pytest.raises(ValueError, match="at least one step"):
        est.chunk_step(model, carry, xs[:0], ts[:0], LOSS)
    batch = jax.vmap(lambda _: est.init(model))(jnp.arange(2))
    with pytest.raises(ValueError, match=r"\[B, K, input\]"):
        est.batch_chunk_step(model, batch, xs, ts, LOSS)
    with pytest.raises(ValueError, match="leading axis B = 2"):
        est.batch_chunk_step(model, batch, jnp.stack([xs, xs]), ts[None], LOSS)


@pytest.mark.parametrize(
    "make, est",
    [(MODELS["lstm"], rx.SnAp(1)), (MODELS["columnar"], rx.ColoR()),
     (lambda: lrunet(2, 4), rx.OnlineLRU()), (lambda: lrunet(2, 4), rx.OnlineLRU(horizon=1))],
    ids=["snap1-lstm", "color", "online-lru", "online-lru-1-truncated"],
)  # fmt: skip
def test_resets_inside_a_chunk(make, est):
    """A stream restarted (fresh carry) before some steps of the chunk — the first step
    included — gives what per-step stepping with the same restarts gives."""
    model = make()
    resets = jnp.array([[False, False, True, False, False, True],
                        [True, False, False, False, False, False],
                        [False, False, False, False, False, False]])  # fmt: skip
    xs = jax.random.normal(key(20), (2, 3, 6, 3))
    ts = jax.random.normal(key(21), (2, 3, 6, 2))
    fresh = est.init(model)
    carry = jax.vmap(lambda _: fresh)(jnp.arange(3))

    def per_step(carry, x, t, r):  # one stream, the learner's reset rule
        def body(acc, inp):
            c, g = acc
            x, t, r = inp
            c = jax.tree_util.tree_map(lambda f, a: jnp.where(r, f, a), fresh, c)
            c, out = est.step(model, c, x, t, LOSS)
            return (c, jax.tree_util.tree_map(jnp.add, g, out.grads)), out.loss

        zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
        (c, g), losses = jax.lax.scan(body, (carry, zero), (x, t, r))
        return c, g, losses

    chunk = eqx.filter_jit(lambda c, x, t, r: est.batch_chunk_step(model, c, x, t, LOSS, resets=r))
    steps = eqx.filter_jit(jax.vmap(per_step))
    c_chunk = c_steps = carry
    for i in range(2):  # the second chunk restarts stream 1 at its first step again
        c_chunk, out = chunk(c_chunk, xs[i], ts[i], resets)
        c_steps, grads, losses = steps(c_steps, xs[i], ts[i], resets)
        assert_close(out.grads, jax.tree_util.tree_map(lambda g: g.mean(0), grads), 1e-10)
        assert_close(c_chunk, c_steps, 1e-10)
        assert_close(out.loss, losses, 1e-12)
    # the restarts mattered: without them the same chunk gives other traces and gradients
    c_plain, out_plain = chunk(c_chunk, xs[0], ts[0], jnp.zeros_like(resets))
    c_reset, out_reset = chunk(c_chunk, xs[0], ts[0], resets)
    diff = lambda a, b: max(float(jnp.abs(x - y).max()) for x, y in zip(  # noqa: E731
        jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert diff(c_plain.traces, c_reset.traces) > 1e-6
    assert diff(out_plain.grads, out_reset.grads) > 1e-6
    with pytest.raises(ValueError, match="resets must have shape"):
        est.batch_chunk_step(model, c_chunk, xs[0], ts[0], LOSS, resets=resets[:, :2])


@pytest.mark.parametrize(
    "make, est",
    [(lambda: rx.LRU(3, 4, key=key(30), r_min=0.3, r_max=0.99), rx.OnlineLRU()),
     (lambda: rx.Readout(rx.LRUCore(3, 4, key=key(31), r_min=0.3, r_max=0.99), 2, key=key(32)), rx.SnAp(1)),
     (MODELS["columnar"], rx.ColoR())],
    ids=["online-lru-layer", "snap1-lru-core", "color-rho0"],
)  # fmt: skip
def test_chunk_step_is_exact_where_the_estimator_is(make, est):
    """Where the estimator is exact (a single LRU layer; SnAp-1 on a diagonal recurrence;
    ColoR at ρ = 0), chunks equal jax.grad of the summed loss through the unrolled
    sequence (rx.BPTT), float64 — also across a chunk boundary."""
    model = make()
    n_out = 3 if isinstance(model, rx.LRU) else 2
    xs = jax.random.normal(key(33), (12, 3))
    ts = jax.random.normal(key(34), (12, n_out))
    exact, _ = rx.accumulate_grads(rx.BPTT(), model, xs, ts, LOSS)
    carry = est.init(model)
    carry, first = est.chunk_step(model, carry, xs[:5], ts[:5], LOSS)
    _, second = est.chunk_step(model, carry, xs[5:], ts[5:], LOSS)
    total = jax.tree_util.tree_map(jnp.add, first.grads, second.grads)
    assert_close(total, exact, 1e-10)
