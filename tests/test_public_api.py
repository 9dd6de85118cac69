"""The public surface is explicit: every documented name imports from ``rtrlax``."""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp

import rtrlax as rx

PUBLIC = """
AbstractCell AbstractGatedCell VanillaRNN GRU LSTM EGRU LRU LRUCore Columnar
AbstractEstimator AbstractOnlineEstimator StepOutput BPTT RTRL TBPTT SnAp UORO KFRTRL RFLO
ColoR OnlineLRU SparseRTRL accumulate_grads OnlineLearner LearnerState TDLambda
AbstractTask Sample CopyTask CopyCurriculum CharLM Readout LRUNet Constructive diagnostics
columnar_network registry
""".split()


def test_public_names_exist():
    missing = [n for n in PUBLIC if not hasattr(rx, n)]
    assert not missing, f"missing from rtrlax: {missing}"


def test_every_export_resolves_and_type_checkers_see_the_same_names():
    for name in rx.__all__:
        assert getattr(rx, name) is not None, name
    tree = ast.parse(Path(rx.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If))  # `if TYPE_CHECKING:`
    typed = {a.asname for imp in block.body for a in imp.names}
    assert typed == set(rx.__all__)


def test_readme_quick_start_runs():
    cell = rx.GRU(input_size=3, hidden_size=16, key=jax.random.key(0))
    s0 = cell.initial_state()
    s1, y1 = cell(s0, jnp.ones(3))
    xs, targets = jnp.ones((5, 3)), jnp.zeros((5, 16))
    loss_fn = lambda y, t: jnp.sum((y - t) ** 2)  # noqa: E731
    grads, losses = rx.accumulate_grads(rx.SnAp(1), cell, xs, targets, loss_fn)
    assert losses.shape == (5,) and y1.shape == (16,)
    assert jnp.all(jnp.isfinite(grads.weight_hh))
