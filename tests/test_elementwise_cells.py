"""Element-wise cells (RTU, NonlinearRTU, ELSTM, MinGRU, MinLSTM, RGLRU): exact RTRL,
SnAp-1 = RTRL, and the whole-sequence mode of the cells linear in their state."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mse, rel_err

import rtrlax as rx
from rtrlax.cells import ELSTM, RGLRU, RTU, MinGRU, MinLSTM, NonlinearRTU
from rtrlax.cells.base import run_sequence

NEW_CELLS = {
    "rtu": RTU, "nonlinear-rtu": NonlinearRTU, "elstm": ELSTM, "mingru": MinGRU,
    "minlstm": MinLSTM, "rglru": RGLRU,
}  # fmt: skip
LINEAR = ["rtu", "mingru", "minlstm", "rglru"]


def output_size(cell):
    return jax.eval_shape(cell.output, cell.initial_state()).shape[0]


def data(cell, seed, steps=9):
    kx, kt = jax.random.split(jax.random.key(100 + seed))
    xs = jax.random.normal(kx, (steps, cell.input_size))
    return xs, jax.random.normal(kt, (steps, output_size(cell)))


def check_exact(name, d_in, hidden, seeds):
    for seed in seeds:  # same shapes: the compiled functions are reused across seeds
        cell = NEW_CELLS[name](d_in, hidden, key=jax.random.key(seed))
        xs, ts = data(cell, seed)
        g_bptt, l_bptt = rx.accumulate_grads(rx.BPTT(), cell, xs, ts, mse)
        g_rtrl, l_rtrl = rx.accumulate_grads(rx.RTRL(), cell, xs, ts, mse)
        g_snap, _ = rx.accumulate_grads(rx.SnAp(1), cell, xs, ts, mse)
        assert float(jnp.linalg.norm(jax.flatten_util.ravel_pytree(g_bptt)[0])) > 1e-3
        assert rel_err(g_rtrl, g_bptt) <= 1e-10, (name, seed)
        assert rel_err(g_snap, g_rtrl) <= 1e-10, (name, seed)
        np.testing.assert_allclose(l_rtrl, l_bptt, rtol=1e-12)


# Each cell costs three compilations (seconds each on a shared 2-core CPU): the default
# run keeps one cell; the rest (m = 2, unit parameters, complex states) are `slow`.
DEFAULT = ("mingru",)


@pytest.mark.parametrize(
    "name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in NEW_CELLS]
)
def test_rtrl_equals_bptt_and_snap1_equals_rtrl(name):
    check_exact(name, 3, 4, seeds=[0, 1])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NEW_CELLS))
@pytest.mark.parametrize("d_in,hidden", [(2, 6), (5, 3)])
def test_rtrl_equals_bptt_and_snap1_equals_rtrl_more_sizes(name, d_in, hidden):
    check_exact(name, d_in, hidden, seeds=[2, 3])


@pytest.mark.parametrize("name", list(NEW_CELLS))
def test_declares_elementwise_recurrence(name):
    cell = NEW_CELLS[name](3, 4, key=jax.random.key(0))
    assert cell.elementwise_recurrence
    assert getattr(cell, "has_sequence", False) == (name in LINEAR)
    # a dense recurrent cell does not claim it, a diagonal-masked one does
    assert not rx.GRU(3, 4, key=jax.random.key(0)).elementwise_recurrence


@pytest.mark.parametrize(
    "name", [n if n == "mingru" else pytest.param(n, marks=pytest.mark.slow) for n in LINEAR]
)
def test_sequence_mode_equals_stepping(name):
    cell = NEW_CELLS[name](3, 5, key=jax.random.key(4))
    xs, _ = data(cell, 4, steps=37)
    s0 = jax.tree_util.tree_map(lambda a: a + 0.3, cell.initial_state())  # a nonzero start
    s_step, y_step = jax.lax.scan(lambda s, x: cell(s, x), s0, xs)
    s_seq, y_seq = run_sequence(cell, xs, s0)
    np.testing.assert_allclose(y_seq, y_step, rtol=1e-12, atol=1e-12)
    for a, b in zip(s_seq, s_step):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_rglru_ring_and_rtu_output_size():
    cell = RGLRU(2, 500, key=jax.random.key(0), r_min=0.9, r_max=0.999)
    a_c = np.asarray(jax.nn.sigmoid(cell.lambda_param)) ** 8
    assert a_c.min() >= 0.9 - 1e-12 and a_c.max() <= 0.999 + 1e-12
    assert output_size(RTU(2, 3, key=jax.random.key(0))) == 6
    assert output_size(NonlinearRTU(2, 3, key=jax.random.key(0))) == 6
    with pytest.raises(ValueError, match="r_min"):
        RGLRU(2, 3, key=jax.random.key(0), r_min=0.99, r_max=0.9)
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        run_sequence(MinGRU(2, 3, key=jax.random.key(0)), jnp.zeros((4, 3)))


@pytest.mark.slow
def test_input_masks_are_kept_by_snap1():
    cell = MinGRU(4, 3, key=jax.random.key(5), input_density=0.5)
    assert cell.mask_ih is not None
    xs, ts = data(cell, 5)
    g, _ = rx.accumulate_grads(rx.SnAp(1), cell, xs, ts, mse)
    assert bool(jnp.all(jnp.where(cell.mask_ih, 0.0, g.weight_ih) == 0))
    assert rel_err(g, rx.accumulate_grads(rx.BPTT(), cell, xs, ts, mse)[0]) <= 1e-10


def test_rtu_input_scale_and_elstm_output_gate_written_out():
    """The RTU's input enters scaled by √(1 − r²) per unit (the authors' form), or not
    with ``input_norm=False``; the eLSTM's output gate reads the new cell state."""
    x = jax.random.normal(jax.random.key(3), (2,))
    for cls in (RTU, NonlinearRTU):
        for norm in (True, False):
            cell = cls(2, 4, key=jax.random.key(1), input_norm=norm)
            state = (jnp.full(4, 0.3), jnp.full(4, -0.2))
            r = np.exp(-np.exp(np.asarray(cell.nu_log)))
            th = np.exp(np.asarray(cell.theta_log))
            n = np.sqrt(1 - r**2) if norm else np.ones(4)
            wx = np.einsum("gki,i->gk", np.asarray(cell.weight_ih), x) + np.asarray(cell.bias_ih)
            c1 = r * np.cos(th) * 0.3 - r * np.sin(th) * -0.2 + n * wx[0]
            c2 = r * np.sin(th) * 0.3 + r * np.cos(th) * -0.2 + n * wx[1]
            if cls is NonlinearRTU:
                c1, c2 = np.maximum(c1, 0), np.maximum(c2, 0)
            got = cell.update(state, x)
            np.testing.assert_allclose(got[0], c1, rtol=1e-12)
            np.testing.assert_allclose(got[1], c2, rtol=1e-12)
    cell = ELSTM(2, 4, key=jax.random.key(2))
    c0 = jnp.linspace(-0.5, 0.5, 4)
    a = np.einsum("gki,i->gk", np.asarray(cell.weight_ih), x) + np.asarray(cell.bias_ih)
    w = np.asarray(cell.weight_rec)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    f, z = sig(a[0] + w[0] * c0), np.tanh(a[1] + w[1] * c0)
    c = f * c0 + (1 - f) * z
    h = sig(a[2] + w[2] * c) * c
    got_c, got_h = cell.update((c0, jnp.zeros(4)), x)
    np.testing.assert_allclose(got_c, c, rtol=1e-12)
    np.testing.assert_allclose(got_h, h, rtol=1e-12)
