"""Dense RTRL's storage: one influence block per recurrent parameter array, nothing
for the readout, a step whose working memory is about one influence matrix, and
unit-local immediate terms used exactly where the model's structure proves them."""

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrlax as rx
from helpers import bptt, rel_err
from rtrlax.cells.base import plain_core_call
from rtrlax.estimators.rtrl import recurrent_leaves, unit_axes


def _mse(y, t):
    return jnp.sum((y - t) ** 2)


def test_influence_blocks_cover_the_recurrent_arrays_only():
    core = rx.GRU(3, 5, key=jax.random.key(0))
    net = rx.Readout(core, 2, key=jax.random.key(1))
    rec = recurrent_leaves(net)
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    core_ids = {id(a) for a in jax.tree_util.tree_leaves(eqx.filter(core, eqx.is_inexact_array))}
    assert rec == tuple(id(a) in core_ids for a in leaves)  # the readout's weight and bias: False
    carry = jax.eval_shape(lambda: rx.RTRL().init(net))
    assert [b.shape for b in carry.influence] == [(5 + 1, a.size) for a, r in zip(leaves, rec) if r]


def test_a_donated_batch_step_needs_about_one_influence_matrix_of_scratch():
    net = rx.Readout(rx.GRU(8, 32, key=jax.random.key(0), dtype=jnp.float32), 4, key=jax.random.key(1))
    est, b = rx.RTRL(), 2
    carry = jax.vmap(lambda _: est.init(net))(jnp.arange(b))
    x, t = jnp.ones((b, 8), jnp.float32), jnp.ones((b, 4), jnp.float32)
    step = jax.jit(lambda c, x, t: est.batch_step(net, c, x, t, _mse), donate_argnums=0)
    temp = step.lower(carry, x, t).compile().memory_analysis().temp_size_in_bytes
    m = sum(a.nbytes for a in carry.influence)
    # the product [D; g]·M needs one block-sized result; the old step (a dense
    # state x all-parameters immediate Jacobian, M read twice) needed about 3x M
    assert temp <= 1.25 * m, (temp, m)


class _Encoded(eqx.Module):
    """An encoder in front of a GRU: the encoder's immediate term is not unit-local."""

    enc: eqx.nn.Linear
    core: rx.GRU
    input_size: int = eqx.field(static=True, default=3)

    def initial_state(self):
        return self.core.initial_state()

    def cores(self):
        return (self.core,)

    def forward(self, state, x, *, core_call):
        state = core_call(self.core, state, jnp.tanh(self.enc(x)))
        return state, self.core.output(state)

    def __call__(self, state, x):
        return self.forward(state, x, core_call=plain_core_call)


class _Tied(_Encoded):
    """The core's input reads one of the core's own weights."""

    def forward(self, state, x, *, core_call):
        state = core_call(self.core, state, self.enc(x) * self.core.bias_ih[0, :4])
        return state, self.core.output(state)


class _Scaled(_Encoded):
    """The model's new state is not the core's new state."""

    def forward(self, state, x, *, core_call):
        state = jax.tree_util.tree_map(lambda a: 0.5 * a, core_call(self.core, state, self.enc(x)))
        return state, self.core.output(state)


def test_unit_local_immediate_terms_are_found_only_where_the_structure_proves_them():
    k1, k2 = jax.random.split(jax.random.key(3))
    core = rx.GRU(4, 5, key=k1)
    enc = eqx.nn.Linear(3, 4, key=k2, dtype=core.weight_ih.dtype)
    readout = rx.Readout(rx.GRU(3, 5, key=k1), 2, key=k2)
    deep = rx.DeepRNN(3, 2, cell="gru", d_model=4, d_hidden=4, n_layers=2, key=k1)
    cases = [  # (model, its leaves' unit axes, the scan's unroll)
        (readout, (1, 1, 1, 1, None, None), 2),  # GRU arrays, then the readout's
        (_Encoded(enc, core), (None, None, 1, 1, 1, 1), 1),  # encoder, then the GRU
        (_Tied(enc, core), (None,) * 6, 1),
        (_Scaled(enc, core), (None,) * 6, 1),
        (deep, (None,) * len(jax.tree_util.tree_leaves(eqx.filter(deep, eqx.is_inexact_array))), 1),
    ]
    xs = jax.random.normal(jax.random.key(4), (7, 3))
    for model, axes, unroll in cases:
        assert unit_axes(model) == axes, type(model).__name__
        assert rx.RTRL().scan_unroll(model) == unroll
        # in place (unit-local), dense, or both in one step: the same exact gradient
        y = jax.eval_shape(lambda: model(model.initial_state(), xs[0])[1])
        ts = jax.random.normal(jax.random.key(5), (7, *y.shape))
        g, _ = rx.accumulate_grads(rx.RTRL(), model, xs, ts, _mse)
        assert rel_err(g, bptt(model, xs, ts, _mse)[0]) <= 1e-10, type(model).__name__
