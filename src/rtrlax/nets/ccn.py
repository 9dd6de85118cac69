"""Constructive and columnar-constructive networks (CCN; Javed, Shah, Sutton, White 2023).

Features are added in stages, configured as ``"total:per_stage:steps_per_stage"``
(``7:7:50M`` purely columnar, ``10:1:5M`` purely constructive, ``20:4:10M`` CCN).
Stage ``s`` is an :class:`~rtrlax.Columnar` cell with ``per_stage`` columns whose input
is ``[x̂_t, f̂^0_t, …, f̂^{s-1}_t]``: the normalised inputs and the normalised features
of every *earlier* stage at the same step (so the network is deep), never the columns of
its own stage.  Stage ``s`` learns during steps ``[s·N, (s+1)·N)`` (N = steps per
stage; the last stage keeps learning); earlier stages are frozen — their parameters and
their normalisation statistics — so they act as inputs and per-column traces
(:class:`~rtrlax.ColoR`) stay exact for the learning stage.

The prediction ``ŷ_t = Σ_{active} w_i f̂_{t,i} + b`` reads the features of the stages
built so far; its weights start at zero and their step size is divided by the number
of active features (:meth:`Constructive.update_scale`, applied by
:class:`~rtrlax.TDLambda`).  Normalisation is online:
``μ ← μ + β(v − μ)``, ``σ² ← (1−β)σ² + β(v − μ)²``, ``v̂ = (v − μ)/sqrt(σ² + ε)``,
with statistics held as constants for gradients.  Input statistics adapt during stage
0 only; a stage's feature statistics adapt while it learns.

All stages exist from the start (fixed shapes: one compiled step for the whole run);
inactive later stages run but do not touch the prediction.  Cost per step: the
forward pass and traces of all ``total`` columns.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..cells.base import check_size, default_dtype
from ..cells.columnar import Columnar


class CCNState(NamedTuple):
    cells: tuple  #: one ``(h, c)`` per stage
    count: Int[Array, ""]  #: steps taken (decides the learning stage)
    in_mean: Float[Array, " input"]
    in_var: Float[Array, " input"]
    f_mean: Float[Array, " total"]
    f_var: Float[Array, " total"]


def parse_stages(spec) -> tuple[int, int, int]:
    """``"20:4:10M"`` → ``(20, 4, 10_000_000)`` (suffixes k/K, m/M)."""
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f'stage spec must be "total:per_stage:steps_per_stage", got {spec!r}.')
        vals = []
        for p in parts:
            p = p.strip()
            mult = 1
            if p and p[-1] in "kKmM":
                mult = 1_000 if p[-1] in "kK" else 1_000_000
                p = p[:-1]
            try:
                vals.append(int(float(p) * mult))
            except ValueError:
                raise ValueError(f"cannot read {spec!r} as total:per_stage:steps_per_stage.") from None
        spec = tuple(vals)
    total, per_stage, steps = spec
    check_size("total", total)
    check_size("per_stage", per_stage)
    check_size("steps_per_stage", steps)
    if total % per_stage:
        raise ValueError(f"total ({total}) must be a multiple of per_stage ({per_stage}).")
    return total, per_stage, steps


class Constructive(eqx.Module):
    """A staged columnar network with a scalar prediction (see module docstring).

    Args:
        input_size: size of ``x_t``.
        stages: ``"total:per_stage:steps_per_stage"`` or a tuple of the three.
        key: PRNG key.
        normalise: online normalisation of inputs and features (default True).
        norm_rate: β of the running statistics.
        start_stage: the stage a fresh stream starts in (tests use it to check a
            later stage against BPTT).
    """

    stages: tuple[Columnar, ...]
    weight: Float[Array, "1 total"]
    bias: Float[Array, " 1"]
    input_size: int = eqx.field(static=True)
    total: int = eqx.field(static=True)
    per_stage: int = eqx.field(static=True)
    steps_per_stage: int = eqx.field(static=True)
    normalise: bool = eqx.field(static=True)
    norm_rate: float = eqx.field(static=True)
    start_stage: int = eqx.field(static=True)

    def __init__(self, input_size: int, stages="20:4:10M", *, key: PRNGKeyArray,
                 normalise: bool = True, norm_rate: float = 1e-3, start_stage: int = 0,
                 dtype=None):
        check_size("input_size", input_size)
        total, per_stage, steps = parse_stages(stages)
        n_stages = total // per_stage
        if not (0 <= start_stage < n_stages):
            raise ValueError(f"start_stage must be in [0, {n_stages}), got {start_stage}.")
        dtype = default_dtype(dtype)
        keys = jax.random.split(key, n_stages)
        self.stages = tuple(
            Columnar(input_size + s * per_stage, per_stage, key=keys[s], dtype=dtype)
            for s in range(n_stages)
        )
        self.weight = jnp.zeros((1, total), dtype)
        self.bias = jnp.zeros((1,), dtype)
        self.input_size, self.total, self.per_stage = input_size, total, per_stage
        self.steps_per_stage, self.normalise = steps, bool(normalise)
        self.norm_rate, self.start_stage = float(norm_rate), int(start_stage)

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def output_size(self) -> int:
        return 1

    def cores(self) -> tuple[Columnar, ...]:
        return self.stages

    def initial_state(self) -> CCNState:
        dtype = self.weight.dtype
        d, n = self.input_size, self.total
        return CCNState(
            tuple(c.initial_state() for c in self.stages),
            jnp.asarray(self.start_stage * self.steps_per_stage, jnp.int32),
            jnp.zeros(d, dtype), jnp.ones(d, dtype), jnp.zeros(n, dtype), jnp.ones(n, dtype),
        )

    def stage(self, count) -> Int[Array, ""]:
        """The learning stage after ``count`` steps."""
        return jnp.minimum(count // self.steps_per_stage, self.n_stages - 1)

    def _norm(self, v, mean, var):
        if not self.normalise:
            return v
        return (v - mean) * jax.lax.rsqrt(var + 1e-5)

    def _stats(self, v, mean, var, learn):
        beta = jnp.where(learn, self.norm_rate, 0.0).astype(mean.dtype)
        v = jax.lax.stop_gradient(v)
        mean = mean + beta * (v - mean)
        var = var + beta * ((v - mean) ** 2 - var)
        return mean, var

    def forward(self, state: CCNState, x: Array, *, core_call):
        sg = jax.lax.stop_gradient
        stage = self.stage(state.count)
        x_hat = self._norm(x, state.in_mean, state.in_var)
        feats, cells = [], []
        for s, cell in enumerate(self.stages):
            active = stage == s
            live = jax.tree_util.tree_map(
                lambda a: jnp.where(active, a, sg(a)) if eqx.is_inexact_array(a) else a, cell)
            u = jnp.concatenate([x_hat, *feats]) if feats else x_hat
            st = core_call(live, state.cells[s], u)
            cells.append(st)
            sl = slice(s * self.per_stage, (s + 1) * self.per_stage)
            feats.append(self._norm(live.output(st), state.f_mean[sl], state.f_var[sl]))
        f_hat = jnp.concatenate(feats)
        built = (jnp.arange(self.total) // self.per_stage) <= stage
        y = jnp.dot(jnp.where(built, self.weight[0], 0), f_hat) + self.bias
        # statistics: inputs during stage 0, a stage's features while it learns
        in_mean, in_var = self._stats(x, state.in_mean, state.in_var, stage == 0)
        feats_raw = jnp.concatenate([c[0] for c in cells])
        learning = (jnp.arange(self.total) // self.per_stage) == stage
        f_mean, f_var = self._stats(feats_raw, state.f_mean, state.f_var, learning)
        new = CCNState(tuple(cells), state.count + 1, in_mean, in_var, f_mean, f_var)
        return new, y

    def __call__(self, state: CCNState, x: Array):
        from ..cells.base import plain_core_call

        return self.forward(state, x, core_call=plain_core_call)

    def update_scale(self, state: CCNState):
        """Per-parameter step-size factors for the step that produced ``state``: 1 for the
        learning stage, 0 for the others (frozen), ``1/#active features`` for the
        prediction weights."""
        stage = self.stage(jnp.maximum(state.count - 1, 0))
        params = eqx.filter(self, eqx.is_inexact_array)
        ones = jax.tree_util.tree_map(lambda a: jnp.ones((), a.dtype), params)
        stage_scale = tuple(
            jax.tree_util.tree_map(lambda o: o * (stage == s), ones.stages[s])
            for s in range(self.n_stages)
        )
        n_active = ((stage + 1) * self.per_stage).astype(self.weight.dtype)
        return eqx.tree_at(lambda p: (p.stages, p.weight), ones, (stage_scale, 1.0 / n_active))
