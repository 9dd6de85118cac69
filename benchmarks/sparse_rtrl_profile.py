"""Where a SparseRTRL step's time goes (EGRU with readout, one stream, float32).

Runs a jitted scan of online steps (two per iteration, as ``SparseRTRL.scan_unroll``
asks) under ``jax.profiler`` with XLA's per-op trace events on, sums the events' durations
per HLO op (fusion, dot, gather, copy, …) and prints the largest, in ms per step and as a
share of the step, with the shape each op writes.  The EGRU has the narrow
pseudo-derivative window of ``sparse_rtrl.py`` part B; its thresholds are set so that
about the same share of units is backward-active as in the trained EGRUs there (the
printed activity says how many).

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true PYTHONPATH=src \\
        python benchmarks/sparse_rtrl_profile.py --hidden 256 --density 1.0
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--density", type=float, default=1.0)
    p.add_argument("--threshold", type=float, default=0.6, help="EGRU threshold init (sets activity)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    if "xla_cpu_enable_xprof_traceme" not in os.environ.get("XLA_FLAGS", ""):
        raise SystemExit("set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true (per-op trace events)")
    key = jax.random.key(0)
    vocab = 65
    cell = rx.EGRU(vocab, args.hidden, key=key, density=args.density, pseudo_width=0.1,
                   threshold_init=args.threshold, dtype=jnp.float32)
    model = rx.Readout(cell, vocab, key=jax.random.fold_in(key, 1))
    est = rx.SparseRTRL()
    toks = jax.random.randint(jax.random.fold_in(key, 2), (args.steps + 1,), 0, vocab)
    xs = jax.nn.one_hot(toks[:-1], vocab, dtype=jnp.float32)
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
    carry = est.init(model)
    carry, (_, active) = fn(params, carry, xs, toks[1:])  # compile, fill M
    jax.block_until_ready(carry)
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        carry, (_, active) = fn(params, carry, xs, toks[1:])
        jax.block_until_ready(carry)
        jax.profiler.stop_trace()
        path = next(Path(d).rglob("*.xplane.pb"))
        data = jax.profiler.ProfileData.from_file(str(path))
    total = collections.Counter()
    count = collections.Counter()
    for plane in data.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for ev in line.events:
                name = ev.name
                if re.match(r"^[a-z_\-]+(\.\d+)?$", name) or name.startswith(("fusion", "dot", "ynn", "copy")):
                    total[name] += ev.duration_ns
                    count[name] += 1
    hlo = fn.lower(params, est.init(model), xs, toks[1:]).compile().as_text()
    shapes = {m.group(1): m.group(2) for m in re.finditer(r"%([\w.\-]+) = (\S+) ", hlo)}
    step_ns = sum(total.values()) / args.steps
    print(f"EGRU-{args.hidden} density {args.density}: backward-active units per step "
          f"{float(jnp.mean(active)):.2f}; traced op time {step_ns / 1e6:.1f} ms per step "
          "(summed over threads)")
    for name, ns in total.most_common(args.top):
        print(f"  {ns / args.steps / 1e6:8.2f} ms/step {ns / args.steps / step_ns:6.1%}  "
              f"x{count[name] // args.steps:<3d} {name:40s} {shapes.get(name, '')}")


if __name__ == "__main__":
    main()
