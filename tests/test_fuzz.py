"""Property-based fuzzing: random small configurations of cell × estimator × sizes ×
densities, through ``accumulate_grads`` and the online learner.  Each configuration
either keeps its claim or raises a ``ValueError`` with a message:

* exact estimators (RTRL, sparse RTRL, SnAp-n with n ≥ hidden, TBPTT over the whole
  sequence, ColoR on a purely columnar network) equal BPTT to 1e-10 relative;
* every other one runs the same forward pass (its losses are BPTT's) with a finite
  gradient;
* the learner with one stream, SGD and ``update_every = T`` moves the parameters by
  exactly ``-lr ×`` the estimator's ``accumulate_grads`` over the sequence
  (deterministic estimators).

Draws come from small fixed sets (hidden 2 or 3, T = 4, two densities) so compiled
functions are reused across examples; the default run draws a few examples, the
``slow`` variant many.  ``GRID_SIZE`` counts the configurations the sets span.
"""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtrlax as rx
from helpers import flat, mse, rel_err

T, D_IN, D_OUT = 4, 2, 1
CELLS = ("vanilla", "gru", "lstm", "egru", "columnar")
HIDDEN = (2, 3)
DENSITIES = (1.0, 0.5)
ESTIMATORS = {
    "rtrl": rx.RTRL,
    "snap1": lambda: rx.SnAp(1),
    "snap3": lambda: rx.SnAp(3),
    "tbptt-full": lambda: rx.TBPTT(T),
    "tbptt2": lambda: rx.TBPTT(2),
    "uoro": rx.UORO,
    "kfrtrl": rx.KFRTRL,
    "rflo": lambda: rx.RFLO(2.0),
    "color": rx.ColoR,
    "sparse": rx.SparseRTRL,
}
STOCHASTIC = {"uoro", "kfrtrl"}
GRID_SIZE = len(CELLS) * len(HIDDEN) * len(DENSITIES) * len(ESTIMATORS)


def make_model(cell, hidden, density, seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    if cell == "columnar":  # density: the cross-column connections (0 = purely columnar)
        core = rx.Columnar(D_IN, hidden, density=0.0 if density == 1.0 else density, key=k1)
    else:
        make = {"vanilla": rx.VanillaRNN, "gru": rx.GRU, "lstm": rx.LSTM, "egru": rx.EGRU}[cell]
        core = make(D_IN, hidden, key=k1, density=density)
    return rx.Readout(core, D_OUT, key=k2)


def is_exact(name, cell, hidden, density):
    return (
        name in ("rtrl", "sparse", "tbptt-full")
        or (name == "snap3" and hidden <= 3)
        or (name == "color" and cell == "columnar" and density == 1.0)
    )


def check_value_error(err: ValueError) -> None:
    msg = str(err)
    assert len(msg) > 20 and re.search(r"[a-z]", msg), f"an unhelpful error: {msg!r}"


config = st.tuples(
    st.sampled_from(CELLS),
    st.sampled_from(HIDDEN),
    st.sampled_from(DENSITIES),
    st.sampled_from(sorted(ESTIMATORS)),
    st.integers(0, 3),
)


def check_accumulate(cell, hidden, density, name, seed):
    model = make_model(cell, hidden, density, seed)
    kx, kt = jax.random.split(jax.random.key(100 + seed))
    xs, ts = jax.random.normal(kx, (T, D_IN)), jax.random.normal(kt, (T, D_OUT))
    g_ref, l_ref = rx.accumulate_grads(rx.BPTT(), model, xs, ts, mse)
    try:
        g, losses = rx.accumulate_grads(ESTIMATORS[name](), model, xs, ts, mse,
                                        key=jax.random.key(seed))  # fmt: skip
    except ValueError as e:
        check_value_error(e)
        return "refused"
    np.testing.assert_allclose(losses, l_ref, rtol=1e-10, atol=1e-12)
    assert bool(jnp.all(jnp.isfinite(flat(g))))
    if is_exact(name, cell, hidden, density):
        assert rel_err(g, g_ref) <= 1e-10, (cell, hidden, density, name)
    return "ran"


def check_learner(cell, hidden, density, name, seed):
    model = make_model(cell, hidden, density, seed)
    kx, kt = jax.random.split(jax.random.key(200 + seed))
    xs, ts = jax.random.normal(kx, (1, T, D_IN)), jax.random.normal(kt, (1, T, D_OUT))
    lr = 0.1
    try:
        learner = rx.OnlineLearner(model, ESTIMATORS[name](), optax.sgd(lr), mse, update_every=T)
        state = learner.init(jax.random.key(seed), batch_size=1)
        state, losses = learner.learn(state, xs, ts)
    except ValueError as e:
        check_value_error(e)
        return "refused"
    assert int(state.step) == T and bool(jnp.all(jnp.isfinite(losses)))
    if name not in STOCHASTIC:
        g, _ = rx.accumulate_grads(ESTIMATORS[name](), model, xs[0], ts[0], mse)
        moved = jax.tree_util.tree_map(lambda a, b: (a - b) / -lr, state.params, learner.params0)
        assert rel_err(moved, g) <= 1e-9, (cell, hidden, density, name)
    return "ran"


SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@settings(max_examples=3, **SETTINGS)
@given(config)
def test_fuzz_accumulate_grads_keeps_its_claims(cfg):
    check_accumulate(*cfg)


@settings(max_examples=2, **SETTINGS)
@given(config)
def test_fuzz_learner_applies_the_estimators_gradient(cfg):
    check_learner(*cfg)


@pytest.mark.slow
def test_fuzz_the_whole_grid():
    """Every configuration the sets span (GRID_SIZE of them), both checks."""
    seen = {"ran": 0, "refused": 0}
    for cell, hidden, density, name in itertools.product(CELLS, HIDDEN, DENSITIES, ESTIMATORS):
        seen[check_accumulate(cell, hidden, density, name, 0)] += 1
        check_learner(cell, hidden, density, name, 1)
    assert sum(seen.values()) == GRID_SIZE and seen["ran"] > seen["refused"] > 0


# --- the command line: random argument sets, checked before any work -------------------------

CLI_VALUES = {
    "--estimator": ["snap:1", "rtrl", "snap:0", "tbptt:x", "uoro", "color", "nope", "bptt"],
    "--cell": ["gru", "vanilla", "lstm", "columnar", "egru", "transformer"],
    "--hidden": ["4", "0", "-3"],
    "--steps": ["10", "0"],
    "--batch": ["2", "0"],
    "--lr": ["0.01", "nan", "0", "-1", "inf"],
    "--density": ["1.0", "0.5", "1.5", "0", "nan"],
    "--update-every": ["1", "4", "0"],
    "--chunk": ["5", "0"],
    "--save-every": ["5", "0"],
    "--resume": ["latest", "/nonexistent/ckpt"],
    "--seed": ["0", "-1"],
}


@settings(max_examples=25, **SETTINGS)
@given(st.dictionaries(st.sampled_from(sorted(CLI_VALUES)), st.integers(0, 7), max_size=5),
       st.booleans())  # fmt: skip
def test_fuzz_command_line_arguments_pass_or_fail_in_one_line(choice, with_save):
    """Every random set of well-typed arguments either passes every check (the run would
    start) or is refused with a ValueError of one line — what ``main`` prints on stderr
    with exit status 2 — before JAX does any work."""
    from rtrlax.cli import _prepare

    argv = ["run", "copy", "--quiet"]
    for flag, i in choice.items():
        argv += [flag, CLI_VALUES[flag][i % len(CLI_VALUES[flag])]]
    if with_save:
        argv += ["--save", "/tmp/rtrlax-fuzz-never-written"]
    try:
        _prepare(argv)
    except ValueError as e:
        check_value_error(e)
        assert "\n" not in str(e), str(e)
