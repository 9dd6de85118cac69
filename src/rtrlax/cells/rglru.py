"""The real-gated linear recurrent unit, RG-LRU (De et al., 2024: Griffin / Hawk).

.. math::

    r_t &= \\sigma(W_a x_t + b_a), \\qquad i_t = \\sigma(W_x x_t + b_x),
        \\qquad v_t = W_v x_t + b_v\\\\
    a_t &= \\sigma(\\Lambda)^{c\\, r_t} = \\exp\\big(-c\\,\\mathrm{softplus}(-\\Lambda)\\, r_t\\big),
        \\qquad c = 8\\\\
    h_t &= a_t \\odot h_{t-1} + \\sqrt{1 - a_t^2} \\odot (i_t \\odot v_t)

Gates read the input only: linear in the state, element-wise (SnAp-1 = RTRL; parallel
scan over a sequence).  Variant: in Griffin the recurrence's input ``x_t`` is already the
block's projection to the recurrence width; here that projection is the cell's third
gate ``v_t = W_v x_t + b_v``, so the cell takes any input size.  ``Λ`` is initialised
so that ``a^c = σ(Λ)^c`` is uniform on ``[0.9, 0.999]`` (the paper's ring).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._init import gated_parameters, zeros_state
from .base import AbstractLinearGatedCell

#: The fixed scale ``c`` of the recurrence gate's exponent (De et al.).
C = 8.0


class RGLRU(AbstractLinearGatedCell):
    """RG-LRU; gates ``(r, i, v)``; unit parameter ``Λ`` (``lambda_param``); state
    ``(h,)``, output ``h``.

    Args:
        r_min, r_max: the ring ``σ(Λ)^c`` is initialised on (``0 < r_min < r_max < 1``).
    """

    weight_ih: Float[Array, "3 hidden input"]
    weight_hh: None
    bias_ih: Float[Array, "3 hidden"]
    bias_hh: None
    mask_ih: Bool[Array, "3 hidden input"] | None
    mask_hh: None
    lambda_param: Float[Array, " hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
        input_density: float = 1.0, r_min: float = 0.9, r_max: float = 0.999, dtype=None,
    ):  # fmt: skip
        if not (0.0 < r_min < r_max < 1.0):
            raise ValueError(
                f"RGLRU needs 0 < r_min < r_max < 1 (the ring σ(Λ)^c is drawn from), got "
                f"r_min={r_min}, r_max={r_max}. The paper's: r_min=0.9, r_max=0.999."
            )
        k_p, k_l = jax.random.split(key)
        p = gated_parameters(
            k_p, gates=3, input_size=input_size, hidden_size=hidden_size, density=1.0,
            input_density=input_density, recurrent=False, dtype=dtype,
        )  # fmt: skip
        self.weight_ih, self.bias_ih, self.mask_ih = p["weight_ih"], p["bias_ih"], p["mask_ih"]
        self.weight_hh = self.bias_hh = self.mask_hh = None
        dtype = self.weight_ih.dtype
        ring = jax.random.uniform(k_l, (hidden_size,), dtype, r_min, r_max)  # a^c
        a = ring ** (1.0 / C)
        self.lambda_param = jnp.log(a) - jnp.log1p(-a)  # logit: σ(Λ) = a
        self.input_size, self.hidden_size = input_size, hidden_size

    def initial_state(self) -> tuple[Array]:
        return zeros_state(self.hidden_size, 1, self.weight_ih.dtype)

    def recurrent_input(self, state):
        return state[0]  # unused: no weight_hh

    def transition(self, ax):
        r, i = jax.nn.sigmoid(ax[0]), jax.nn.sigmoid(ax[1])
        log_a = -C * jax.nn.softplus(-self.lambda_param) * r
        a = jnp.exp(log_a)
        scale = jnp.sqrt(-jnp.expm1(2 * log_a))  # sqrt(1 - a²), accurate near a = 1
        return a, scale * (i * ax[2])

    def pointwise(self, ax, ah, state):
        (h,) = state
        a, b = self.transition(ax)
        return (a * h + b,)

    def output(self, state):
        return state[0]
