"""Op and memory accounting for sparse RTRL, from a carry (per step, jittable).

:func:`sparse_rtrl_cost` reads what :class:`rtrlax.SparseRTRL` recorded in its carry
during the last step (how many units were active, how many capacity chunks ran) and
returns, per step and stream:

* ``activity`` — fraction of units whose recurrent input (EGRU: ``y``) is non-zero,
  i.e. units that fired (forward activity density);
* ``active_fraction`` — fraction of units through which ``D_t M_{t-1}`` was computed
  (fired *or* inside the pseudo-derivative window: the backward activity);
* ``macs`` — multiply-adds sparse RTRL performed on the influence matrix this step:
  ``m·k·u·n`` (dense part ``V·H`` through ``u`` units: ``chunks·C`` on the chunked
  path, all ``k`` when the step ran the one dense product) ``+ m²·k·n`` (diagonal part)
  ``+ m·G·k²`` (forming ``V = a_h·W_hh``) ``+ m·n`` (immediate) ``+ m·k·n`` (gradient
  ``δ·M``), summed over cores.  Under ``vmap`` the chunk loop runs the batch's maximum
  chunk count; ``chunks`` (and so ``macs``) is what this stream's activity needed;
* ``dense_macs`` — the same for dense RTRL (``rx.RTRL``) on the same model:
  ``S²·P_r + S·P_r`` with ``S`` state scalars and ``P_r`` its *recurrent* parameters
  (readouts are outside its influence matrix; masked weights are inside, since dense
  RTRL does not know about masks);
* ``op_reduction`` = ``dense_macs / macs``;
* ``influence_floats`` (``Σ m·k·n``), ``dense_influence_floats`` (``S·P_r``) and
  ``memory_fraction`` (their ratio).

Every value has the carry's leading (batch) axes, so it works on a learner's batched
carry (``learner_state.carry``) as well as on one stream's.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ..estimators.rtrl import recurrent_leaves
from ..estimators.sparse_rtrl import SparseRTRL, num_columns


def _size(tree) -> int:
    return sum(int(a.size) for a in jax.tree_util.tree_leaves(tree))


def sparse_rtrl_cost(estimator: SparseRTRL, model: eqx.Module, carry) -> dict[str, Array]:
    """Per-step counters of sparse RTRL's work and storage (see module docstring):
    :meth:`SparseRTRL.cost <rtrlax.estimators.sparse_rtrl.SparseRTRL.cost>`."""
    if not isinstance(estimator, SparseRTRL):
        raise ValueError(f"sparse_rtrl_cost needs a SparseRTRL estimator, got {type(estimator).__name__}.")
    return estimator.cost(model, carry)


def dense_rtrl_influence_floats(model: eqx.Module) -> int:
    """``S·P_r``: the size of dense RTRL's (``rx.RTRL``) influence matrix for ``model``
    (its recurrent parameters only; readouts have no columns)."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    rec = recurrent_leaves(model)
    return _size(model.initial_state()) * sum(int(a.size) for a, r in zip(leaves, rec) if r)


def sparse_rtrl_influence_floats(model: eqx.Module) -> int:
    """``Σ m·k·n`` over the cores: the size of sparse RTRL's influence matrices."""
    return sum(len(c.initial_state()) * c.hidden_size * num_columns(c) for c in model.cores())

