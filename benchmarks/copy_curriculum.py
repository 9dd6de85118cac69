"""The SnAp paper's curriculum copy task, fully online, at matched token budgets.

GRU (hidden ``--hidden``) + linear readout learns rx.CopyCurriculum with every
estimator in ``--estimators`` (SnAp-1, SnAp-2, UORO, RTRL, TBPTT(T)), dense and sparse
recurrent weights (``--densities``), several seeds.  Updates every step (K = 1),
Adam; ``--batch`` independent streams share the level L (the task's rule: L grows by
one whenever the running average loss on scored steps falls below 0.15 bits/step).
Every run gets the same token budget (``--tokens`` = steps × streams); the level is
read after every chunk.  Writes docs/results/copy_curriculum.md (+ .png, .json).

    python benchmarks/copy_curriculum.py                 # the light default (≈20 min, 2 cores)
    python benchmarks/copy_curriculum.py --tokens 20000 --seeds 1 --estimators snap1 rtrl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rtrlax as rx
from harness import machine_description, save_figure

ESTIMATORS = {
    "snap1": ("SnAp-1", lambda a: rx.SnAp(1)),
    "snap2": ("SnAp-2", lambda a: rx.SnAp(2)),
    "uoro": ("UORO", lambda a: rx.UORO()),
    "rtrl": ("RTRL", lambda a: rx.RTRL()),
    "tbptt": ("TBPTT", lambda a: rx.TBPTT(a.truncation)),
}


def run_one(name, density, seed, args):
    label, make = ESTIMATORS[name]
    task = rx.CopyCurriculum(max_length=args.max_length)
    k_model, k_read, k_run = jax.random.split(jax.random.key(seed), 3)
    core = rx.GRU(task.input_size, args.hidden, key=k_model, density=density, dtype=jnp.float32)
    model = rx.Readout(core, task.output_size, key=k_read)
    learner = rx.OnlineLearner(model, make(args), optax.adam(args.lr))
    state = learner.init(k_run, batch_size=args.batch, task=task)
    steps_total = args.tokens // args.batch
    tokens, levels, losses = [0], [1], [float("nan")]
    t0 = time.perf_counter()
    done = 0
    while done < steps_total:
        n = min(args.chunk, steps_total - done)
        state, metrics = learner.run(state, task, n, chunk=n)
        done += n
        tokens.append(done * args.batch)
        levels.append(int(state.task_state.level[0]))
        losses.append(float(metrics["bits_per_step"][-1]))
    seconds = time.perf_counter() - t0
    return {
        "estimator": label,
        "density": density,
        "seed": seed,
        "tokens": tokens,
        "levels": levels,
        "bits_per_step": losses,
        "max_level": max(levels),
        "seconds": seconds,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    p.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.25])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed0", type=int, default=0, help="first seed (seeds seed0 … seed0 + seeds − 1)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=16, help="streams")
    p.add_argument("--tokens", type=int, default=160_000, help="budget per run (steps × streams)")
    p.add_argument("--chunk", type=int, default=500, help="steps per jitted chunk (level read after each)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--truncation", type=int, default=8, help="T of TBPTT(T)")
    p.add_argument("--max-length", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("docs/results/copy_curriculum.md"))
    p.add_argument("--from-json", action="store_true", help="only rewrite the report from <out>.json")
    p.add_argument("--merge", type=Path, nargs="*", default=[],
                   help="with --from-json: also pool the runs of these json files (other seeds)")
    args = p.parse_args(argv)
    command = "python benchmarks/copy_curriculum.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        merge = args.merge
        args = argparse.Namespace(**(saved["args"] | {"out": args.out}))
        commands = [f"`{saved.get('command', command).strip()}`"]
        runs = saved["runs"]
        for path in merge:
            other = json.loads(path.read_text())
            commands.append(f"`{other['command'].strip()}` (runs kept in `{path}`)")
            runs = runs + other["runs"]
        write_report(args, runs, "; ".join(commands))
        return

    runs = []
    json_path = args.out.with_suffix(".json")
    for density in args.densities:
        for name in args.estimators:
            if name == "snap2" and density >= 1.0 and "rtrl" in args.estimators:
                # dense GRU: P_2 is every entry (each unit feeds every unit), so SnAp-2 is
                # RTRL with extra indexing; the RTRL rows stand for it.
                continue
            for seed in range(args.seed0, args.seed0 + args.seeds):
                r = run_one(name, density, seed, args)
                runs.append(r)
                print(
                    f"{r['estimator']:8s} density {density:.2f} seed {seed}: L = {r['max_level']} "
                    f"({r['seconds']:.0f} s)",
                    flush=True,
                )
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(
                    {"args": vars(args) | {"out": str(args.out)}, "command": command, "runs": runs}
                ))
    write_report(args, runs, f"`{command.strip()}`")


def write_report(args, runs, commands: str):
    """``commands``: the markdown line naming the command(s) behind ``runs``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["estimator"] for r in runs))
    densities = list(dict.fromkeys(r["density"] for r in runs))
    fig, axes = plt.subplots(1, len(densities), figsize=(6 * len(densities), 4), squeeze=False)
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, density in zip(axes[0], densities):
        for label in labels:
            sel = [r for r in runs if r["estimator"] == label and r["density"] == density]
            for i, r in enumerate(sel):
                ax.step(r["tokens"], r["levels"], where="post", color=colours[label],
                        alpha=0.8, label=label if i == 0 else None)
        ax.set_title(f"GRU-{args.hidden}, recurrent density {density:g}")
        ax.set_xlabel("tokens (steps × streams)")
        ax.set_ylabel("curriculum level L")
        ax.legend()
    png = args.out.with_suffix(".png")
    save_figure(fig, png, dpi=100)

    lines = [
        "# Curriculum copy task (SnAp paper protocol, light settings)",
        "",
        f"Machine: {machine_description()} — shared with other jobs while this ran, so the "
        "wall-clock column is indicative only.",
        f"Commands: {commands}",
        "",
        f"Budget: {args.tokens:,} tokens per run ({args.tokens // args.batch:,} steps × {args.batch} "
        f"streams), GRU-{args.hidden} + linear readout, float32, Adam lr {args.lr:g}, fully online "
        f"(update every step, K = 1), TBPTT window T = {args.truncation}, curriculum threshold "
        f"0.15 bits/step, L capped at {args.max_length}. The level is shared by the streams of a run "
        "and read every "
        f"{args.chunk * args.batch:,} tokens. Seeds per cell of the table: "
        + ", ".join(sorted({str(len({r['seed'] for r in runs if r['density'] == d})) for d in densities}))
        + ".",
        "",
        "Largest L reached (per seed, and the mean):",
        "",
        "| estimator | " + " | ".join(f"density {d:g}" for d in densities) + " |",
        "|---|" + "---|" * len(densities),
    ]
    for label in labels:
        cells = []
        for density in densities:
            sel = [r for r in runs if r["estimator"] == label and r["density"] == density]
            if not sel:
                cells.append("—")
                continue
            ls = [r["max_level"] for r in sel]
            secs = np.mean([r["seconds"] for r in sel])
            cells.append(f"{np.mean(ls):.1f} ({', '.join(map(str, ls))}; {secs:.0f} s/run)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ordering by mean largest L. Differences smaller than the spread between seeds (the "
        "per-seed values above) are not evidence of an ordering; a level is one unit of L.",
        "",
    ]
    for density in densities:
        means = {}
        for label in labels:
            sel = [r["max_level"] for r in runs if r["estimator"] == label and r["density"] == density]
            if sel:
                means[label] = float(np.mean(sel))
        order = sorted(means, key=lambda k: -means[k])
        lines.append(f"- density {density:g}: " + " ≥ ".join(f"{k} ({means[k]:.1f})" for k in order))
    lines += [
        "",
        "On a dense GRU P_2 keeps every entry (each unit feeds every unit in one step), so "
        "SnAp-2 there is RTRL; it is not run separately and the RTRL row stands for it.",
        "",
        f"![L vs tokens]({png.name})",
        "",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
