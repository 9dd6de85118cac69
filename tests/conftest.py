"""Tests check maths in float64 (DESIGN.md); tests that want float32 pass dtypes."""

import jax

jax.config.update("jax_enable_x64", True)
