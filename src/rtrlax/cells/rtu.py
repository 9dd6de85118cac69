"""Recurrent trace units, RTUs (Elelimy, White, Bowling, White; NeurIPS 2024,
arXiv 2409.01449): a complex-diagonal recurrence written with real numbers.

Each of the ``k`` units holds a complex number ``c = c¹ + i c²`` and rotates-and-scales
it by ``λ = r e^{iθ}``, ``r = exp(−exp(ν_log))``, ``θ = exp(θ_log)`` (the LRU's
exp-exp parameterisation, so ``|λ| < 1``); the input enters through two real maps.

**Linear RTU** (:class:`RTU`) — the recurrence is linear, the nonlinearity ``f`` acts
on the output only:

.. math::

    c^1_t &= r\\cos\\theta \\odot c^1_{t-1} - r\\sin\\theta \\odot c^2_{t-1}
             + n \\odot (W^1 x_t + b^1)\\\\
    c^2_t &= r\\sin\\theta \\odot c^1_{t-1} + r\\cos\\theta \\odot c^2_{t-1}
             + n \\odot (W^2 x_t + b^2)\\\\
    y_t &= [f(c^1_t);\\ f(c^2_t)] \\qquad (2k \\text{ outputs})

**Non-linear RTU** (:class:`NonlinearRTU`) — ``f`` inside the recurrence:
``c^1_t = f(\\dots)``, ``c^2_t = f(\\dots)`` with the same arguments, ``y_t = [c^1_t; c^2_t]``.

Both are gated cells with ``weight_ih = [W¹; W²]`` (G = 2), no ``weight_hh``, unit
parameters ``nu_log``, ``theta_log`` and state ``(c¹, c²)`` (m = 2): each unit's pair
depends on its own previous pair only, so SnAp-1 is exact RTRL — the paper's point
(its RTRL update is linear in the number of units).  The linear RTU is linear in its
state and evaluates a whole sequence with a parallel scan.

Input normalisation ``n = √(1 − r²)`` (per unit; it keeps a unit's stationary variance
independent of ``r``) as in the authors' code (``input_norm=True``, the default);
``input_norm=False`` drops it (``n = 1``).  Differences from the paper's cell, on purpose: biases ``b¹, b²``
on the input maps (the paper's maps have none; a zero bias gives the paper's cell) and
``f`` = ReLU by default (``activation``; the paper also uses others).  Initialisation as
the LRU's: ``r`` uniform on the ring ``[r_min, r_max]`` (λ uniform over the annulus),
phase ``U[0, max_phase]``; input weights ``U(−1/√k, 1/√k)``.  Checked against the
authors' public implementation (``g = r cos θ``, ``φ = r sin θ`` with the exp-exp
parameterisation, the rotation above, the ``√(1 − r²)`` input factor).
"""

from __future__ import annotations

import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractGatedCell, AbstractLinearGatedCell
from .lru import _check_ring, lambda_parts


def _ring(key, hidden_size, r_min, r_max, max_phase, dtype):
    _check_ring(r_min, r_max, max_phase)
    k_r, k_p = jax.random.split(key)
    u1 = jax.random.uniform(k_r, (hidden_size,), dtype)
    u2 = jax.random.uniform(k_p, (hidden_size,), dtype, minval=1e-6)
    modulus = jnp.maximum(jnp.sqrt(u1 * (r_max**2 - r_min**2) + r_min**2), 1e-6)
    return jnp.log(-jnp.log(modulus)), jnp.log(max_phase * u2)


def _input_scale(nu_log, input_norm: bool):
    """``n = √(1 − r²)`` with ``r = exp(−exp(ν_log))`` (or 1 without normalisation)."""
    if not input_norm:
        return 1.0
    return jnp.sqrt(-jnp.expm1(-2 * jnp.exp(nu_log)))


def _rotate(cell, ax, state):
    """The linear pre-activation of both halves: ``λ c_{t-1} + n (W x_t + b)`` (real form)."""
    c1, c2 = state
    lam_re, lam_im = lambda_parts(cell.nu_log, cell.theta_log)
    n = _input_scale(cell.nu_log, cell.input_norm)
    return lam_re * c1 - lam_im * c2 + n * ax[0], lam_im * c1 + lam_re * c2 + n * ax[1]


def _init(self, input_size, hidden_size, key, input_density, r_min, r_max, max_phase,
          activation, input_norm, dtype):  # fmt: skip
    k_p, k_l = jax.random.split(key)
    p = gated_parameters(
        k_p, gates=2, input_size=input_size, hidden_size=hidden_size, density=1.0,
        input_density=input_density, recurrent=False, dtype=dtype,
    )  # fmt: skip
    self.weight_ih, self.bias_ih, self.mask_ih = p["weight_ih"], p["bias_ih"], p["mask_ih"]
    self.weight_hh = self.bias_hh = self.mask_hh = None
    self.nu_log, self.theta_log = _ring(
        k_l, hidden_size, r_min, r_max, max_phase, self.weight_ih.dtype
    )
    self.activation = activation
    self.input_norm = bool(input_norm)
    self.input_size, self.hidden_size = input_size, hidden_size


class RTU(AbstractLinearGatedCell):
    """Linear recurrent trace unit (see module doc): state ``(c¹, c²)``, output
    ``[f(c¹); f(c²)]`` of size ``2·hidden_size``.

    Args:
        input_size, hidden_size: ``x_t`` size and number of complex units ``k``.
        key: PRNG key.
        input_density: fraction of the input weights kept (fixed random mask).
        r_min, r_max, max_phase: the ring ``|λ|`` and the phases are drawn from.
        activation: ``f`` (default ReLU).
        input_norm: scale the input by ``√(1 − r²)`` per unit (the authors' code; default).
    """

    weight_ih: Float[Array, "2 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "2 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "2 hidden input"] | None
    mask_hh: None
    nu_log: Float[Array, " hidden"]
    theta_log: Float[Array, " hidden"]
    activation: Callable = eqx.field(static=True)
    input_norm: bool = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, r_min: float = 0.0, r_max: float = 1.0 - 1e-3,
        max_phase: float = 2 * math.pi, activation: Callable = jax.nn.relu,
        input_norm: bool = True, dtype=None,
    ):  # fmt: skip
        _init(self, input_size, hidden_size, key, input_density, r_min, r_max, max_phase,
              activation, input_norm, dtype)  # fmt: skip

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]  # unused: no weight_hh

    def pointwise(self, ax, ah, state):
        return _rotate(self, ax, state)

    def transition(self, ax):
        lam_re, lam_im = lambda_parts(self.nu_log, self.theta_log)
        n = _input_scale(self.nu_log, self.input_norm)
        return jax.lax.complex(lam_re, lam_im), jax.lax.complex(n * ax[0], n * ax[1])

    def output(self, state):
        return jnp.concatenate([self.activation(state[0]), self.activation(state[1])])


class NonlinearRTU(AbstractGatedCell):
    """Non-linear recurrent trace unit (see module doc): ``f`` inside the recurrence;
    state ``(c¹, c²)``, output ``[c¹; c²]`` of size ``2·hidden_size``.  Same arguments
    as :class:`RTU`."""

    weight_ih: Float[Array, "2 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "2 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "2 hidden input"] | None
    mask_hh: None
    nu_log: Float[Array, " hidden"]
    theta_log: Float[Array, " hidden"]
    activation: Callable = eqx.field(static=True)
    input_norm: bool = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, r_min: float = 0.0, r_max: float = 1.0 - 1e-3,
        max_phase: float = 2 * math.pi, activation: Callable = jax.nn.relu,
        input_norm: bool = True, dtype=None,
    ):  # fmt: skip
        _init(self, input_size, hidden_size, key, input_density, r_min, r_max, max_phase,
              activation, input_norm, dtype)  # fmt: skip

    def initial_state(self) -> tuple[Array, Array]:
        return zeros_state(self.hidden_size, 2, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]  # unused: no weight_hh

    def pointwise(self, ax, ah, state):
        c1, c2 = _rotate(self, ax, state)
        return self.activation(c1), self.activation(c2)

    def output(self, state):
        return jnp.concatenate(state)
