"""Columnar network (Javed, White, Sutton): n LSTM columns with scalar ``h`` and ``c``.

Every column sees the whole input ``x_t`` and its own previous output ``h_{t-1,i}``;
optionally (density ``ρ > 0``) also the previous outputs of a fixed random set of other
columns.  It is an :class:`~rtrlax.cells.base.AbstractGatedCell` LSTM with
``k = n_columns`` whose own-column recurrent weights are a per-unit parameter
``weight_self`` (``[4, k]``) and whose cross-column weights are ``weight_hh`` under a
random off-diagonal mask of density ``ρ`` (the same connections for the four gates;
``None`` at ``ρ = 0``), so every structured estimator of rtrlax works on it unchanged.
With ``ρ = 0`` the recurrent Jacobian is diagonal, SnAp-1 (= :class:`~rtrlax.ColoR`) is
exact RTRL, and its traces are ``O(k·d)`` numbers (no ``k × k`` weight to trace).

Per column ``i`` (gates ``(i, f, g, o)``,
``a = W_ih x + w_self ⊙ h_{t-1,i} + W_hh h_{t-1} + b``):

.. math::

    c_{t,i} = \\sigma(a_f) c_{t-1,i} + \\sigma(a_i) \\tanh(a_g), \\qquad
    h_{t,i} = \\sigma(a_o) \\tanh(c_{t,i}).

The network's prediction is a linear readout on top:
``rx.Readout(rx.Columnar(d, n, key=k1), 1, key=k2, zero_init=True)``, or
:func:`columnar_network`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import zeros_state
from .lstm import lstm_pointwise
from .base import AbstractGatedCell, check_size, default_dtype, uniform_weight


class Columnar(AbstractGatedCell):
    """``n_columns`` scalar LSTM columns; state ``(h, c)`` of shape ``[n_columns]``.

    Args:
        input_size: size of ``x_t`` (every column sees all of it).
        n_columns: number of columns (the cell's ``hidden_size``).
        density: ρ ∈ [0, 1), the fraction of *other* columns' previous outputs each
            column receives (fixed random mask drawn from ``key``).  0: independent
            columns (the default; ColoR is then exact).
        key: PRNG key for weights and mask.

    Weights are U(−b, b) with ``b = 1/sqrt(input_size + 1 + fan-in from columns)``;
    biases zero.  ``weight_self[g, i]`` is column ``i``'s weight on its own previous
    output; ``weight_hh``/``mask_hh`` hold only the cross-column connections.
    """

    weight_ih: Float[Array, "4 columns input"]
    weight_hh: Float[Array, "4 columns columns"] | None
    bias_ih: Float[Array, "4 columns"]
    bias_hh: None
    mask_ih: None
    mask_hh: Bool[Array, "4 columns columns"] | None
    weight_self: Float[Array, "4 columns"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    density: float = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        n_columns: int,
        *,
        density: float = 0.0,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_size("input_size", input_size)
        check_size("n_columns", n_columns)
        density = float(density)
        if not (0.0 <= density < 1.0) or math.isnan(density):
            raise ValueError(
                f"Columnar density ρ is the fraction of other columns each column reads, "
                f"in [0, 1); got {density}. Use 0.0 for independent columns."
            )
        dtype = default_dtype(dtype)
        k_mask, k_ih, k_hh = jax.random.split(key, 3)
        n = n_columns
        eye = jnp.eye(n, dtype=bool)
        off = (jax.random.uniform(k_mask, (n, n)) < density) & ~eye
        bound = 1.0 / math.sqrt(input_size + 1 + density * (n - 1))
        self.weight_ih = uniform_weight(k_ih, (4, n, input_size), bound, None, dtype)
        # One [4, n, n] draw split into its diagonal and its masked off-diagonal part:
        # the same initial network for a given key whatever the storage.
        w_hh = uniform_weight(k_hh, (4, n, n), bound, None, dtype)
        self.weight_self = jnp.diagonal(w_hh, axis1=1, axis2=2)
        if density > 0.0:
            self.mask_hh = jnp.broadcast_to(off, (4, n, n))
            self.weight_hh = jnp.where(self.mask_hh, w_hh, 0)
        else:
            self.mask_hh = self.weight_hh = None
        self.bias_ih = jnp.zeros((4, n), dtype)
        self.bias_hh = None
        self.mask_ih = None
        self.input_size, self.hidden_size, self.density = input_size, n, density

    @property
    def n_columns(self) -> int:
        return self.hidden_size

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]

    def pointwise(self, ax, ah, state):
        return lstm_pointwise(ax, ah + self.weight_self * state[0], state)

    def output(self, state):
        return state[0]
