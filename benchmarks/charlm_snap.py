"""SnAp on character-level language modelling (the SnAp paper's setting, downsized), fully online.

A sparse GRU (recurrent density 0.25 and 0.1: 75 % and 90 % sparsity; dense input
weights) + linear readout predicts the next character of tinyshakespeare (first 90 %
train, last 10 % held out; character vocabulary), updating after every step (K = 1,
Adam) with SnAp-1, SnAp-2, UORO, RTRL and TBPTT(T) (sliding window of T steps,
backpropagated at every step) — every run the same token budget (steps × streams).
Held-out bits per character on the first ``--eval-chars`` held-out characters, read
every ``--eval-every`` steps.  Several seeds.  Writes docs/results/charlm_snap.md
(+ .png, .json).

    python benchmarks/charlm_snap.py
    python benchmarks/charlm_snap.py --from-json     # rewrite the report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import rtrlax as rx
from harness import machine_description as machine
from rtrlax.tasks.charlm import evaluate_bpc

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
ESTIMATORS = {
    "snap1": ("SnAp-1", lambda a, m: rx.SnAp(1)),
    "snap2": ("SnAp-2", lambda a, m: rx.SnAp(2).bind(m)),
    "uoro": ("UORO", lambda a, m: rx.UORO()),
    "rtrl": ("RTRL", lambda a, m: rx.RTRL()),
    "tbptt": ("TBPTT", lambda a, m: rx.TBPTT(a.truncation)),
}




def run_one(task, name, density, seed, args):
    label, make = ESTIMATORS[name]
    k_model, k_read, k_run = jax.random.split(jax.random.key(seed), 3)
    core = rx.GRU(task.input_size, args.hidden, key=k_model, density=density, dtype=jnp.float32)
    model = rx.Readout(core, task.output_size, key=k_read)
    learner = rx.OnlineLearner(model, make(args, model), optax.adam(args.lr))
    state = learner.init(k_run, batch_size=args.batch, task=task)
    static = eqx.partition(model, eqx.is_inexact_array)[1]
    steps_total = args.tokens // args.batch

    def held_out(state):
        return float(evaluate_bpc(eqx.combine(state.params, static), task, max_chars=args.eval_chars))

    tokens, test_bpc, train_bpc = [0], [held_out(state)], [float("nan")]
    t0 = time.perf_counter()
    done = 0
    while done < steps_total:
        n = min(args.eval_every, steps_total - done)
        state, metrics = learner.run(state, task, n, chunk=n)
        done += n
        tokens.append(done * args.batch)
        test_bpc.append(held_out(state))
        train_bpc.append(float(metrics["bpc"][-1]))
    return dict(estimator=label, density=density, seed=seed, tokens=tokens, test_bpc=test_bpc,
                train_bpc=train_bpc, seconds=time.perf_counter() - t0)  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    p.add_argument("--densities", type=float, nargs="+", default=[0.25, 0.1])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=8, help="streams")
    p.add_argument("--tokens", type=int, default=16_000, help="budget per run (steps × streams)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between held-out evaluations")
    p.add_argument("--eval-chars", type=int, default=2000)
    p.add_argument("--truncation", type=int, default=8, help="T of TBPTT(T)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--text", type=Path, default=TEXT)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "charlm_snap.md")
    p.add_argument("--from-json", action="store_true")
    args = p.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    if args.from_json:
        saved = json.loads(json_path.read_text())
        write_report(saved)
        return
    task = rx.CharLM.from_file(args.text)
    command = "python benchmarks/charlm_snap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    saved = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
             "command": command, "machine": machine(), "vocabulary": task.input_size, "runs": []}  # fmt: skip
    for seed in range(args.seeds):  # seed-major: a cut-short run still covers every cell
        for density in args.densities:
            for name in args.estimators:
                r = run_one(task, name, density, seed, args)
                saved["runs"].append(r)
                print(f"{r['estimator']:7s} density {density:.2f} seed {seed}: held-out bpc "
                      f"{r['test_bpc'][-1]:.3f} ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
                json_path.write_text(json.dumps(saved))
    write_report(saved)


def write_report(saved):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, runs = saved["args"], saved["runs"]
    out = Path(a["out"])
    labels = list(dict.fromkeys(r["estimator"] for r in runs))
    densities = list(dict.fromkeys(r["density"] for r in runs))
    fig, axes = plt.subplots(1, len(densities), figsize=(6 * len(densities), 4), squeeze=False)
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, density in zip(axes[0], densities):
        for label in labels:
            sel = [r for r in runs if r["estimator"] == label and r["density"] == density]
            if not sel:
                continue
            curves = np.array([r["test_bpc"] for r in sel])
            ax.plot(sel[0]["tokens"], curves.mean(0), color=colours[label], label=label)
            ax.fill_between(sel[0]["tokens"], curves.min(0), curves.max(0), color=colours[label], alpha=0.2)
        ax.set_title(f"GRU-{a['hidden']}, {100 * (1 - density):.0f} % recurrent sparsity")
        ax.set_xlabel("tokens (steps × streams)")
        ax.set_ylabel("held-out bits per character")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)

    checkpoints = sorted({len(runs[0]["tokens"]) // 4, len(runs[0]["tokens"]) // 2, len(runs[0]["tokens"]) - 1})
    tok = runs[0]["tokens"]
    lines = [
        "# SnAp on character-level language modelling (tinyshakespeare), fully online",
        "",
        f"Machine: {saved['machine']} — shared with other engineers' tests and benchmarks while it ran. "
        f"Command: `{saved['command']}`.",
        "",
        f"GRU with {a['hidden']} units (recurrent weights masked at random to density 0.25 / 0.1, i.e. "
        f"75 % / 90 % sparsity; dense input weights) + linear readout, float32; next-character "
        f"prediction on `tinyshakespeare.txt` (first 90 % train, last 10 % held out; {saved['vocabulary']} "
        f"characters); {a['batch']} streams, an Adam update (lr {a['lr']}) after **every** step; "
        f"{a['tokens']:,} tokens per run (steps × streams), the same for every estimator; TBPTT(T) with "
        f"T = {a['truncation']} (a sliding window backpropagated at every step). Held-out bpc on the first "
        f"{a['eval_chars']:,} held-out characters with the parameters of that moment; mean ± std over "
        f"the seeds run (count per row in `charlm_snap.json`).",
        "",
    ]
    header = "| sparsity | estimator | " + " | ".join(f"bpc at {tok[c]:,} tokens" for c in checkpoints)
    lines += [header + " | s per run |", "|---" * (len(checkpoints) + 3) + "|"]
    for density in densities:
        for label in labels:
            sel = [r for r in runs if r["estimator"] == label and r["density"] == density]
            if not sel:
                continue
            cells = []
            for c in checkpoints:
                v = [r["test_bpc"][c] for r in sel]
                cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f}")
            secs = np.mean([r["seconds"] for r in sel])
            lines.append(f"| {100 * (1 - density):.0f} % | {label} | " + " | ".join(cells) + f" | {secs:.0f} |")
    lines += ["", f"![held-out bpc]({out.with_suffix('.png').name})", ""]
    notes = out.with_name(out.stem + "_notes.md")
    if notes.exists():
        lines.append(notes.read_text())
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
