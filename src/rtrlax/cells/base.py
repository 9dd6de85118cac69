"""The recurrent-core protocol every estimator builds on.

A *cell* is an unbatched :class:`equinox.Module` with ``initial_state()`` and
``__call__(state, x) -> (state, y)``.  Most cells in rtrlax share one more piece of
structure, captured by :class:`AbstractGatedCell`, which is what lets the structured
estimators (SnAp-n, ColoR, the online LRU, sparse RTRL) work on every cell without
per-cell code:

.. math::

    h_{t-1} &= \\rho(s_{t-1})                    && \\text{(recurrent input, per unit)}\\\\
    a^x_t  &= W_{ih} x_t + b_{ih}                && [G, k]\\\\
    a^h_t  &= W_{hh} h_{t-1} + b_{hh}            && [G, k]\\\\
    s_t    &= \\phi(a^x_t, a^h_t, s_{t-1})        && \\text{(element-wise over the k units)}\\\\
    y_t    &= \\omega(s_t)                        && \\text{(per unit)}

``G`` is the number of gates, ``k`` the number of units, and the state ``s`` is a
tuple of ``m`` arrays of shape ``[k]`` (``m = 1`` for a vanilla RNN or GRU,
``m = 2`` for an LSTM's ``(h, c)``).  Everything that mixes units is in the two
matrix products; everything else acts on each unit alone.  Parameters other than the
four ``weight_*``/``bias_*`` arrays are *unit parameters*: arrays whose last axis is
the unit axis (e.g. the EGRU threshold, the LRU's ``nu_log``), used only inside
``phi``, ``rho`` and ``omega``.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._types import State

#: Names of the parameter fields of a gated cell that are not unit parameters.
LINEAR_FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class AbstractCell(eqx.Module):
    """A recurrent core: ``(state, x) -> (state, y)``, unbatched."""

    input_size: eqx.AbstractVar[int]
    hidden_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def initial_state(self) -> State:
        """The state at the start of a stream (zeros)."""

    @abc.abstractmethod
    def update(self, state: State, x: Float[Array, " input"]) -> State:
        """The state update ``s_t = f(s_{t-1}, x_t)``."""

    @abc.abstractmethod
    def output(self, state: State) -> Array:
        """The cell's output ``y`` read from its state."""

    def __call__(self, state: State, x: Float[Array, " input"]) -> tuple[State, Array]:
        """One step: ``(s_{t-1}, x_t) -> (s_t, y_t)``."""
        return self.forward(state, x, core_call=plain_core_call)

    def cores(self) -> tuple["AbstractCell", ...]:
        """The recurrent cores of this model in call order (a cell is its own core)."""
        return (self,)

    def forward(self, state: State, x: Array, *, core_call) -> tuple[State, Array]:
        """One step in which the core's update is delegated to ``core_call``.

        Structured estimators pass their own ``core_call(core, s_tm1, u) -> s_t`` to
        carry traces alongside the state; ``__call__`` passes the plain update.
        """
        state = core_call(self, state, x)
        return state, self.output(state)


def plain_core_call(core: AbstractCell, state: State, u: Array) -> State:
    """The ``core_call`` of an ordinary forward pass."""
    return core.update(state, u)


class AbstractGatedCell(AbstractCell):
    """A cell with the structure ``linear maps -> element-wise update`` (see module doc).

    Subclasses define the fields below and the three per-unit maps ``recurrent_input``
    (ρ), ``pointwise`` (φ) and ``output`` (ω).  ``weight_hh``/``bias_hh``/masks may be
    ``None`` when a cell has no such term.
    """

    weight_ih: eqx.AbstractVar[Float[Array, "gates hidden input"]]
    weight_hh: eqx.AbstractVar[Float[Array, "gates hidden hidden"] | None]
    bias_ih: eqx.AbstractVar[Float[Array, "gates hidden"] | None]
    bias_hh: eqx.AbstractVar[Float[Array, "gates hidden"] | None]
    mask_ih: eqx.AbstractVar[Bool[Array, "gates hidden input"] | None]
    mask_hh: eqx.AbstractVar[Bool[Array, "gates hidden hidden"] | None]

    @abc.abstractmethod
    def recurrent_input(self, state: State) -> Float[Array, " hidden"]:
        """ρ: what the previous state feeds into ``weight_hh`` (per unit)."""

    @abc.abstractmethod
    def pointwise(
        self, ax: Float[Array, "gates hidden"], ah: Float[Array, "gates hidden"], state: State
    ) -> State:
        """φ: the element-wise state update from the gate pre-activations."""

    # --- shared, final -------------------------------------------------------------

    @property
    def num_gates(self) -> int:
        return self.weight_ih.shape[0]

    def effective_weight_ih(self) -> Array:
        return _masked(self.weight_ih, self.mask_ih)

    def effective_weight_hh(self) -> Array | None:
        return None if self.weight_hh is None else _masked(self.weight_hh, self.mask_hh)

    def preactivations(self, state: State, x: Array) -> tuple[Array, Array]:
        """``(a^x, a^h)``, each ``[G, k]`` (``a^h`` is zeros for a cell without W_hh)."""
        ax = jnp.einsum("gkd,d->gk", self.effective_weight_ih(), x)
        if self.bias_ih is not None:
            ax = ax + self.bias_ih
        w_hh = self.effective_weight_hh()
        if w_hh is None:
            ah = jnp.zeros_like(ax)
        else:
            ah = jnp.einsum("gkj,j->gk", w_hh, self.recurrent_input(state))
        if self.bias_hh is not None:
            ah = ah + self.bias_hh
        return ax, ah

    def update(self, state: State, x: Float[Array, " input"]) -> State:
        check_input(x, self.input_size, type(self).__name__)
        ax, ah = self.preactivations(state, x)
        return self.pointwise(ax, ah, state)


# --- helpers shared by the cell files ---------------------------------------------------


def _masked(w: Array, mask: Array | None) -> Array:
    return w if mask is None else jnp.where(mask, w, jnp.zeros((), w.dtype))


def check_input(x: Array, input_size: int, who: str) -> None:
    """Static (trace-time) shape check of one unbatched input."""
    if jnp.ndim(x) != 1 or x.shape[0] != input_size:
        raise ValueError(
            f"{who} expects one unbatched input of shape ({input_size},), got shape "
            f"{tuple(jnp.shape(x))}. Batch with jax.vmap and feed one step at a time "
            "(accumulate_grads takes xs of shape [T, input_size])."
        )


def check_density(name: str, density: float) -> float:
    density = float(density)
    if not (0.0 < density <= 1.0) or math.isnan(density):
        raise ValueError(
            f"{name} must lie in (0, 1] (the fraction of weights kept), got {density}. "
            "Use 1.0 for a dense matrix."
        )
    return density


def check_size(name: str, size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {size!r}.")
    return size


def random_mask(
    key: PRNGKeyArray, shape: tuple[int, ...], density: float
) -> Bool[Array, "..."] | None:
    """A fixed random mask keeping exactly ``round(density * n)`` of the last two axes'
    ``n`` entries in each leading slice (at least one); ``None`` when dense."""
    if density >= 1.0:
        return None
    *lead, rows, cols = shape
    n = rows * cols
    keep = max(1, round(density * n))
    nlead = math.prod(lead)
    keys = jax.random.split(key, nlead)

    def one(k):
        order = jax.random.permutation(k, n)
        return (jnp.zeros(n, bool).at[order[:keep]].set(True)).reshape(rows, cols)

    return jax.vmap(one)(keys).reshape(shape)


def default_dtype(dtype):
    """``dtype`` or JAX's default float (float64 when x64 is enabled)."""
    return jnp.result_type(float) if dtype is None else jnp.dtype(dtype)


def uniform_weight(
    key: PRNGKeyArray, shape: tuple[int, ...], bound: float, mask: Array | None, dtype
) -> Array:
    w = jax.random.uniform(key, shape, dtype, -bound, bound)
    return _masked(w, mask)
