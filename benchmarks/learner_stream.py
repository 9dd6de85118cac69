"""Two promises of the online learner, measured.

1. **Overhead.**  Steps per second of ``OnlineLearner`` (resets, gradient
   accumulation, K-step updates, metrics) against a bare ``lax.scan`` of the same
   vmapped estimator step followed by the same optax update — same model, estimator,
   batch, chunk length.  Target: the learner within 15 % of the bare scan.
2. **Flat memory.**  A GRU-32 learning the copy task with exact RTRL for 100,000
   steps: the process's resident memory after 1,000 steps and after 100,000.

    python benchmarks/learner_stream.py                 # -> docs/results/learner_stream.md
    python benchmarks/learner_stream.py --long-steps 20000   # quicker
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import rtrlax as rx
from harness import machine_description, time_call


def rss_mib() -> float:
    """Current resident set size of this process (MiB), from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def model_for(task, hidden, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    cell = rx.GRU(task.input_size, hidden, key=k1, dtype=jnp.float32)
    return rx.Readout(cell, task.output_size, key=k2)


def bare_scan_rate(model, estimator, task, batch, chunk, repeats):
    """Steps/s of lax.scan(vmap(estimator.step) + optax update) over task samples."""
    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    keys = jax.random.split(jax.random.key(1), batch)
    carry = jax.vmap(lambda k: estimator.init(model, key=k))(keys)
    task_state = jax.vmap(task.init)(keys)
    opt_state = opt.init(params)

    @jax.jit
    def run(params, opt_state, carry, task_state):
        def body(c, _):
            params, opt_state, carry, task_state = c
            task_state, sample = jax.vmap(task.sample)(task_state)
            m = eqx.combine(params, static)
            carry, out = estimator.batch_step(m, carry, sample.x, sample.target, task.loss)
            g = out.grads
            upd, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state, carry, task_state), out.loss.mean()

        return jax.lax.scan(body, (params, opt_state, carry, task_state), None, length=chunk)

    args = (params, opt_state, carry, task_state)
    jax.block_until_ready(run(*args))
    return _rates(lambda: jax.block_until_ready(run(*args)), chunk, repeats)


def _rates(call, chunk, repeats):
    """(steps/s by wall clock, steps/s by this process's CPU time), medians of repeats."""
    t = time_call(call, repeats=repeats, warmup=0)
    return chunk / t.wall, chunk / t.cpu


def learner_rate(model, estimator, task, batch, chunk, repeats):
    learner = rx.OnlineLearner(model, estimator, optax.adam(1e-3))
    state = learner.init(jax.random.key(1), batch_size=batch, task=task)
    state, _ = learner.run(state, task, chunk, chunk=chunk)  # compile
    holder = [state]

    def call():
        holder[0], _ = learner.run(holder[0], task, chunk, chunk=chunk)
        jax.block_until_ready(holder[0].params)

    return _rates(call, chunk, repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--long-steps", type=int, default=100_000,
                   help="steps of the memory run (0: reuse the last run's record)")
    p.add_argument("--out", type=Path, default=Path("docs/results/learner_stream.md"))
    args = p.parse_args(argv)

    task = rx.CopyTask()
    rows = []
    for name, est, hidden, batch in [
        ("SnAp-1", rx.SnAp(1), 64, 8),
        ("TBPTT(8)", rx.TBPTT(8), 64, 8),
        ("RTRL", rx.RTRL(), 16, 4),
    ]:
        model = model_for(task, hidden)
        # interleave the two measurements to share the machine's noise
        bare, lrn = [], []
        for _ in range(3):
            bare.append(bare_scan_rate(model, est, task, batch, args.chunk, args.repeats))
            lrn.append(learner_rate(model, est, task, batch, args.chunk, args.repeats))
        b = [statistics.median(r[i] for r in bare) for i in (0, 1)]
        l = [statistics.median(r[i] for r in lrn) for i in (0, 1)]
        rows.append((name, hidden, batch, b[0], l[0], l[0] / b[0], b[1], l[1], l[1] / b[1]))
        print(rows[-1], flush=True)

    marks, seconds = long_stream(task, args.long_steps)
    write(args, rows, marks, seconds, argv)


def long_stream(task, steps):
    """RSS marks over ``steps`` steps of exact RTRL on a GRU-32; ``steps = 0`` reuses the
    marks recorded by the last full run (docs/results/learner_stream.json)."""
    import json

    record = Path("docs/results/learner_stream.json")
    if steps == 0:
        data = json.loads(record.read_text())
        return {int(k): v for k, v in data["marks"].items()}, data["seconds"]
    model = model_for(task, 32)
    learner = rx.OnlineLearner(model, rx.RTRL(), optax.adam(1e-3))
    state = learner.init(jax.random.key(2), batch_size=1, task=task)
    chunk = 1000
    marks = {}
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        state, _ = learner.run(state, task, chunk, chunk=chunk)
        jax.block_until_ready(state.params)
        done += chunk
        if done in (1000, 10_000, steps) or done % 25_000 == 0:
            marks[done] = rss_mib()
            print(f"{done} steps: RSS {marks[done]:.1f} MiB", flush=True)
    seconds = time.perf_counter() - t0
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"marks": marks, "seconds": seconds}))
    return marks, seconds


def write(args, rows, marks, seconds, argv):

    lines = [
        "# The online learner: overhead and memory over a long stream",
        "",
        f"Machine: {machine_description()}. Command: `python benchmarks/learner_stream.py"
        + (" " + " ".join(argv) if argv else "") + "`. float32, copy task (T = 48).",
        "",
        "## Overhead against a bare `lax.scan` of the same estimator step + optax update",
        "",
        f"Chunks of {args.chunk} steps; median of {args.repeats} repeats, three interleaved rounds.",
        "",
        "Wall-clock rates, and rates by the process's CPU time (steadier on a shared machine).",
        "",
        "| estimator | hidden | streams | bare steps/s (wall) | learner steps/s (wall) | learner / bare (wall) "
        "| bare steps/s (CPU) | learner steps/s (CPU) | learner / bare (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {h} | {b} | {bw:,.0f} | {lw:,.0f} | {rw:.3f} | {bc:,.0f} | {lc:,.0f} | {rc:.3f} |"
        for n, h, b, bw, lw, rw, bc, lc, rc in rows
    ]
    lines += [
        "",
        f"## Memory over {max(marks):,} steps of exact RTRL on a GRU-32 (one stream)",
        "",
        "| steps taken | resident memory (MiB) |",
        "|---|---|",
    ]
    lines += [f"| {k:,} | {v:.1f} |" for k, v in sorted(marks.items())]
    growth = marks[max(marks)] - marks[1000]
    lines += ["", f"Growth from 1,000 to {max(marks):,} steps: {growth:+.1f} MiB "
              f"({seconds:.0f} s for the run)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
