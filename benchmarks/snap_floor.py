"""What SnAp-1's unavoidable passes cost alone on this machine, against its measured step.

Whatever the implementation, one SnAp-1 step of a GRU must (1) run the forward step
(the inference step itself), (2) update the trace in place — read and write one number
per core parameter and stream — and (3) produce the gradient, one number per core
parameter, from the new trace (at batch B, the stream mean ``Σ_b δ_b T_b``: read B traces).
This script times each pass alone, as its own jitted ``lax.scan`` over the same shapes
(float32), with the cheapest arithmetic SnAp-1 allows: the trace update is
``T ← a ⊙ T + c ⊗ u`` (per-unit a, c and the array's input u, new each step) and the
gradient ``g = Σ_b δ_b ⊙ T_b`` written into the loop carry.  XLA:CPU runs (2) and (3) as
separate loops (it has no multi-output loop fusion), so the sum of the three is about
what any XLA implementation spends; compare it with ``rx.SnAp(1)`` measured as in
``benchmarks/step_cost.py`` in the same run.  (Not a strict lower bound: timed alone,
each pass also pays its own loop overhead and cold caches.)

    python benchmarks/snap_floor.py --hidden 256 --batch 1 32 --out docs/results/snap_floor.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_cost as sc  # noqa: E402
from common import materialize  # noqa: E402

from harness import machine_description, time_call  # noqa: E402


def _core_shapes(k: int, d: int):
    """The GRU core's parameter arrays (as in ``step_cost.gru_model``): W_ih, W_hh, b_ih, b_hh."""
    return [(3, k, d), (3, k, k), (3, k), (3, k)]


def trace_pass(k: int, d: int, batch: int, steps: int, repeats: int):
    """In place, per core parameter array and stream: ``T[g, i, j] ← a[i] T + c[g, i] u[j]``
    (``u`` the array's input: x, h or 1)."""
    shapes = _core_shapes(k, d)
    vec = jax.random.uniform(jax.random.key(0), (steps, batch, 4 * k + d + k), jnp.float32)

    @jax.jit
    def run(Ts, vec):
        def body(Ts, v):
            # the per-step vectors computed once into buffers (as rx.SnAp does), not
            # re-sliced out of `vec` for every trace entry by the fused loop
            v = materialize(v)
            a, c = v[:, :k], v[:, k : 4 * k].reshape(batch, 3, k)
            us = {d: v[:, 4 * k : 4 * k + d], k: v[:, 4 * k + d :]}
            new = []
            for T, shape in zip(Ts, shapes):
                if len(shape) == 3:
                    new.append(a[:, None, :, None] * T + c[..., None] * us[shape[2]][:, None, None, :])
                else:
                    new.append(a[:, None, :] * T + c)
            return new, None

        return jax.lax.scan(body, Ts, vec)[0]

    Ts = [jnp.zeros((batch,) + shape, jnp.float32) for shape in shapes]
    return time_call(run, Ts, vec, repeats=repeats).wall / steps


def gradient_pass(k: int, d: int, batch: int, steps: int, repeats: int):
    """Per core parameter array: ``g = Σ_b δ[b, i] T_b`` written into the carry, every step."""
    shapes = _core_shapes(k, d)
    key = jax.random.key(1)
    deltas = jax.random.normal(key, (steps, batch, k), jnp.float32)
    Ts = [jax.random.normal(key, (batch,) + shape, jnp.float32) for shape in shapes]

    @jax.jit
    def run(Ts, deltas):
        def body(gs, delta):
            delta = materialize(delta)
            out = []
            for T in Ts:
                unit = (1, k) + (1,) * (T.ndim - 3)  # δ[b, i] broadcast along T[b, g, i, …]
                # explicit terms: one element-wise loop reading every stream's trace
                out.append(sum(delta[b].reshape(unit) * T[b] for b in range(batch)))
            return out, None

        return jax.lax.scan(body, [jnp.zeros(T.shape[1:], T.dtype) for T in Ts], deltas)[0]

    return time_call(run, Ts, deltas, repeats=repeats).wall / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[256])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    for k in args.hidden:
        model = sc.gru_model(k, jax.random.key(0))
        for b in args.batch:
            inf = sc.inference_cost(model, b, args.steps, args.repeats, jax.random.key(2))[0]
            tr = trace_pass(k, sc.INPUT_SIZE, b, args.steps, args.repeats)
            gr = gradient_pass(k, sc.INPUT_SIZE, b, args.steps, args.repeats)
            snap = sc.online_cost(model, sc.rx.SnAp(1), b, args.steps, args.repeats, jax.random.key(3))[0]
            passes = inf + tr + gr  # the three passes, each timed alone
            rows.append((k, b, inf, tr, gr, passes, snap))
            print(f"hidden {k} batch {b}: inference {inf * 1e6:.1f} µs, trace pass {tr * 1e6:.1f}, "
                  f"gradient pass {gr * 1e6:.1f}, sum {passes * 1e6:.1f} ({passes / inf:.2f}×), "
                  f"SnAp-1 {snap * 1e6:.1f} ({snap / inf:.2f}×)", flush=True)
    if args.out:
        lines = [
            "# SnAp-1 (GRU): the cost of its unavoidable passes, each timed alone",
            "",
            f"Machine: {machine_description()}. Command: `python {' '.join(sys.argv)}` (float32, input "
            f"{sc.INPUT_SIZE}). Each pass timed alone as a jitted `lax.scan` ({args.steps} steps, median of "
            f"{args.repeats} repeats); SnAp-1 is `rx.SnAp(1)` measured as in `step_cost.py`, in the same run.",
            "",
            "| hidden | batch | inference µs | trace pass µs | gradient pass µs | sum of the three µs (× inference) "
            "| SnAp-1 µs (× inference) |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, b, inf, tr, gr, passes, snap in rows:
            lines.append(f"| {k} | {b} | {inf * 1e6:.1f} | {tr * 1e6:.1f} | {gr * 1e6:.1f} | "
                         f"{passes * 1e6:.1f} ({passes / inf:.2f}×) | {snap * 1e6:.1f} ({snap / inf:.2f}×) |")
        lines += ["", __doc__.split("\n\n")[1].replace("\n", " "), ""]
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
