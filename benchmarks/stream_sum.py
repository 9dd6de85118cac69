"""Three ways to sum a per-stream product ``Σ_b δ_b ⊙ T_b`` over the stream axis on XLA:CPU.

The trace estimators' ``batch_step`` must form ``Σ_b δ[b, i] T[b, g, i, j]`` every step;
this times, inside a jitted ``lax.scan``, (1) ``jnp.sum(δ ⊙ T, axis=0)``, (2) a tensordot
with a vector of ones over the materialised product, (3) explicit terms on each stream's
slice, ``sum(δ[b] ⊙ T[b] for b in …)``.  Cited in ``docs/guide.md`` (Performance notes).

    python benchmarks/stream_sum.py --streams 32 --hidden 256
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from common import materialize
from harness import machine_description, time_call


def time_variant(mode: str, streams: int, k: int, steps: int, repeats: int) -> float:
    T = jax.random.normal(jax.random.key(0), (streams, 3, k, k), jnp.float32)
    deltas = jax.random.normal(jax.random.key(1), (steps, streams, k), jnp.float32)

    @jax.jit
    def run(T, deltas):
        def body(g, d):
            d = materialize(d)  # the per-step δ computed once, as in the estimators
            if mode == "reduce":
                return jnp.sum(d[:, None, :, None] * T, axis=0), None
            if mode == "tensordot":
                return jnp.tensordot(jnp.ones(streams, T.dtype), d[:, None, :, None] * T, axes=1), None
            return sum(d[b][None, :, None] * T[b] for b in range(streams)), None

        return jax.lax.scan(body, jnp.zeros(T.shape[1:], T.dtype), deltas)[0]

    return time_call(run, T, deltas, repeats=repeats).wall / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(f"{machine_description()}; {args.streams} streams × [3, {args.hidden}, {args.hidden}] float32")
    for mode in ("reduce", "tensordot", "explicit terms"):
        t = time_variant(mode, args.streams, args.hidden, args.steps, args.repeats)
        print(f"{mode:15s} {t * 1e3:8.2f} ms per step")


if __name__ == "__main__":
    main()
