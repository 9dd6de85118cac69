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

    @property
    def elementwise_recurrence(self) -> bool:
        """Whether the cell *declares* its recurrence element-wise: no ``weight_hh``, or a
        recurrent mask that keeps the diagonal only.  Then unit i's next state depends on
        unit i's previous state alone, every parameter of unit i moves unit i only, and
        SnAp-1 is exact RTRL.  ``rx.testing.check_cell`` verifies the declaration
        numerically (``phi``/``rho`` must not mix units either).  Needs concrete masks."""
        w = self.effective_weight_hh()
        if w is None:
            return True
        if self.mask_hh is None:
            return False
        k = w.shape[-1]
        return not bool(jnp.any(self.mask_hh & ~jnp.eye(k, dtype=bool)))


class AbstractLinearGatedCell(AbstractGatedCell):
    """A gated cell whose state is linear in itself, element-wise:

    .. math::  s_t = A(a^x_t) \\odot s_{t-1} + b(a^x_t), \\qquad a^x_t = W_{ih} x_t + b_{ih}

    with ``A`` and ``b`` functions of the current input only (no ``weight_hh``).  A
    one-component state is real; a two-component state ``(re, im)`` is the real and
    imaginary part of one complex state (LRU, RTU), and ``A``, ``b`` are complex.

    Such a cell evaluates a whole sequence at once (:meth:`sequence`): the input maps
    for all T steps as one matrix product, then the recurrence with
    :func:`jax.lax.associative_scan` over the pairs ``(A_t, b_t)`` composed as
    ``(A_2 A_1, A_2 b_1 + b_2)``.  Equal to stepping up to round-off (tested, float64).
    Subclasses define :meth:`transition` besides the gated-cell maps; ``pointwise`` must
    compute the same update one step at a time.
    """

    @abc.abstractmethod
    def transition(self, ax: Float[Array, "gates hidden"]) -> tuple[Array, Array]:
        """``(A_t, b_t)``, each ``[k]`` (complex for a two-component state), from ``a^x_t``."""

    @property
    def has_sequence(self) -> bool:
        return True

    def states(self, state: State, xs: Float[Array, "time input"]) -> State:
        """Every state ``s_1 … s_T`` (each component ``[T, k]``) for the inputs ``xs``
        ``[T, input]`` from ``state``, with a parallel scan."""
        check_inputs(xs, self.input_size, type(self).__name__)
        ax = jnp.einsum("gkd,td->tgk", self.effective_weight_ih(), xs)
        if self.bias_ih is not None:
            ax = ax + self.bias_ih
        a, b = jax.vmap(self.transition)(ax)
        return unpack_state(diagonal_scan(a, b, pack_state(state)), len(state))

    def sequence(self, state: State, xs: Float[Array, "time input"]) -> tuple[State, Array]:
        """``(s_T, ys)`` for the inputs ``xs`` ``[T, input]`` from ``state``: the same as
        ``lax.scan(self, state, xs)``, evaluated with a parallel scan."""
        states = self.states(state, xs)
        return tuple(s[-1] for s in states), jax.vmap(self.output)(states)


# --- sequence mode ----------------------------------------------------------------------


def diagonal_scan(a: Array, b: Array, h0: Array) -> Array:
    """All states ``h_t = a_t ⊙ h_{t-1} + b_t`` (``t = 1..T``; ``a``, ``b`` ``[T, …]``) with
    ``jax.lax.associative_scan``: the prefix compositions ``(A_t, B_t)`` of the affine
    maps, then ``h_t = A_t h_0 + B_t``.  Real or complex."""

    def compose(first, second):
        a1, b1 = first
        a2, b2 = second
        return a2 * a1, a2 * b1 + b2

    a_cum, b_cum = jax.lax.associative_scan(compose, (a, b))
    return a_cum * h0 + b_cum


def pack_state(state: State) -> Array:
    """A one-component state as is; a two-component ``(re, im)`` state as one complex array."""
    if len(state) == 1:
        return state[0]
    if len(state) == 2:
        return jax.lax.complex(state[0], state[1])
    raise ValueError(
        f"a linear gated cell has a state of one (real) or two (re, im) components, got "
        f"{len(state)}."
    )


def unpack_state(h: Array, components: int) -> tuple:
    return (h,) if components == 1 else (jnp.real(h), jnp.imag(h))


def run_sequence(
    model, xs: Array, state: State | None = None, *, chunk: int | None = None
) -> tuple[State, Array]:
    """``(s_T, ys)``: ``model`` over the inputs ``xs`` ``[T, input]`` from ``state``
    (default ``model.initial_state()``).  Uses the model's whole-sequence mode
    (``model.sequence``) when it has one (``model.has_sequence``: cells linear in their
    state, and stacks built only of such cells) and a ``lax.scan`` of steps otherwise;
    both give the same numbers.

    ``chunk``: evaluate the sequence mode on consecutive chunks of that many steps (a
    ``lax.scan`` over chunks carrying the state) rather than on all T steps at once.  On
    CPU, chunks of 16–64 steps keep each layer's activations in cache and run faster than
    either extreme (``benchmarks/lru_sequence.py``).  ``None``: all at once."""
    if state is None:
        state = model.initial_state()
    if not getattr(model, "has_sequence", False):
        return jax.lax.scan(lambda s, x: model(s, x), state, xs)
    steps = xs.shape[0]
    if chunk is None or chunk >= steps:
        return model.sequence(state, xs)
    check_size("chunk", chunk)
    whole = (steps // chunk) * chunk
    state, ys = jax.lax.scan(
        lambda s, x: model.sequence(s, x), state, xs[:whole].reshape(steps // chunk, chunk, -1)
    )
    ys = ys.reshape(whole, *ys.shape[2:])
    if whole < steps:  # the remainder, as one shorter chunk
        state, rest = model.sequence(state, xs[whole:])
        ys = jnp.concatenate([ys, rest])
    return state, ys


# --- helpers shared by the cell files ---------------------------------------------------


def check_inputs(xs: Array, input_size: int, who: str) -> None:
    """Static (trace-time) shape check of a sequence of unbatched inputs ``[T, input]``."""
    if jnp.ndim(xs) != 2 or xs.shape[1] != input_size:
        raise ValueError(
            f"{who}.sequence expects inputs of shape (T, {input_size}), got shape "
            f"{tuple(jnp.shape(xs))}. Batch with jax.vmap over sequences."
        )


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
