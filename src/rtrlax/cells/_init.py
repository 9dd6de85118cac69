"""Parameter initialisation shared by the gated cells (PyTorch-style uniform)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .base import check_density, check_size, default_dtype, random_mask, uniform_weight


def gated_parameters(
    key,
    *,
    gates: int,
    input_size: int,
    hidden_size: int,
    density: float,
    input_density: float,
    recurrent: bool = True,
    bias_hh: bool = False,
    dtype=None,
):
    """Weights, biases and fixed masks of a gated cell.

    Weights are U(-b, b) with ``b = 1/sqrt(k)`` (PyTorch's RNN default), scaled by
    ``1/sqrt(density)`` so that a sparse matrix keeps the pre-activation variance.
    Masked entries are zero from the start; the cells apply the masks in every step.
    """
    check_size("input_size", input_size)
    check_size("hidden_size", hidden_size)
    density = check_density("density", density)
    input_density = check_density("input_density", input_density)
    dtype = default_dtype(dtype)
    k_mih, k_mhh, k_wih, k_whh, k_bih, k_bhh = jax.random.split(key, 6)
    bound = 1.0 / math.sqrt(hidden_size)
    mask_ih = random_mask(k_mih, (gates, hidden_size, input_size), input_density)
    weight_ih = uniform_weight(
        k_wih, (gates, hidden_size, input_size), bound / math.sqrt(input_density), mask_ih, dtype
    )
    bias_ih = uniform_weight(k_bih, (gates, hidden_size), bound, None, dtype)
    if recurrent:
        mask_hh = random_mask(k_mhh, (gates, hidden_size, hidden_size), density)
        weight_hh = uniform_weight(
            k_whh, (gates, hidden_size, hidden_size), bound / math.sqrt(density), mask_hh, dtype
        )
    else:
        mask_hh = weight_hh = None
    b_hh = uniform_weight(k_bhh, (gates, hidden_size), bound, None, dtype) if bias_hh else None
    return dict(
        weight_ih=weight_ih,
        weight_hh=weight_hh,
        bias_ih=bias_ih,
        bias_hh=b_hh,
        mask_ih=mask_ih,
        mask_hh=mask_hh,
    )


def zeros_state(hidden_size: int, components: int, dtype) -> tuple:
    return tuple(jnp.zeros(hidden_size, dtype) for _ in range(components))
