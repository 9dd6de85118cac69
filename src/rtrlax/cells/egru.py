"""Event-based GRU (EGRU; Subramoney et al., ICLR 2023), written as a gated cell.

Per unit, with a learned threshold ϑ (one per unit) and gates ordered ``(u, r, z)``:

.. math::

    u &= \\sigma(a^x_u + a^h_u),\\quad r = \\sigma(a^x_r + a^h_r),\\quad
    z = \\tanh(a^x_z + r \\odot a^h_z)\\\\
    o_{t-1} &= H(c_{t-1} - \\vartheta)\\\\
    c_t &= u \\odot (c_{t-1} - o_{t-1} \\odot \\vartheta) + (1 - u) \\odot z
        && \\text{(reset by subtraction after an event)}\\\\
    y_t &= H(c_t - \\vartheta) \\odot c_t && \\text{(only y is communicated)}

with :math:`a^h = W_{hh}\\, y_{t-1} + b_{hh}`.  The state is ``(c, y)``: ``y`` is
computed inside the element-wise update, so the recurrent input ``ρ(s) = y`` depends on
no parameter and the threshold is an ordinary *unit parameter* — SnAp-1, sparse RTRL
and every other structured estimator apply unchanged.

``H`` is the Heaviside step (``H(0) = 0``); its derivative is replaced by the
pseudo-derivative :math:`\\gamma_{pd}\\max(0, 1 - |v| / w)` (``pseudo_derivative``,
``pseudo_width``; 0.7 and 1 by default) through a ``jax.custom_jvp``, so forward-mode
(RTRL), reverse-mode (BPTT) and the local Jacobians all see the same surrogate.

Activity sparsity: a unit that did not fire (``y = 0``) sends nothing through
``W_hh``; if it also lies outside the pseudo-derivative window its row of the
influence matrix through ``y`` vanishes (what :class:`rtrlax.SparseRTRL` exploits).
Two fractions measure it (:meth:`EGRU.fired`, :meth:`EGRU.backward_active`): the
*forward* activity, units that fired (``c_t > ϑ``), and the *backward* activity, units
that fired or lie inside the window (``|c_t − ϑ| < w``) — only those carry a non-zero
row of ``M`` into the next step.  To make both small, train as the EGRU paper does:

* a narrow pseudo-derivative (``pseudo_width`` w, e.g. 0.1–0.3 instead of 1), so most
  silent units sit outside the window most of the time;
* an activity regulariser: add :math:`\lambda \cdot \mathrm{mean}_i H(c_{t,i} - \vartheta_i)`
  (:meth:`EGRU.firing_rate`, differentiable through the same pseudo-derivative) to each
  step's loss.  Online estimators see only ``loss_fn(y, target)``, so the regulariser is
  added where the states are at hand — a BPTT/TBPTT loss over a window of states
  (``benchmarks/sparse_rtrl.py`` trains this way).

Differences from the paper's equations (the project's algorithm notes' form, chosen so
that the cell is a gated cell): the reset gate multiplies the recurrent matmul (``r ⊙ (W_hz y + b)``,
PyTorch/cuDNN placement, as in rtrlax's GRU) instead of its input (``W_z (r ⊙ y)``); the
update gate ``u`` weighs the old state (``u = 1`` keeps ``c``); and the reset term is
applied inside the gated combination.  The paper's form with ``r`` inside the matmul
would make a reset-gate parameter reach all units in one step.  The event that triggers
the reset, ``o_{t-1} = H(c_{t-1} - ϑ)``, is recomputed from the state with the same
pseudo-derivative, so gradients flow through the reset term too (implementations that
detach the reset give the same forward pass and slightly different gradients).  These
equations were checked against the project's algorithm notes (not part of this
repository), not against the papers' text verbatim.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def heaviside(v: Array, gamma: float, width: float) -> Array:
    """``H(v) = 1[v > 0]`` with the pseudo-derivative ``gamma * max(0, 1 - |v|/width)``."""
    return (v > 0).astype(v.dtype)


@heaviside.defjvp
def _heaviside_jvp(gamma, width, primals, tangents):
    (v,), (dv,) = primals, tangents
    pd = gamma * jnp.maximum(0.0, 1.0 - jnp.abs(v) / width)
    return heaviside(v, gamma, width), pd.astype(v.dtype) * dv


class EGRU(AbstractGatedCell):
    """Event-based GRU; state ``(c, y)``, output ``y`` (sparse: zero for silent units).

    Args:
        input_size, hidden_size: sizes.
        key: PRNG key for the weights and masks.
        density, input_density: fraction of recurrent / input weights kept by a fixed
            random mask (1.0 = dense).
        threshold_init: initial threshold of every unit (0.3).
        pseudo_derivative, pseudo_width: height γ_pd and half-width w of the
            Heaviside's pseudo-derivative (0.7, 1.0).
    """

    weight_ih: Float[Array, "3 hidden input"]
    weight_hh: Float[Array, "3 hidden hidden"]
    bias_ih: Float[Array, "3 hidden"]
    bias_hh: Float[Array, "3 hidden"]
    threshold: Float[Array, " hidden"]
    mask_ih: Bool[Array, "3 hidden input"] | None
    mask_hh: Bool[Array, "3 hidden hidden"] | None
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    pseudo_derivative: float = eqx.field(static=True)
    pseudo_width: float = eqx.field(static=True)
    #: number of unmasked entries of ``(weight_ih, weight_hh)`` (static: lets sparse RTRL
    #: size its compressed influence matrix under ``jit``)
    kept_counts: tuple[int, int] = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key: PRNGKeyArray,
        density: float = 1.0,
        input_density: float = 1.0,
        threshold_init: float = 0.3,
        pseudo_derivative: float = 0.7,
        pseudo_width: float = 1.0,
        dtype=None,
    ):
        if not pseudo_width > 0:
            raise ValueError(f"pseudo_width must be positive, got {pseudo_width}.")
        if not pseudo_derivative >= 0:
            raise ValueError(f"pseudo_derivative must be >= 0, got {pseudo_derivative}.")
        p = gated_parameters(
            key,
            gates=3,
            input_size=input_size,
            hidden_size=hidden_size,
            density=density,
            input_density=input_density,
            bias_hh=True,
            dtype=dtype,
        )
        self.weight_ih, self.weight_hh = p["weight_ih"], p["weight_hh"]
        self.bias_ih, self.bias_hh = p["bias_ih"], p["bias_hh"]
        self.mask_ih, self.mask_hh = p["mask_ih"], p["mask_hh"]
        self.threshold = jnp.full((hidden_size,), threshold_init, self.weight_ih.dtype)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.pseudo_derivative = float(pseudo_derivative)
        self.pseudo_width = float(pseudo_width)
        self.kept_counts = tuple(
            int(w.size) if m is None else int(m.sum())
            for w, m in ((self.weight_ih, self.mask_ih), (self.weight_hh, self.mask_hh))
        )

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def _event(self, c: Array) -> Array:
        return heaviside(c - self.threshold, self.pseudo_derivative, self.pseudo_width)

    def recurrent_input(self, state):
        return state[1]

    def pointwise(self, ax, ah, state):
        c_tm1, _ = state
        u = jax.nn.sigmoid(ax[0] + ah[0])
        r = jax.nn.sigmoid(ax[1] + ah[1])
        z = jnp.tanh(ax[2] + r * ah[2])
        c = u * (c_tm1 - self._event(c_tm1) * self.threshold) + (1 - u) * z
        return (c, self._event(c) * c)

    def output(self, state):
        return state[1]

    def firing_rate(self, state) -> Array:
        """Mean over units of the event ``H(c − ϑ)`` of ``state = (c, y)``: the forward
        activity, differentiable (in ``c`` and ``ϑ``) through the pseudo-derivative —
        the activity regulariser's term, ``λ · firing_rate(s_t)`` per step."""
        return jnp.mean(self._event(state[0]))

    def fired(self, state) -> Array:
        """``[k]`` booleans: units whose event is on (``c > ϑ``; they send ``y = c``)."""
        return state[0] > self.threshold

    def backward_active(self, state) -> Array:
        """``[k]`` booleans: units that fired or lie inside the pseudo-derivative window
        ``|c − ϑ| < w`` — those whose row of the influence matrix through ``y`` can be
        non-zero (what sparse RTRL cannot skip in the next step)."""
        return self.fired(state) | (jnp.abs(state[0] - self.threshold) < self.pseudo_width)
