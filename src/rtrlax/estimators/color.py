"""ColoR: columnar-recurrent learning (Javed, White, Sutton).

Each column parameter θ of column ``i`` keeps two traces, its influence on the
column's own state: ``TH = ∂h_{t,i}/∂θ`` and ``TC = ∂c_{t,i}/∂θ``, updated with the
column's own 2×2 Jacobian

.. math::

    \\begin{pmatrix} TH_t \\\\ TC_t \\end{pmatrix} =
    \\begin{pmatrix} \\partial h_{t,i}/\\partial h_{t-1,i} & \\partial h_{t,i}/\\partial c_{t-1,i} \\\\
                    \\partial c_{t,i}/\\partial h_{t-1,i} & \\partial c_{t,i}/\\partial c_{t-1,i} \\end{pmatrix}
    \\begin{pmatrix} TH_{t-1} \\\\ TC_{t-1} \\end{pmatrix}
    + \\begin{pmatrix} \\partial h_{t,i}/\\partial\\theta \\\\ \\partial c_{t,i}/\\partial\\theta \\end{pmatrix},
    \\qquad \\frac{d\\ell_t}{d\\theta} \\approx \\frac{\\partial \\ell_t}{\\partial h_{t,i}} TH_t .

This *is* SnAp-1 on the :class:`~rtrlax.Columnar` cell (an LSTM whose own-column
recurrent weights are per-unit parameters and whose cross-column weights carry an
off-diagonal mask of density ρ): SnAp-1 keeps, for every
parameter of unit ``i``, its influence on unit ``i``'s ``(h, c)`` and uses only the
diagonal blocks of ``D_t``.  So ColoR shares ``snap.py``'s ``snap1_init`` /
``snap1_step`` / ``snap1_influence`` and the shared trace driver; this class only
restricts the models it accepts to columnar cores (including the stages of
:class:`~rtrlax.Constructive`).  Exact RTRL at ρ = 0 (and for a constructive stage,
whose earlier stages are frozen and act as inputs); biased for ρ > 0 (dropping the
cross-column terms).

Memory ``2p`` (two traces per stored parameter: ``4k(d + 2)`` for ``k`` columns on ``d``
inputs at ρ = 0; at ρ > 0 also every entry of the masked ``4 × k × k`` cross-column
weight); time ``O(p)`` per step — about the cost of one BPTT step.
"""

from __future__ import annotations

from ..cells.columnar import Columnar
from ._traces import AbstractTraceEstimator
from .snap import snap1_chunk_cores, snap1_influence, snap1_init, snap1_step


class ColoR(AbstractTraceEstimator):
    """Columnar-recurrent learning: SnAp-1 on columnar cores (see module docstring)."""

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, Columnar):
                raise ValueError(
                    "ColoR learns columnar networks: every core must be an rx.Columnar "
                    f"(got {type(core).__name__}). For other gated cells use rx.SnAp(1), "
                    "which is the same trace rule."
                )

    def init_traces(self, core):
        return snap1_init(core)

    def core_step(self, core, traces, state, u):
        return snap1_step(core, traces, state, u)

    def influence(self, core, traces, tangent):
        return snap1_influence(core, traces, tangent)

    @property
    def chunked(self) -> bool:
        return True

    def chunk_cores(self, cores, traces, seen, deltas, keep):
        return snap1_chunk_cores(cores, traces, seen, deltas, keep)
