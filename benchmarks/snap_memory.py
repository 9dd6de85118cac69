"""SnAp-n trace memory against exact RTRL's influence matrix (no timing: array sizes).

For a GRU (input ``--input``, hidden ``--hidden``, a readout) at each recurrent
density, the carry of ``rx.SnAp(n)`` (traces + pattern index lists) and of
``rx.RTRL()`` are sized with ``jax.eval_shape`` (nothing is allocated); the table also
gives the kept entries (the size of the pattern P_n) and an "ideal sparse RTRL" that
would store only the unmasked parameters' columns.  Writes docs/results/snap_memory.md.

    python benchmarks/snap_memory.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

import rtrlax as rx
from harness import machine_description, tree_bytes as nbytes
from rtrlax.estimators._pattern import pattern_sizes
from rtrlax.estimators.snap import kept_support, snapn_init


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--input", type=int, default=32)
    p.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.25, 0.1, 0.05])
    p.add_argument("--n", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", type=Path, default=Path("docs/results/snap_memory.md"))
    args = p.parse_args(argv)
    command = "python benchmarks/snap_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for density in args.densities:
        core = rx.GRU(args.input, args.hidden, key=jax.random.key(0), density=density, dtype=jnp.float32)
        model = rx.Readout(core, 8, key=jax.random.key(1))
        rtrl = nbytes(jax.eval_shape(lambda: rx.RTRL().init(model)).influence)
        live = sum(int(jnp.sum(m)) if m is not None else w.size
                   for w, m in [(core.weight_ih, core.mask_ih), (core.weight_hh, core.mask_hh)])
        live += core.bias_ih.size + core.bias_hh.size
        ideal = core.hidden_size * live * 4
        for n in args.n:
            carry = jax.eval_shape(lambda: rx.SnAp(n).init(model))
            total = nbytes(carry.traces)
            if n == 1:
                kept = live  # SnAp-1 keeps one entry per live parameter (m = 1)
                width = 1
            else:
                sizes = pattern_sizes(core, n)
                width = sizes.width
                kept = int(kept_support(core, snapn_init(core, n, sizes)).sum())
            rows.append((density, n, width, kept, total, rtrl, ideal))
            print(_fmt(rows[-1]), flush=True)
    lines = [
        "# SnAp-n trace memory vs RTRL (GRU)",
        "",
        f"Machine: {machine_description()} (sizes only; nothing timed).",
        f"Command: `{command.strip()}`",
        "",
        f"GRU input {args.input}, hidden {args.hidden}, float32, readout 8 (the readout has no traces). "
        "SnAp carry = traces + pattern index lists of one stream; RTRL = its dense influence matrix "
        "(state × all parameters, masked ones included, as `rx.RTRL` stores it); ideal sparse RTRL = "
        "hidden × unmasked core parameters × 4 bytes. SnAp-1 stores every parameter (masked ones "
        "too) once; SnAp-n (n ≥ 2) stores only unmasked parameters, padded to the widest unit.",
        "",
        "| density | n | width (max units reached) | kept entries | SnAp MiB | RTRL MiB | SnAp / RTRL | SnAp / ideal sparse RTRL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt(r) for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _fmt(row):
    density, n, width, kept, total, rtrl, ideal = row
    mib = lambda b: f"{b / 2**20:.2f}"  # noqa: E731
    return (f"| {density:g} | {n} | {width} | {kept:,} | {mib(total)} | {mib(rtrl)} | "
            f"{100 * total / rtrl:.1f}% | {100 * total / ideal:.1f}% |")


if __name__ == "__main__":
    main()
