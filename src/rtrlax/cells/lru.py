"""The linear recurrent unit (LRU; Orvieto et al., 2023), written as a gated cell.

One LRU layer maps inputs ``u_t ∈ R^H`` to outputs ``y_t ∈ R^H`` through a complex
diagonal recurrence with state ``h_t ∈ C^N``:

.. math::

    \\lambda &= \\exp(-\\exp(\\nu_{\\log}) + i\\,\\exp(\\theta_{\\log}))   && |\\lambda| < 1\\\\
    h_t &= \\lambda \\odot h_{t-1} + \\gamma \\odot (B u_t),
        \\quad \\gamma = \\exp(\\gamma_{\\log}),\\; B = B_{re} + i B_{im}\\\\
    y_t &= \\mathrm{Re}(C h_t) + D \\odot u_t, \\quad C = C_{re} + i C_{im}

Every stored parameter is real.  The recurrence is split in two modules:

* :class:`LRUCore` — the recurrence alone, an
  :class:`~rtrlax.cells.base.AbstractGatedCell` with state ``(h_re, h_im)`` (m = 2),
  ``weight_ih = [B_re; B_im]`` (G = 2 "gates": the real and imaginary parts of ``B u``),
  no ``weight_hh`` and no biases, unit parameters ``nu_log``, ``theta_log``,
  ``gamma_log`` and the element-wise complex multiply-add as ``pointwise``.  Because
  its recurrence is diagonal, SnAp-1 on it *is* exact RTRL (estimators/snap.py).
* :class:`LRU` — the layer: an ``LRUCore`` plus the glue ``C`` and ``D``, which get
  instantaneous gradients under every trace estimator.

Initialisation (Orvieto et al.): ``|λ|`` uniform on the ring ``[r_min, r_max]`` (the
density of λ is uniform over the annulus), phase ``U[0, max_phase]``,
``γ_log = log sqrt(1 − |λ|²)``, ``B_re, B_im ~ N(0, 1/(2H))``,
``C_re, C_im ~ N(0, 1/N)``, ``D ~ N(0, 1)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from .base import (
    AbstractLinearGatedCell,
    check_input,
    check_size,
    default_dtype,
    plain_core_call,
)


def _check_ring(r_min: float, r_max: float, max_phase: float) -> None:
    if not (0.0 <= r_min < r_max < 1.0):
        raise ValueError(
            f"the LRU needs 0 <= r_min < r_max < 1 (the ring |λ| is drawn from), got "
            f"r_min={r_min}, r_max={r_max}. Typical values: r_min=0.9, r_max=0.999."
        )
    if not (0.0 < max_phase <= 2 * math.pi + 1e-6):
        raise ValueError(
            f"max_phase must lie in (0, 2π], got {max_phase}. Use e.g. 2π, or π/10 for "
            "long-range tasks."
        )


def lambda_parts(nu_log: Array, theta_log: Array) -> tuple[Array, Array]:
    """``(Re λ, Im λ)`` from the exp-exp parameterisation."""
    modulus = jnp.exp(-jnp.exp(nu_log))
    phase = jnp.exp(theta_log)
    return modulus * jnp.cos(phase), modulus * jnp.sin(phase)


class LRUCore(AbstractLinearGatedCell):
    """The LRU recurrence ``h_t = λ ⊙ h_{t-1} + γ ⊙ (B u_t)`` as a gated cell.

    State ``(h_re, h_im)``, each ``[N]``; ``weight_ih[0] = B_re``, ``weight_ih[1] = B_im``.
    ``output`` returns ``Re h`` (so ``rx.Readout(LRUCore(...), ...)`` is a single LRU with
    a real linear readout); the layer :class:`LRU` applies the complex ``C`` and ``D``.
    """

    weight_ih: Float[Array, "2 hidden input"]
    weight_hh: None
    bias_ih: None
    bias_hh: None
    mask_ih: None
    mask_hh: None
    nu_log: Float[Array, " hidden"]
    theta_log: Float[Array, " hidden"]
    gamma_log: Float[Array, " hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key: PRNGKeyArray,
        r_min: float = 0.0,
        r_max: float = 1.0 - 1e-3,
        max_phase: float = 2 * math.pi,
        dtype=None,
    ):
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        _check_ring(r_min, r_max, max_phase)
        dtype = default_dtype(dtype)
        k_r, k_p, k_b = jax.random.split(key, 3)
        u1 = jax.random.uniform(k_r, (hidden_size,), dtype)
        u2 = jax.random.uniform(k_p, (hidden_size,), dtype, minval=1e-6)
        # |λ|² uniform on [r_min², r_max²]: λ uniform over the annulus.
        modulus = jnp.sqrt(u1 * (r_max**2 - r_min**2) + r_min**2)
        modulus = jnp.maximum(modulus, 1e-6)
        self.nu_log = jnp.log(-jnp.log(modulus))
        self.theta_log = jnp.log(max_phase * u2)
        self.gamma_log = jnp.log(jnp.sqrt(1.0 - modulus**2))
        scale = 1.0 / math.sqrt(2 * input_size)
        self.weight_ih = scale * jax.random.normal(k_b, (2, hidden_size, input_size), dtype)
        self.weight_hh = self.bias_ih = self.bias_hh = None
        self.mask_ih = self.mask_hh = None
        self.input_size, self.hidden_size = input_size, hidden_size

    @property
    def B_re(self) -> Float[Array, "hidden input"]:
        return self.weight_ih[0]

    @property
    def B_im(self) -> Float[Array, "hidden input"]:
        return self.weight_ih[1]

    def initial_state(self) -> tuple[Array, Array]:
        z = jnp.zeros(self.hidden_size, self.weight_ih.dtype)
        return (z, z)

    def recurrent_input(self, state):
        return state[0]  # unused: the LRU has no weight_hh

    def pointwise(self, ax, ah, state):
        h_re, h_im = state
        lam_re, lam_im = lambda_parts(self.nu_log, self.theta_log)
        gamma = jnp.exp(self.gamma_log)
        return (
            lam_re * h_re - lam_im * h_im + gamma * ax[0],
            lam_re * h_im + lam_im * h_re + gamma * ax[1],
        )

    def transition(self, ax):
        lam_re, lam_im = lambda_parts(self.nu_log, self.theta_log)
        gamma = jnp.exp(self.gamma_log)
        return jax.lax.complex(lam_re, lam_im), jax.lax.complex(gamma * ax[0], gamma * ax[1])

    def output(self, state):
        return state[0]


class LRU(eqx.Module):
    """One LRU layer: ``y_t = Re(C h_t) + D ⊙ u_t`` on top of an :class:`LRUCore`.

    A model under the rtrlax contract (``initial_state``, ``__call__``, ``cores``,
    ``forward``).  ``C`` and ``D`` are non-recurrent glue: trace estimators give them
    their instantaneous gradient.

    Args:
        input_size: ``H``, the size of ``u_t`` and ``y_t``.
        hidden_size: ``N``, the number of complex state units.
        key: PRNG key.
        r_min, r_max: the ring ``|λ|`` is initialised on (``0 <= r_min < r_max < 1``).
        max_phase: phases are initialised uniformly on ``[0, max_phase]``.
    """

    core: LRUCore
    C_re: Float[Array, "input hidden"]
    C_im: Float[Array, "input hidden"]
    D: Float[Array, " input"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        key: PRNGKeyArray,
        r_min: float = 0.0,
        r_max: float = 1.0 - 1e-3,
        max_phase: float = 2 * math.pi,
        dtype=None,
    ):
        k_core, k_cre, k_cim, k_d = jax.random.split(key, 4)
        self.core = LRUCore(
            input_size, hidden_size, key=k_core, r_min=r_min, r_max=r_max,
            max_phase=max_phase, dtype=dtype,
        )  # fmt: skip
        dtype = self.core.weight_ih.dtype
        scale = 1.0 / math.sqrt(hidden_size)
        self.C_re = scale * jax.random.normal(k_cre, (input_size, hidden_size), dtype)
        self.C_im = scale * jax.random.normal(k_cim, (input_size, hidden_size), dtype)
        self.D = jax.random.normal(k_d, (input_size,), dtype)

    @property
    def input_size(self) -> int:
        return self.core.input_size

    @property
    def hidden_size(self) -> int:
        return self.core.hidden_size

    @property
    def output_size(self) -> int:
        return self.core.input_size

    def initial_state(self) -> State:
        return self.core.initial_state()

    def cores(self) -> tuple[LRUCore]:
        return (self.core,)

    def forward(self, state: State, u: Array, *, core_call) -> tuple[State, Array]:
        check_input(u, self.input_size, "LRU")
        state = core_call(self.core, state, u)
        h_re, h_im = state
        return state, self.C_re @ h_re - self.C_im @ h_im + self.D * u

    def __call__(self, state: State, u: Array) -> tuple[State, Array]:
        return self.forward(state, u, core_call=plain_core_call)

    @property
    def has_sequence(self) -> bool:
        return True

    def sequence(self, state: State, us: Float[Array, "time input"]) -> tuple[State, Array]:
        """``(s_T, ys)`` over a whole sequence ``us`` ``[T, H]``: the input map and ``C``
        as matrix products over all steps, the recurrence as a parallel scan (equal to
        stepping; ``AbstractLinearGatedCell``)."""
        h_re, h_im = self.core.states(state, us)
        ys = h_re @ self.C_re.T - h_im @ self.C_im.T + self.D * us
        return (h_re[-1], h_im[-1]), ys


def make_lru_core(
    input_size: int, hidden_size: int, *, key: PRNGKeyArray, density: float = 1.0,
    input_density: float = 1.0,
) -> LRUCore:  # fmt: skip
    """An :class:`LRUCore` with the long-memory ring ``|λ| ∈ [0.9, 0.999]`` (the cell
    factory signature of ``rtrlax run``; the LRU has no masks)."""
    if density != 1.0 or input_density != 1.0:
        raise ValueError(
            "the LRU core has no weight masks: run it with --density 1 --input-density 1 "
            f"(got density={density}, input_density={input_density})."
        )
    return LRUCore(input_size, hidden_size, key=key, r_min=0.9, r_max=0.999)
