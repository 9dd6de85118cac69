"""Check a user's own cell or model against the rtrlax protocol: ``check_cell`` and
``check_model``.

>>> import jax, rtrlax as rx
>>> jax.config.update("jax_enable_x64", True)   # the exactness checks run in float64
>>> rx.testing.check_cell(rx.MinGRU(3, 4, key=jax.random.key(0)))   # doctest: +SKIP

Each property is checked in turn; the first that fails raises :class:`CheckError` (a
``ValueError``) naming the property and how to fix it.  On success a short report is
printed (``verbose=False`` silences it) and returned as a list of :class:`Check`.

Properties (a *model* is any ``eqx.Module`` with ``initial_state()`` and
``__call__(state, x) -> (state, y)``, unbatched; a *cell* is a model that is its own
single core):

1. **state protocol** — ``initial_state()`` is a pytree of inexact arrays; a step keeps
   its structure, shapes and dtypes; a gated cell's state is a tuple of ``[hidden]``
   arrays; ``input_size`` matches the input.
2. **jit** — a step under ``jax.jit`` gives the eager numbers (no Python control flow on
   values, no ``float(array)``).
3. **vmap over streams** — a ``jax.vmap``-ed step over a batch of states and inputs
   equals the steps taken one stream at a time.
4. **RTRL = BPTT** and **TBPTT(T ≥ length) = BPTT** — float64, relative error ≤ ``tol``
   on a short random sequence (``accumulate_grads``).
5. **element-wise recurrence** — for a gated cell that declares it
   (``elementwise_recurrence``: no ``weight_hh`` or a diagonal recurrent mask),
   ``SnAp(1)`` = RTRL; otherwise the gap is reported, not failed.
6. **sequence mode** — when the model offers ``sequence`` (``has_sequence``), it equals
   stepping.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .cells.base import AbstractGatedCell
from .estimators.bptt import BPTT
from .estimators.rtrl import RTRL
from .estimators.snap import SnAp
from .estimators.tbptt import TBPTT
from .learning.accumulate import accumulate_grads


class CheckError(ValueError):
    """A property of the rtrlax protocol that a cell or model does not have."""


class Check(NamedTuple):
    name: str  #: the property
    passed: bool | None  #: None: not applicable / informational
    detail: str  #: what was measured


def _fail(prop: str, what: str, fix: str):
    raise CheckError(f"check failed: {prop}: {what}\nHow to fix: {fix}")


def _mse(y, t):
    return jnp.sum((y - t) ** 2)


def _rel(a, b) -> float:
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return float(jnp.linalg.norm(a - b) / jnp.maximum(jnp.linalg.norm(b), 1e-300))


def _to_float64(model):
    return jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model
    )


def check_cell(cell, *, steps: int = 6, seed: int = 0, tol: float = 1e-10,
               verbose: bool = True) -> list[Check]:  # fmt: skip
    """Check one recurrent cell (its own single core); see the module docstring."""
    cores = cell.cores() if hasattr(cell, "cores") else None
    if cores is not None and len(cores) != 1:
        raise ValueError(
            f"check_cell expects a single cell; this model has {len(cores)} cores. "
            "Use rx.testing.check_model for networks."
        )
    return _check(cell, steps=steps, seed=seed, tol=tol, verbose=verbose, single=True)


def check_model(model, *, steps: int = 6, seed: int = 0, tol: float = 1e-10,
                verbose: bool = True) -> list[Check]:  # fmt: skip
    """Check a model (a cell, ``rx.Readout``, a stack such as ``rx.DeepRNN``); for
    several cores, ``SnAp(1)``'s gap to RTRL is reported (it is exact only on the last
    layer of a stack of element-wise cells)."""
    return _check(model, steps=steps, seed=seed, tol=tol, verbose=verbose, single=False)


def _check(model, *, steps, seed, tol, verbose, single) -> list[Check]:
    if not jax.config.jax_enable_x64:
        raise ValueError(
            "rtrlax.testing checks exactness in float64: call "
            "jax.config.update('jax_enable_x64', True) before building the model."
        )
    who = type(model).__name__
    report: list[Check] = []
    model = _to_float64(model)

    # 1. state protocol ------------------------------------------------------------------
    for attr in ("initial_state", "input_size"):
        if not hasattr(model, attr):
            _fail("state protocol", f"{who} has no `{attr}`.",
                  "a model needs input_size (an int), initial_state() -> a pytree of arrays "
                  "and __call__(state, x) -> (state, y); subclass rx.AbstractCell or "
                  "rx.AbstractGatedCell.")  # fmt: skip
    try:
        s0 = model.initial_state()
    except Exception as e:  # noqa: BLE001
        _fail("state protocol", f"initial_state() raised {type(e).__name__}: {e}",
              "initial_state() takes no argument and returns the zero state.")  # fmt: skip
    leaves = jax.tree_util.tree_leaves(s0)
    if not leaves or not all(eqx.is_inexact_array(a) for a in leaves):
        _fail("state protocol", f"initial_state() must be a non-empty pytree of float arrays, got {s0!r}.",
              "return e.g. (jnp.zeros(hidden_size),).")  # fmt: skip
    if isinstance(model, AbstractGatedCell):
        k = model.hidden_size
        if not isinstance(s0, tuple):
            _fail("state protocol", f"a gated cell's state is a tuple of [hidden] arrays, got {type(s0).__name__}.",
                  "return a tuple from initial_state() and pointwise().")  # fmt: skip
        for c, a in enumerate(s0):
            if a.shape != (k,):
                _fail("state protocol",
                      f"initial_state() component {c} has shape {a.shape}, expected ({k},) "
                      "(hidden_size,): every state component of a gated cell holds one number per unit.",
                      "make each state component jnp.zeros(hidden_size) and keep pointwise() per unit.")  # fmt: skip
    key = jax.random.key(seed)
    kx, kt, kb = jax.random.split(key, 3)
    xs = jax.random.normal(kx, (steps, model.input_size), jnp.float64)
    try:
        s1, y1 = model(s0, xs[0])
    except Exception as e:  # noqa: BLE001
        _fail("state protocol", f"one step on an input of shape ({model.input_size},) raised "
              f"{type(e).__name__}: {e}", "check the shapes inside the step against input_size "
              "and the state's shapes.")  # fmt: skip
    spec = lambda t: jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), t)  # noqa: E731
    if jax.tree_util.tree_structure(s1) != jax.tree_util.tree_structure(s0) or spec(s1) != spec(s0):
        _fail("state protocol", f"a step changed the state's structure, shapes or dtypes: "
              f"{spec(s0)} -> {spec(s1)}.", "return a state shaped exactly like initial_state().")  # fmt: skip
    shown = ", ".join(f"{a.shape} {a.dtype}" for a in jax.tree_util.tree_leaves(s0))
    report.append(Check("state protocol", True, f"state [{shown}], output {jnp.shape(y1)}"))

    # 2. jit -----------------------------------------------------------------------------
    try:
        s1j, y1j = eqx.filter_jit(lambda m, s, x: m(s, x))(model, s0, xs[0])
    except Exception as e:  # noqa: BLE001
        _fail("jit", f"a step under jax.jit raised {type(e).__name__}: {str(e).splitlines()[0]}",
              "use jnp.where / lax.cond instead of Python if on array values; no float()/int()/"
              ".item() on arrays; keep Python-side configuration in static fields.")  # fmt: skip
    gap = _rel((s1j, y1j), (s1, y1))
    if gap > 1e-12:
        _fail("jit", f"the jitted step differs from the eager one (relative {gap:.1e}).",
              "the step must be a pure function of (parameters, state, x): no global state or randomness.")  # fmt: skip
    report.append(Check("jit", True, "jitted step = eager step"))

    # 3. vmap over streams ---------------------------------------------------------------
    xb = jax.random.normal(kb, (3, model.input_size), jnp.float64)
    sb = jax.tree_util.tree_map(lambda a: jnp.stack([a, a + 0.1, a - 0.2]), s0)
    try:
        batched = jax.vmap(lambda s, x: model(s, x))(sb, xb)
    except Exception as e:  # noqa: BLE001
        _fail("vmap over streams", f"jax.vmap of a step raised {type(e).__name__}: "
              f"{str(e).splitlines()[0]}", "write the step for one unbatched stream "
              "(x of shape (input_size,)); users batch with jax.vmap.")  # fmt: skip
    singles = [model(jax.tree_util.tree_map(lambda a: a[i], sb), xb[i]) for i in range(3)]
    gap = max(_rel(jax.tree_util.tree_map(lambda a: a[i], batched), singles[i]) for i in range(3))
    if gap > 1e-12:
        _fail("vmap over streams", f"the vmapped step differs from per-stream steps (relative {gap:.1e}).",
              "streams must not interact: no reductions over a leading batch axis inside the step.")  # fmt: skip
    report.append(Check("vmap over streams", True, "vmapped step = per-stream steps"))

    # 4. exact estimators ----------------------------------------------------------------
    y_shape = jax.eval_shape(lambda: model(s0, xs[0])[1]).shape
    ts = jax.random.normal(kt, (steps, *y_shape), jnp.float64)
    g_bptt, _ = accumulate_grads(BPTT(sequence_mode=False), model, xs, ts, _mse)
    g_rtrl, _ = accumulate_grads(RTRL(), model, xs, ts, _mse)
    gap = _rel(g_rtrl, g_bptt)
    if gap > tol:
        _fail("RTRL = BPTT", f"relative error {gap:.1e} > {tol:.0e}.",
              "the step must be differentiable and depend on the past only through the state "
              "it returns (no hidden caches, no stop_gradient inside the recurrence).")  # fmt: skip
    report.append(Check("RTRL = BPTT", True, f"relative error {gap:.1e}"))
    g_tbptt, _ = accumulate_grads(TBPTT(steps), model, xs, ts, _mse)
    gap = _rel(g_tbptt, g_bptt)
    if gap > tol:
        _fail("TBPTT(T >= length) = BPTT", f"relative error {gap:.1e} > {tol:.0e}.",
              "the step must depend on the past only through its state (TBPTT re-runs the window "
              "from a stored state).")  # fmt: skip
    report.append(Check("TBPTT(T >= length) = BPTT", True, f"relative error {gap:.1e}"))

    # 5. element-wise recurrence ---------------------------------------------------------
    cores = tuple(model.cores()) if hasattr(model, "cores") else ()
    gated = bool(cores) and all(isinstance(c, AbstractGatedCell) for c in cores)
    if not gated:
        report.append(Check("SnAp(1) = RTRL", None, "not a gated cell: SnAp does not apply"))
    else:
        declared = all(c.elementwise_recurrence for c in cores)
        g_snap, _ = accumulate_grads(SnAp(1), model, xs, ts, _mse)
        gap = _rel(g_snap, g_rtrl)
        if single and declared:
            if gap > tol:
                _fail("element-wise recurrence (SnAp(1) = RTRL)",
                      f"{who} declares element-wise recurrence (no weight_hh, or a diagonal "
                      f"recurrent mask) but SnAp(1) differs from RTRL by {gap:.1e} (relative).",
                      "unit i's update may read unit i's state and gate pre-activations only: "
                      "move any mixing of units into weight_hh (then SnAp(1) is an "
                      "approximation), or remove it from pointwise()/recurrent_input().")  # fmt: skip
            report.append(Check("SnAp(1) = RTRL", True, f"element-wise recurrence declared; relative error {gap:.1e}"))  # fmt: skip
        else:
            why = "several cores (spatial backprop between layers)" if len(cores) > 1 else \
                "recurrence not declared element-wise"  # fmt: skip
            report.append(Check("SnAp(1) = RTRL", None, f"{why}: SnAp(1) is approximate, gap {gap:.1e} (relative)"))  # fmt: skip

    # 6. sequence mode -------------------------------------------------------------------
    if getattr(model, "has_sequence", False):
        _, y_step = jax.lax.scan(lambda s, x: model(s, x), s0, xs)
        try:
            _, y_seq = model.sequence(s0, xs)
        except Exception as e:  # noqa: BLE001
            _fail("sequence mode", f"sequence(state, xs) raised {type(e).__name__}: {e}",
                  "sequence(state, xs [T, input]) returns (final state, ys [T, ...]).")  # fmt: skip
        gap = _rel(y_seq, y_step)
        if gap > 1e-12:
            _fail("sequence mode", f"sequence() differs from stepping by {gap:.1e} (relative).",
                  "transition(ax) must return the (A_t, b_t) of the same update pointwise() computes.")  # fmt: skip
        report.append(Check("sequence mode = stepping", True, f"relative error {gap:.1e}"))

    if verbose:
        print(f"rtrlax.testing: {who} ({len(cores)} core{'s' * (len(cores) != 1)})")
        for c in report:
            mark = {True: "ok  ", False: "FAIL", None: "info"}[c.passed]
            print(f"  [{mark}] {c.name}: {c.detail}")
    return report
