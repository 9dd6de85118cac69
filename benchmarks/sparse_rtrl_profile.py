"""Where a SparseRTRL step's time goes (EGRU with readout, one stream, float32).

Runs a jitted scan of online steps (two per iteration, as ``SparseRTRL.scan_unroll``
asks) under ``jax.profiler`` with XLA's per-op trace events on, sums the events' durations
per HLO op (fusion, dot, gather, copy, …) and prints the largest, in ms per step and as a
share of the step, with the shape each op writes.  The EGRU has the narrow
pseudo-derivative window of ``sparse_rtrl.py`` part B; its thresholds are set so that
about the same share of units is backward-active as in the trained EGRUs there (the
printed activity says how many).

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true PYTHONPATH=src \\
        python benchmarks/sparse_rtrl_profile.py --hidden 256 --density 1.0 \\
        --out docs/results/sparse_rtrl_profile.md
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrlax as rx
from harness import busy_cores, command_line, load_note, write_results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--density", type=float, default=1.0)
    p.add_argument("--threshold", type=float, default=0.15, help="EGRU threshold init (sets activity)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--out", type=Path, default=None, help="also write a markdown table here")
    args = p.parse_args(argv)
    busy = busy_cores()
    if "xla_cpu_enable_xprof_traceme" not in os.environ.get("XLA_FLAGS", ""):
        raise SystemExit("set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true (per-op trace events)")
    key = jax.random.key(0)
    vocab = 65
    cell = rx.EGRU(vocab, args.hidden, key=key, density=args.density, pseudo_width=0.1,
                   threshold_init=args.threshold, dtype=jnp.float32)
    model = rx.Readout(cell, vocab, key=jax.random.fold_in(key, 1))
    est = rx.SparseRTRL()
    toks = jax.random.randint(jax.random.fold_in(key, 2), (args.steps + 1,), 0, vocab)
    xs, ts = jax.nn.one_hot(toks[:-1], vocab, dtype=jnp.float32), toks[1:]
    params, static = eqx.partition(model, eqx.is_array)

    def loss(y, t):
        return -jax.nn.log_softmax(y)[t]

    def run(params, carry, xs, ts):
        m = eqx.combine(params, static)

        def body(c, xt):
            c, out = est.step(m, c, xt[0], xt[1], loss)
            return c, (out.loss, est.cost(m, jax.tree_util.tree_map(lambda a: a[None], c))["active_fraction"])

        return jax.lax.scan(body, carry, (xs, ts), unroll=est.scan_unroll(m))

    fn = jax.jit(run, donate_argnums=1)
    carry = jax.tree_util.tree_map(jnp.copy, est.init(model))  # own buffers: donated
    carry, (_, active) = fn(params, carry, xs, ts)  # compile, fill M
    jax.block_until_ready(carry)
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        carry, (_, active) = fn(params, carry, xs, ts)
        jax.block_until_ready(carry)
        jax.profiler.stop_trace()
        path = next(Path(d).rglob("*.xplane.pb"))
        data = jax.profiler.ProfileData.from_file(str(path))
    hlo = fn.lower(params, est.init(model), xs, ts).compile().as_text()
    shapes = {m.group(1): m.group(2) for m in re.finditer(r"%([\w.\-]+) = (\S+) ", hlo)}
    total = collections.Counter()
    count = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            for ev in line.events:
                if ev.name in shapes:  # an op of this computation (not a compiler pass)
                    total[ev.name] += ev.duration_ns
                    count[ev.name] += 1
    top = total.most_common(args.top)
    act = float(jnp.mean(active))
    head = (f"EGRU-{args.hidden} (input and readout {vocab}, density {args.density}, pseudo-derivative "
            f"half-width 0.1, thresholds {args.threshold}), one stream, float32: {act:.0%} of units "
            f"backward-active per step; {args.steps} steps traced, two per loop iteration.")
    rows = ["| op (HLO) | what it writes | runs per step | ms per step |", "|---|---|---|---|"]
    for name, ns in top:
        rows.append(f"| `{name}` | `{shapes.get(name, '')}` | {count[name] / args.steps:.1f} | "
                    f"{ns / args.steps / 1e6:.2f} |")
    print(head)
    print("\n".join(rows))
    if args.out is not None:
        body = [head, "", "Times are summed over XLA's threads; a `cond` contains the ops of its "
                "taken branch (its time includes theirs).", "", *rows, "",
                "What the ops are: inside each step's `cond` (the activity-sparse branch) the "
                "chunk's product `[m·k, C] @ [C, n]` (`ynn_fusion…`, writing `[m·k, n]`; C = "
                "capacity·k units, however few of them are active) and the gather of the active "
                "units' rows of M (`multiply_add_fusion…`, `[C, n]`); then the element-wise pass "
                "(`concatenate_add_fusion…`: reads M_{t−1} and the product, writes M_t) and the "
                "immediate term's in-place scatter (`wrapped_scatter…`). Two of each per loop "
                "iteration: the scan takes two steps at a time."]
        write_results(args.out, "Where a SparseRTRL step's time goes", command_line(__file__, argv),
                      body, shared=False, note=f"; {load_note(busy)}")

if __name__ == "__main__":
    main()
