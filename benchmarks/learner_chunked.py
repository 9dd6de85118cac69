"""The online learner with updates every K steps: stepping vs taking the K steps at once.

``rx.OnlineLearner(..., update_every=K)`` runs an estimator with a chunked form
(``rx.SnAp(1)``, ``rx.ColoR()``, ``rx.OnlineLRU()``) K steps at a time through its
``batch_chunk_step`` — the same numbers as stepping (tests/test_learner.py).  This
measures what that buys on the copy task (T = 48, K = 48, Adam): environment steps per
second of ``learner.run`` with ``chunked=False`` and with the default, interleaved
repeats, medians, jit excluded.

    python benchmarks/learner_chunked.py          # -> docs/results/learner_chunked.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import rtrlax as rx
from harness import machine_description


def setups(task):
    k = jax.random.key
    gru = lambda h: rx.Readout(rx.GRU(task.input_size, h, key=k(0), dtype=jnp.float32),  # noqa: E731
                               task.output_size, key=k(1))  # fmt: skip
    col = rx.Readout(rx.Columnar(task.input_size, 64, key=k(2), dtype=jnp.float32), task.output_size, key=k(3))
    lru = rx.LRUNet(task.input_size, task.output_size, d_model=128, d_hidden=64, n_layers=4,
                    key=k(4), dtype=jnp.float32)  # fmt: skip
    return [
        ("SnAp-1", "GRU-64", gru(64), rx.SnAp(1), 8),
        ("SnAp-1", "GRU-256", gru(256), rx.SnAp(1), 1),
        ("ColoR", "Columnar-64", col, rx.ColoR(), 8),
        ("OnlineLRU", "LRUNet-4 128/64", lru, rx.OnlineLRU(), 1),
    ]


def rate(learner, state, task, n):
    state, _ = learner.run(state, task, n, chunk=n)  # compile
    jax.block_until_ready(state.params)
    t0 = time.perf_counter()
    state, _ = learner.run(state, task, n, chunk=n)
    jax.block_until_ready(state.params)
    return n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--K", type=int, default=48)
    p.add_argument("--steps", type=int, default=480, help="steps per timed run (multiple of K)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("docs/results/learner_chunked.md"))
    args = p.parse_args(argv)
    task = rx.CopyTask()
    rows = []
    for name, model_name, model, est, batch in setups(task):
        learners = {c: rx.OnlineLearner(model, est, optax.adam(1e-3), update_every=args.K, chunked=c)
                    for c in (False, None)}  # fmt: skip
        states = {c: lrn.init(jax.random.key(5), batch_size=batch, task=task) for c, lrn in learners.items()}
        rates = {c: [] for c in learners}
        for _ in range(args.repeats):  # interleaved
            for c, lrn in learners.items():
                rates[c].append(rate(lrn, states[c], task, args.steps))
        step, chunk = statistics.median(rates[False]), statistics.median(rates[None])
        rows.append((name, model_name, batch, step, chunk))
        print(rows[-1], flush=True)
    lines = [
        "# The online learner, updates every K steps: stepping vs chunked",
        "",
        f"Machine: {machine_description()}. Command: `python benchmarks/learner_chunked.py"
        + (" " + " ".join(argv) if argv else "") + f"`. Copy task (T = 48), K = {args.K}, "
        f"Adam, float32; environment steps per second of every stream together, median of "
        f"{args.repeats} interleaved runs of {args.steps} steps.",
        "",
        "| estimator | model | streams | stepping (steps/s) | chunked (steps/s) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {m} | {b} | {s * b:,.0f} | {c * b:,.0f} | {c / s:.2f}× |" for n, m, b, s, c in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
