"""KF-RTRL: Kronecker-factored RTRL (Mujika, Meier & Steger, 2018), vanilla RNN.

For ``h_t = φ(a_t)``, ``a_t = W [h_{t−1}; x_t; 1]`` (W = ``[W_hh | W_ih | b]``, k × (k+d+1)),
the influence of W factors as ``∂h_t[l]/∂W[i, j] ≈ u_t[j] A_t[l, i]``: an unbiased
rank-one Kronecker estimate ``M_t ≈ u_tᵀ ⊗ A_t`` kept with two random signs
``c₁, c₂ ∈ {±1}`` per step:

.. math::

    u_t = c_1 p_1 u_{t-1} + c_2 p_2 \\hat a_t, \\qquad
    A_t = c_1 J_t A_{t-1} / p_1 + c_2\\, \\mathrm{diag}(\\varphi'(a_t)) / p_2,

    \\hat a_t = [h_{t-1}; x_t; 1],\\quad J_t = \\mathrm{diag}(\\varphi') W_{hh},\\quad
    p_1 = \\sqrt{\\lVert J_t A_{t-1}\\rVert / \\lVert u_{t-1}\\rVert},\\quad
    p_2 = \\sqrt{\\lVert\\varphi'\\rVert / \\lVert\\hat a_t\\rVert}

(``+ε`` in each ratio).  ``E[u_tᵀ ⊗ A_t] = u_{t-1}ᵀ ⊗ J A_{t-1} + â_tᵀ ⊗ diag(φ')`` —
the RTRL recursion — so the estimate is unbiased; its variance is far below UORO's
because only the k × k factor ``A`` is mixed by the noise, not the whole ``W``.
The gradient of the core is ``δ_t · M_t = (δ_tᵀ A_t)ᵀ u_tᵀ`` (through the shared
trace machinery: a readout gets its exact instantaneous gradient).  Masked weights
get zero gradient (masks act column-wise on M, so the unmasked columns stay unbiased).

Memory ``k² + k + d + 1``; time ``O(k³)`` per step (the product ``J A``).
"""

from __future__ import annotations

import warnings

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ..cells.vanilla import VanillaRNN
from ._gated import local_derivatives
from ._traces import AbstractTraceEstimator, TraceCarry
from .base import AbstractOnlineEstimator


class KFTraces(NamedTuple):
    u: Float[Array, " k_plus_d_plus_1"]  #: the input-side factor
    a: Float[Array, "hidden hidden"]  #: the state-side factor
    signs: Float[Array, " 2"]  #: c₁, c₂ for the coming step (drawn by KFRTRL.step)


class KFRTRLCarry(NamedTuple):
    state: State
    traces: tuple  #: one KFTraces per core
    key: PRNGKeyArray


def _masked(t, mask):
    return t if mask is None else jnp.where(mask, t, 0)


class _KroneckerTraces(AbstractTraceEstimator):
    """The per-core Kronecker recursion; the signs arrive inside the traces."""

    eps: float = eqx.field(static=True)

    def init_traces(self, core):
        k, d = core.hidden_size, core.input_size
        dtype = core.weight_ih.dtype
        return KFTraces(jnp.zeros(k + d + 1, dtype), jnp.zeros((k, k), dtype), jnp.ones(2, dtype))

    def core_step(self, core, traces, state, u):
        local = local_derivatives(core, state, u)
        phi_prime = local.a_x[0, 0]  # ∂h/∂a for each unit (a = a_x + a_h)
        w_hh = core.effective_weight_hh()[0]
        ja = local.a_h[0, 0][:, None] * (w_hh @ (local.rho[0][:, None] * traces.a))
        a_hat = jnp.concatenate([local.h, local.u, jnp.ones(1, local.u.dtype)])
        eps, norm = self.eps, jnp.linalg.norm
        p1 = jnp.sqrt((norm(ja) + eps) / (norm(traces.u) + eps))
        p2 = jnp.sqrt((norm(phi_prime) + eps) / (norm(a_hat) + eps))
        c1, c2 = traces.signs[0], traces.signs[1]
        new_u = c1 * p1 * traces.u + c2 * p2 * a_hat
        new_a = c1 * ja / p1 + (c2 / p2) * jnp.diag(phi_prime)
        return local.state, KFTraces(new_u, new_a, traces.signs)

    def influence(self, core, traces, tangent):
        theta = jnp.concatenate(
            [
                _masked(tangent.weight_hh, core.mask_hh)[0],
                _masked(tangent.weight_ih, core.mask_ih)[0],
                tangent.bias_ih[0][:, None],
            ],
            axis=1,
        )  # [k, k + d + 1], columns ordered like â
        return (traces.a @ (theta @ traces.u),)


class KFRTRL(AbstractOnlineEstimator):
    """KF-RTRL on VanillaRNN cores (any model built from them, e.g. ``rx.Readout``)."""

    eps: float = eqx.field(static=True)

    def __init__(self, eps: float = 1e-7):
        if not eps > 0:
            raise ValueError(f"KFRTRL eps must be positive (it guards 0/0), got {eps!r}.")
        self.eps = float(eps)

    def _inner(self) -> _KroneckerTraces:
        return _KroneckerTraces(self.eps)

    def init(self, model, *, key=None) -> KFRTRLCarry:
        """``key=None`` uses ``jax.random.key(0)`` and warns (every stream and run would
        then draw the same noise); pass a key per stream / seed.  ``OnlineLearner`` and
        ``accumulate_grads(..., key=...)`` pass one."""
        if not hasattr(model, "cores"):
            raise ValueError(
                f"KFRTRL needs a model built from rtrlax cores; got {type(model).__name__}."
            )
        for core in model.cores():
            if not isinstance(core, VanillaRNN):
                raise ValueError(
                    f"KF-RTRL is derived for vanilla RNNs (h = φ(W[h; x; 1])): every core must "
                    f"be an rx.VanillaRNN, got {type(core).__name__}. For gated cells use "
                    "rx.UORO() (unbiased) or rx.SnAp(n)."
                )
        carry = self._inner().init(model)
        key = _default_key(key)
        return KFRTRLCarry(carry.state, carry.traces, key)

    def step(self, model, carry, x, target, loss_fn):
        key, *subs = jax.random.split(carry.key, len(carry.traces) + 1)
        traces = tuple(
            t._replace(signs=jax.random.rademacher(s, (2,), t.signs.dtype))
            for t, s in zip(carry.traces, subs)
        )
        inner, out = self._inner().step(model, TraceCarry(carry.state, traces), x, target, loss_fn)
        return KFRTRLCarry(inner.state, inner.traces, key), out


def _default_key(key):
    if key is None:
        warnings.warn(
            "KFRTRL is stochastic and got no key: using jax.random.key(0), so every call draws "
            "the same noise. Pass key=... (e.g. rx.accumulate_grads(..., key=jax.random.key(seed))).",
            stacklevel=3,
        )
        return jax.random.key(0)
    return key
