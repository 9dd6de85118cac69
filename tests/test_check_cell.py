"""rtrlax.testing.check_cell / check_model: pass on the library's cells, fail clearly on
broken ones."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import rtrlax as rx
from rtrlax.cells import ELSTM, RGLRU, RTU, MinGRU, MinLSTM, NonlinearRTU
from rtrlax.cells._init import gated_parameters
from rtrlax.cells.base import AbstractGatedCell
from rtrlax.nets.deep import DeepRNN
from rtrlax.testing import CheckError, check_cell, check_model


class _Elementwise(AbstractGatedCell):
    """A minimal element-wise cell ``h_t = tanh(a^x) + 0.5 h_{t-1}`` the tests break."""

    weight_ih: jax.Array
    weight_hh: None
    bias_ih: jax.Array
    bias_hh: None
    mask_ih: None
    mask_hh: None
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, key):
        p = gated_parameters(key, gates=1, input_size=input_size, hidden_size=hidden_size,
                             density=1.0, input_density=1.0, recurrent=False)  # fmt: skip
        self.weight_ih, self.bias_ih = p["weight_ih"], p["bias_ih"]
        self.weight_hh = self.bias_hh = self.mask_ih = self.mask_hh = None
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self):
        return (jnp.zeros(self.hidden_size),)

    def recurrent_input(self, state):
        return state[0]

    def pointwise(self, ax, ah, state):
        return (jnp.tanh(ax[0]) + 0.5 * state[0],)

    def output(self, state):
        return state[0]


class WrongStateShape(_Elementwise):
    def initial_state(self):
        return (jnp.zeros(self.hidden_size + 1),)


class MixesUnits(_Elementwise):  # no weight_hh (declares element-wise) but rolls the units
    def pointwise(self, ax, ah, state):
        return (jnp.tanh(ax[0]) + 0.5 * jnp.roll(state[0], 1),)


class NotJittable(_Elementwise):
    def pointwise(self, ax, ah, state):
        if float(jnp.sum(ax)) > 0:  # Python control flow on a value
            return (jnp.tanh(ax[0]) + 0.5 * state[0],)
        return (jnp.tanh(ax[0]),)


KEY = jax.random.key(0)


def test_passes_on_a_good_cell_and_prints_a_report(capsys):
    report = check_cell(_Elementwise(3, 4, key=KEY))
    assert [c.name for c in report if c.passed] == [
        "state protocol", "jit", "vmap over streams", "RTRL = BPTT",
        "TBPTT(T >= length) = BPTT", "SnAp(1) = RTRL",
    ]  # fmt: skip
    assert "[ok  ] SnAp(1) = RTRL" in capsys.readouterr().out


def test_fails_on_a_wrong_state_shape():
    with pytest.raises(CheckError, match=r"state protocol: initial_state\(\) component 0 has shape \(5,\), expected \(4,\)"):
        check_cell(WrongStateShape(3, 4, key=KEY), verbose=False)


def test_fails_on_a_cell_that_claims_elementwise_recurrence_but_mixes_units():
    with pytest.raises(CheckError, match=r"element-wise recurrence.*SnAp\(1\) differs from RTRL"):
        check_cell(MixesUnits(3, 4, key=KEY), verbose=False)


def test_fails_on_a_cell_that_is_not_jittable():
    with pytest.raises(CheckError, match=r"jit: a step under jax.jit raised .*\nHow to fix: use jnp.where"):
        check_cell(NotJittable(3, 4, key=KEY), verbose=False)


@pytest.mark.slow
def test_reports_the_snap1_gap_of_a_dense_cell_and_needs_float64():
    report = check_cell(rx.VanillaRNN(2, 3, key=KEY), steps=4, verbose=False)
    snap = [c for c in report if c.name == "SnAp(1) = RTRL"][0]
    assert snap.passed is None and "not declared element-wise" in snap.detail
    with pytest.raises(ValueError, match="check_model"):
        check_cell(rx.LRUNet(2, 2, d_model=3, d_hidden=2, n_layers=2, key=KEY))


LIBRARY = {
    "vanilla": lambda k: rx.VanillaRNN(2, 3, key=k), "gru": lambda k: rx.GRU(2, 3, key=k),
    "lstm": lambda k: rx.LSTM(2, 3, key=k), "egru": lambda k: rx.EGRU(2, 3, key=k),
    "lru-core": lambda k: rx.LRUCore(2, 3, key=k), "lru": lambda k: rx.LRU(2, 3, key=k),
    "rtu": lambda k: RTU(2, 3, key=k), "nonlinear-rtu": lambda k: NonlinearRTU(2, 3, key=k),
    "elstm": lambda k: ELSTM(2, 3, key=k), "mingru": lambda k: MinGRU(2, 3, key=k),
    "minlstm": lambda k: MinLSTM(2, 3, key=k), "rglru": lambda k: RGLRU(2, 3, key=k),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LIBRARY))
def test_passes_on_every_library_cell(name):
    report = check_cell(LIBRARY[name](KEY), verbose=False)
    assert all(c.passed is not False for c in report)
    assert sum(c.passed is True for c in report) >= 5


@pytest.mark.slow
def test_check_model_on_a_deep_stack():
    model = DeepRNN(2, 2, cell="minlstm", d_model=3, d_hidden=2, n_layers=2, key=KEY)
    report = check_model(model, verbose=False)
    names = {c.name: c.passed for c in report}
    assert names["RTRL = BPTT"] and names["sequence mode = stepping"]
    assert names["SnAp(1) = RTRL"] is None  # several cores: reported, not required

