"""The online LRU (Zucchet, Meier, Schug, Mujika, Sacramento; NeurIPS 2023), streaming.

Each LRU layer keeps exact diagonal eligibility traces of its recurrent parameters
(complex notation; the code stores real and imaginary parts):

.. math::

    e^{\\lambda}_t &= \\lambda \\odot e^{\\lambda}_{t-1} + h_{t-1}
        && \\to \\nu_{\\log},\\ \\theta_{\\log} \\text{ by the chain rule}\\\\
    e^{\\gamma}_t  &= \\lambda \\odot e^{\\gamma}_{t-1} + B u_t\\\\
    e^{B}_t        &= \\lambda \\odot e^{B}_{t-1} + \\gamma\\, u_t^\\top  && [N, H]

and every layer's error ``δ_t = ∂ℓ_t/∂h_t`` comes from backprop through the stack at
time t only (no backprop through time between layers).  The gradient is
``δ_t · e_t`` per parameter (for B: ``grad B_re = Re(δ̄ e^B)``, ``grad B_im = −Im(δ̄ e^B)``
with JAX's conjugate cotangent ``δ̄``); every other parameter (C, D, norms, GLU,
encoder, decoder) gets its instantaneous gradient.

**This is SnAp-1 on each LRU core.**  :class:`~rtrlax.cells.lru.LRUCore` is a gated
cell with a diagonal recurrence, so SnAp-1's per-unit traces (estimators/snap.py) are
exactly the traces above, and the shared driver (estimators/_traces.py) does the
spatial backprop.  :class:`OnlineLRU` is therefore a thin final class over
``snap1_init``/``snap1_step``/``snap1_influence``; it adds only the paper's ablations:

* ``horizon=None`` (default): full traces — exact RTRL for a single layer and for the
  last layer of a stack; approximate below it (the layers above are differentiated
  spatially).
* ``horizon=1`` ("1-truncated"): traces restart every step, ``e^λ_t = h_{t-1}``,
  ``e^γ_t = B u_t``, ``e^B_t = γ u_t^⊤`` (``snap1_step(carry_over=False)``).
* ``horizon=0`` ("spatial"): the recurrent term ``λ ⊙ h_{t-1}`` is treated as a
  constant input (the paper's code stops its gradient): ν and θ get zero gradient,
  B and γ their immediate term.

Memory: ``2·p_rec`` numbers per layer (``m = 2`` state components per parameter of the
core: ``4·N·H + 6·N``), independent of the stream length.  Time per step:
``O(N·H)`` per layer for the traces, plus one forward and one backward pass through
the network at time t — the same order as an inference step.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..cells.lru import LRUCore
from ._traces import AbstractTraceEstimator
from .snap import GatedTraces, snap1_influence, snap1_init, snap1_step


class OnlineLRU(AbstractTraceEstimator):
    """Online learning of deep LRU networks with per-layer exact traces.

    Args:
        horizon: ``None`` for full traces (the online LRU), ``1`` for the 1-truncated
            ablation, ``0`` for the spatial ablation (see the module docstring).
    """

    horizon: int | None = eqx.field(static=True)

    def __init__(self, horizon: int | None = None):
        if horizon not in (None, 0, 1) or isinstance(horizon, bool):
            raise ValueError(
                f"OnlineLRU(horizon=...) takes None (full traces), 1 (1-truncated) or 0 "
                f"(spatial), got {horizon!r}."
            )
        self.horizon = horizon

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, LRUCore):
                raise ValueError(
                    "OnlineLRU works on models whose recurrent cores are LRU cores "
                    f"(rx.LRU, rx.LRUNet); got a core of type {type(core).__name__}. "
                    "For other gated cells use rx.SnAp(1)."
                )

    def init_traces(self, core: LRUCore) -> GatedTraces:
        return snap1_init(core)

    def core_step(self, core: LRUCore, traces: GatedTraces, state, u):
        s_t, new = snap1_step(core, traces, state, u, carry_over=self.horizon is None)
        if self.horizon == 0:
            unit = eqx.tree_at(
                lambda p: (p.nu_log, p.theta_log), new.unit, replace_fn=jnp.zeros_like
            )
            new = new._replace(unit=unit)
        return s_t, new

    def influence(self, core: LRUCore, traces: GatedTraces, tangent):
        return snap1_influence(core, traces, tangent)
