"""The columnar network of the ColoR/CCN papers: columns of LSTM units with a readout."""

from __future__ import annotations

import jax
from jaxtyping import PRNGKeyArray

from ..cells.columnar import Columnar
from .readout import Readout


def columnar_network(
    input_size: int,
    n_columns: int,
    *,
    output_size: int = 1,
    density: float = 0.0,
    key: PRNGKeyArray,
    dtype=None,
):
    """A columnar network with its linear readout (zero-initialised, as in the papers):
    ``rx.Readout(rx.Columnar(...), output_size, zero_init=True)``."""
    k_cell, k_out = jax.random.split(key)
    cell = Columnar(input_size, n_columns, density=density, key=k_cell, dtype=dtype)
    return Readout(cell, output_size, key=k_out, zero_init=True)
