"""Gradient fidelity of every online estimator against BPTT: estimator × cell × density.

For each cell (VanillaRNN, GRU, LSTM; hidden ``--hidden``, a linear readout) and
recurrent density, ``--problems`` random models and sequences (ColoR's test bed:
Bernoulli(0.5) inputs, Gaussian targets, ``--steps`` steps) are drawn; each
estimator's summed gradient (``rx.accumulate_grads``, parameters fixed) is compared
with BPTT's: cosine similarity, sign agreement, relative error (mean ± std over
problems).  For the stochastic estimators (UORO, KF-RTRL) the table adds the bias and
variance over ``--seeds`` seeds on the first problem.  Writes docs/results/fidelity.md.

    python benchmarks/fidelity.py                     # light default (a few minutes)
    python benchmarks/fidelity.py --hidden 32 --problems 10 --seeds 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import rtrlax as rx
from rtrlax import diagnostics as dg
from harness import machine_description

jax.config.update("jax_enable_x64", True)

CELLS = {"VanillaRNN": rx.VanillaRNN, "GRU": rx.GRU, "LSTM": rx.LSTM}
ESTIMATORS = [
    ("RTRL", lambda: rx.RTRL(), None),
    ("SnAp-1", lambda: rx.SnAp(1), None),
    ("SnAp-2", lambda: rx.SnAp(2), None),
    ("SnAp-3", lambda: rx.SnAp(3), None),
    ("UORO", lambda: rx.UORO(), None),
    ("KF-RTRL", lambda: rx.KFRTRL(), {"VanillaRNN"}),
    ("RFLO(τ=1)", lambda: rx.RFLO(), {"VanillaRNN"}),
    ("RFLO(τ=4)", lambda: rx.RFLO(4.0), {"VanillaRNN"}),
    ("TBPTT(1)", lambda: rx.TBPTT(1), None),
    ("TBPTT(8)", lambda: rx.TBPTT(8), None),
]
STOCHASTIC = {"UORO", "KF-RTRL"}
INPUTS, OUTPUTS = 4, 2


def mse(y, t):
    return jnp.sum((y - t) ** 2)


def problem_maker(cell, hidden, density, steps):
    def make(key):
        k = jax.random.split(key, 4)
        core = cell(INPUTS, hidden, key=k[0], density=density)
        model = rx.Readout(core, OUTPUTS, key=k[1])
        xs = jax.random.bernoulli(k[2], 0.5, (steps, INPUTS)).astype(jnp.float64)
        ts = jax.random.normal(k[3], (steps, OUTPUTS))
        return model, xs, ts, mse

    return make


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.25, 0.1])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--problems", type=int, default=5)
    p.add_argument("--seeds", type=int, default=64, help="seeds for bias/variance of UORO, KF-RTRL")
    p.add_argument("--out", type=Path, default=Path("docs/results/fidelity.md"))
    args = p.parse_args(argv)
    command = "python benchmarks/fidelity.py " + " ".join(sys.argv[1:] if argv is None else argv)

    rows = []
    t0 = time.perf_counter()
    for cell_name, cell in CELLS.items():
        for density in args.densities:
            make = problem_maker(cell, args.hidden, density, args.steps)
            keys = jax.random.split(jax.random.key(0), args.problems)
            for name, factory, only in ESTIMATORS:
                if only is not None and cell_name not in only:
                    continue
                s = dg.fidelity_over_problems(factory(), make, keys)
                extra = ""
                if name in STOCHASTIC:
                    model, xs, ts, loss = make(jax.random.split(keys[0])[0])
                    seeds = jax.random.split(jax.random.key(1), args.seeds)
                    bv = dg.bias_variance(factory(), model, xs, ts, loss, seeds)
                    extra = f"{float(bv.relative_bias):.3f} / {float(bv.relative_variance):.3g}"
                row = (cell_name, density, name, s.mean, s.std, extra)
                rows.append(row)
                print(_fmt(row), flush=True)
    write(args, rows, command, time.perf_counter() - t0)


def _fmt(row):
    cell, density, name, mean, std, extra = row
    return (
        f"| {cell} | {density:g} | {name} | {float(mean.cosine):.3f} ± {float(std.cosine):.3f} | "
        f"{float(mean.sign_agreement):.3f} ± {float(std.sign_agreement):.3f} | "
        f"{float(mean.relative_error):.3g} ± {float(std.relative_error):.2g} | {extra or '—'} |"
    )


def write(args, rows, command, seconds):
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Gradient fidelity against BPTT",
        "",
        f"Machine: {machine_description()} (shared with other jobs; timings are not the point here).",
        f"Command: `{command.strip()}` ({seconds:.0f} s).",
        "",
        f"Float64. Each cell has hidden {args.hidden}, input {INPUTS} (Bernoulli(0.5) inputs), a linear "
        f"readout to {OUTPUTS} Gaussian targets, squared error, {args.steps} steps; density = fraction of "
        f"recurrent weights kept (fixed random masks). Each entry is the mean ± std over {args.problems} "
        "random models/sequences of the metric between the estimator's summed gradient "
        "(`rx.accumulate_grads`, parameters fixed) and BPTT's. Sign agreement counts the parameters "
        "whose true gradient is non-zero. Stochastic estimators: one draw per problem in the metric "
        f"columns; the last column is relative bias ‖E g − g*‖/‖g*‖ / relative variance "
        f"E‖g − E g‖²/‖g*‖² over {args.seeds} seeds on the first problem (an unbiased estimator's "
        f"bias column is ≈ sqrt(variance / {args.seeds}), sampling noise).",
        "",
        "KF-RTRL and RFLO are defined for the vanilla RNN only. RFLO(τ=1) on a VanillaRNN is "
        "the instantaneous gradient (= TBPTT(1)); RFLO(τ=4) filters it (see rflo.py).",
        "",
        "| cell | density | estimator | cosine | sign agreement | relative error | bias / variance |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt(r) for r in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
