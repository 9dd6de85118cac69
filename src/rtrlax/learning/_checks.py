"""Checks of what a user hands in, run host-side before anything is compiled or changed.

Every failure is a ``ValueError`` saying what was expected, what was given and how to
fix it (DESIGN.md: bad input fails early and clearly, never a silent NaN or an XLA
trace).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def check_model(model) -> None:
    """A model under the rtrlax contract: ``initial_state()`` and ``__call__``."""
    if not isinstance(model, eqx.Module) or not callable(getattr(model, "initial_state", None)):
        raise ValueError(
            f"the model must be an equinox Module with initial_state() and "
            f"__call__(state, x) -> (state, y); got {type(model).__name__}."
        )


def check_steps(n: int, what: str = "the sequence") -> None:
    if n == 0:
        raise ValueError(f"{what} has zero steps; pass at least one step.")


def check_finite(name: str, arr, batch: int | None = None) -> None:
    """NaN/Inf in ``arr`` (``[T, ...]`` or, with ``batch``, ``[B, T, ...]``): a ValueError
    naming the first bad (stream,) step.  Skipped for traced arrays (inside ``jit`` or
    ``vmap``), whose values are not known yet."""
    if isinstance(arr, jax.core.Tracer):  # under jit/vmap: values unknown, shapes checked
        return
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.inexact) or a.size == 0:
        return
    lead = 1 if batch is None else 2
    ok = np.isfinite(a).reshape(a.shape[:lead] + (-1,)).all(-1)
    bad = np.argwhere(~ok)
    if len(bad):
        where = (
            f"step {int(bad[0][0])}"
            if batch is None
            else f"stream {int(bad[0][0])}, step {int(bad[0][1])}"
        )
        raise ValueError(
            f"{name} holds NaN or Inf at {where} (and {len(bad) - 1} more places); clean the "
            "stream first. Nothing was changed."
        )


def check_output_and_loss(model, x_t, target_t, loss_fn) -> None:
    """One step's target against the model's output and ``loss_fn`` (abstractly: nothing
    runs).  ``x_t`` and ``target_t`` are one step's input and target (arrays or shape
    structs).  A single floating-point target array must have the output's shape (a
    target of width 1 against a wider output would silently broadcast); ``loss_fn(y,
    target)`` must run and return a scalar."""
    x_t = jax.ShapeDtypeStruct(jnp.shape(x_t), jnp.result_type(x_t))
    target_t = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), target_t
    )
    try:
        y = eqx.filter_eval_shape(lambda m, x: m(m.initial_state(), x)[1], model, x_t)
    except Exception as e:  # a model that cannot take this input: say so, with its error
        raise ValueError(
            f"the model cannot take one step on an input of shape {x_t.shape} "
            f"({type(e).__name__}: {e})."
        ) from None
    leaves = jax.tree_util.tree_leaves(target_t)
    if (
        len(leaves) == 1
        and isinstance(target_t, jax.ShapeDtypeStruct)
        and isinstance(y, jax.ShapeDtypeStruct)
        and jnp.issubdtype(target_t.dtype, jnp.inexact)
        and target_t.shape != y.shape
        and not (target_t.shape == () and y.shape in ((), (1,)))
    ):
        raise ValueError(
            f"each step's target has shape {target_t.shape} but the model outputs shape "
            f"{y.shape}: expected targets of shape [..., {', '.join(map(str, y.shape))}] "
            "(a mismatch would broadcast silently). If your loss takes another shape on "
            "purpose, pass the targets inside a tuple or dict."
        )
    if loss_fn is None:
        return
    try:
        out = jax.eval_shape(loss_fn, y, target_t)
    except Exception as e:
        raise ValueError(
            f"loss_fn(y, target) fails on one step's output {_fmt(y)} and target "
            f"{_fmt(target_t)}: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"loss_fn(y, target) must return a scalar per step, got {shape} (sum or average "
            "it inside loss_fn)."
        )


def _fmt(tree) -> str:
    shapes = jax.tree_util.tree_map(lambda a: f"{a.dtype}{list(a.shape)}", tree)
    return str(shapes)
