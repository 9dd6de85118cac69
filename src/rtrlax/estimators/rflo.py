"""RFLO: random-feedback local online learning's eligibility trace (Murray, 2019).

Murray's rule is RTRL for a leaky RNN ``h_t = (1 − 1/τ) h_{t−1} + (1/τ) φ(W [h; x])``
with every off-diagonal term of ``D_t`` dropped, which leaves a per-parameter trace

.. math::  J_t = (1 - 1/\\tau)\\, J_{t-1} + (1/\\tau)\\, \\bar I_t, \\qquad
           \\bar I_t[i, j] = \\varphi'(a_{t,i})\\, [h_{t-1}; x_t; 1]_j,

and the gradient ``δ_t · J_t`` (``δ_t`` by spatial backprop; rtrlax uses the true
readout error, not Murray's random feedback matrix).

What rtrlax does with :class:`~rtrlax.VanillaRNN`, which has no leak: ``RFLO(tau)``
runs the VanillaRNN unchanged and keeps the trace above, ``Ī_t`` being the
VanillaRNN's own immediate Jacobian (``tanh'(a)`` times ``[h; x; 1]``).  With
``tau = 1`` (the default) this is exactly the VanillaRNN's RFLO — the instantaneous,
1-step-truncated gradient, since the VanillaRNN's diagonal of ``D`` without ``W`` is
0; ``tau > 1`` low-pass filters the immediate Jacobian (Murray's trace, used as a
heuristic eligibility trace on a non-leaky net).  Biased either way.

Memory ``p`` (one trace per parameter); time ``O(p)`` per step.
"""

from __future__ import annotations

import equinox as eqx
import jax

from ..cells.vanilla import VanillaRNN
from ._traces import AbstractTraceEstimator
from .snap import snap1_influence, snap1_init, snap1_step


class RFLO(AbstractTraceEstimator):
    """RFLO's leaky eligibility trace on VanillaRNN cores (see module docstring)."""

    tau: float = eqx.field(static=True)

    def __init__(self, tau: float = 1.0):
        if not tau >= 1.0:
            raise ValueError(
                f"RFLO needs a time constant tau >= 1 (in steps; 1 = no leak), got {tau!r}."
            )
        self.tau = float(tau)

    def check_model(self, model) -> None:
        super().check_model(model)
        for core in model.cores():
            if not isinstance(core, VanillaRNN):
                raise ValueError(
                    f"RFLO is defined for (leaky) vanilla RNNs: every core must be an "
                    f"rx.VanillaRNN, got {type(core).__name__}. For gated cells use "
                    "rx.SnAp(1) (its diagonal-D trace) or rx.UORO()."
                )

    def init_traces(self, core):
        return snap1_init(core)

    def core_step(self, core, traces, state, u):
        s_t, immediate = snap1_step(core, traces, state, u, carry_over=False)
        keep = 1.0 - 1.0 / self.tau
        new = jax.tree_util.tree_map(
            lambda j, i: keep * j + i / self.tau, traces, immediate
        )
        return s_t, new

    def influence(self, core, traces, tangent):
        return snap1_influence(core, traces, tangent)
