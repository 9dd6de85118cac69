"""SnAp on character-level language modelling (the SnAp paper's setting, downsized), fully online.

A sparse GRU or LSTM (recurrent weights masked at random to density 0.25 / 0.1: 75 % /
90 % sparsity; dense input weights) + linear readout predicts the next character of
tinyshakespeare (first 90 % train, last 10 % held out; character vocabulary), updating
after every step (K = 1, Adam) with SnAp-1, SnAp-2, UORO, RTRL and TBPTT(T) (sliding
window of T steps, backpropagated at every step) — every run of one configuration the
same token budget (steps × streams), the same initial weights and the same stream
positions for a given seed.  Held-out bits per character on the first ``--eval-chars``
held-out characters, read every ``--eval-every`` steps, beside the unigram and add-one
bigram models counted on the training text.  Writes docs/results/charlm_snap.md
(+ .png, .json).

    # the per-step cost of every estimator (alternating repeats, median)
    python benchmarks/charlm_snap.py --cost --cells gru lstm --batch 16
    # learning runs; --append adds them to the JSON (one configuration per call)
    python benchmarks/charlm_snap.py --append --cells gru --batch 16 --tokens 100000 ...
    python benchmarks/charlm_snap.py --from-json     # rewrite the report

The first, 12k-token study (GRU-32, 8 streams, lr 3e-3, eval on 2,000 characters) is
``docs/results/charlm_snap_12k.json``; its command (defaults unchanged) reproduces it:
``python benchmarks/charlm_snap.py --tokens 12000 --eval-every 300 --out docs/results/charlm_snap_12k.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import rtrlax as rx
from harness import figure, machine_description as machine, save_figure
from rtrlax.tasks.charlm import evaluate_bpc

ROOT = Path(__file__).resolve().parents[1]
#: the project's data folder sits beside the checkout (``../shared/data``); a git worktree
#: one level deeper (``…/wt/NAME``) finds it one level further up
TEXT = next((p for p in (ROOT.parent / "shared" / "data" / "tinyshakespeare.txt",
                         ROOT.parent.parent / "shared" / "data" / "tinyshakespeare.txt") if p.exists()),
            ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
ESTIMATORS = {
    "snap1": ("SnAp-1", lambda a, m: rx.SnAp(1)),
    "snap2": ("SnAp-2", lambda a, m: rx.SnAp(2).bind(m)),
    "uoro": ("UORO", lambda a, m: rx.UORO()),
    "rtrl": ("RTRL", lambda a, m: rx.RTRL()),
    "tbptt": ("TBPTT", lambda a, m: rx.TBPTT(a.truncation)),
}
CELLS = {"gru": rx.GRU, "lstm": rx.LSTM}


def make_learner(task, cell, name, density, seed, args):
    k_model, k_read, k_run = jax.random.split(jax.random.key(seed), 3)
    core = CELLS[cell](task.input_size, args.hidden, key=k_model, density=density, dtype=jnp.float32)
    model = rx.Readout(core, task.output_size, key=k_read)
    estimator = ESTIMATORS[name][1](args, model)
    learner = rx.OnlineLearner(model, estimator, optax.adam(args.lr), update_every=args.update_every)
    state = learner.init(k_run, batch_size=args.batch, task=task)
    return model, estimator, learner, state


def pattern_fill(core, estimator) -> float | None:
    """SnAp-n's stored entries per parameter as a share of RTRL's: the pattern's width over
    the state size (SnAp-1: a parameter's own unit only, 1 / units)."""
    if not isinstance(estimator, rx.SnAp):
        return None
    if estimator.sizes is None:
        return 1 / core.hidden_size
    return estimator.sizes.width / core.hidden_size  # units reached / units (for every state component)


def run_one(task, cell, name, density, seed, args):
    model, estimator, learner, state = make_learner(task, cell, name, density, seed, args)
    static = eqx.partition(model, eqx.is_inexact_array)[1]
    steps_total = args.tokens // args.batch

    def held_out(state):
        return float(evaluate_bpc(eqx.combine(state.params, static), task, max_chars=args.eval_chars))

    tokens, test_bpc, train_bpc = [0], [held_out(state)], [float("nan")]
    load0, t0, done = os.getloadavg()[0], time.perf_counter(), 0
    while done < steps_total:
        n = min(args.eval_every, steps_total - done)
        state, metrics = learner.run(state, task, n, chunk=n)
        done += n
        tokens.append(done * args.batch)
        test_bpc.append(held_out(state))
        train_bpc.append(float(metrics["bpc"][-1]))
    return dict(estimator=ESTIMATORS[name][0], cell=cell, hidden=args.hidden, batch=args.batch, lr=args.lr,
                truncation=args.truncation, update_every=args.update_every, eval_chars=args.eval_chars, density=density, seed=seed,
                tokens=tokens, test_bpc=test_bpc, train_bpc=train_bpc, seconds=time.perf_counter() - t0,
                pattern_fill=pattern_fill(model.core, estimator), load=[load0, os.getloadavg()[0]])  # fmt: skip


def baselines(task, eval_chars):
    """Held-out bpc of the unigram and add-one bigram models counted on the training text."""
    train = np.asarray(task.train_tokens())
    test = np.asarray(task.test_tokens())[: eval_chars + 1]
    v = task.input_size
    uni = np.bincount(train, minlength=v) + 1.0
    uni /= uni.sum()
    big = np.ones((v, v))
    np.add.at(big, (train[:-1], train[1:]), 1.0)
    big /= big.sum(1, keepdims=True)
    return {"unigram": float(-np.log2(uni[test[1:]]).mean()), "bigram": float(-np.log2(big[test[:-1], test[1:]]).mean())}


def measure_cost(task, args):
    """Milliseconds per step (all streams) of each estimator and cell, repeats alternated."""
    rows = []
    for cell in args.cells:
        for density in args.densities:
            fns = {}
            for name in args.estimators:
                model, estimator, learner, state = make_learner(task, cell, name, density, 0, args)
                fns[name] = (lambda s, L=learner: L.run(s, task, args.cost_steps, chunk=args.cost_steps)[0].params, (state,))
                fns[name] = (*fns[name], pattern_fill(model.core, estimator))
            for fn, a, _ in fns.values():
                jax.block_until_ready(fn(*a))
            wall = {n: [] for n in fns}
            load0 = os.getloadavg()[0]
            for _ in range(args.cost_repeats):
                for name, (fn, a, _) in fns.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn(*a))
                    wall[name].append(time.perf_counter() - t0)
            for name in fns:
                ms = 1e3 * statistics.median(wall[name]) / args.cost_steps
                rows.append(dict(cell=cell, hidden=args.hidden, batch=args.batch, density=density,
                                 estimator=ESTIMATORS[name][0], ms_per_step=ms, us_per_token=1e3 * ms / args.batch,
                                 pattern_fill=fns[name][2], load=[load0, os.getloadavg()[0]]))  # fmt: skip
                print(f"{cell} H{args.hidden} B{args.batch} d{density} {ESTIMATORS[name][0]:7s} {ms:8.2f} ms/step", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    p.add_argument("--cells", nargs="+", default=["gru"], choices=list(CELLS))
    p.add_argument("--densities", type=float, nargs="+", default=[0.25, 0.1])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 … seeds-1")
    p.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of --seeds")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=8, help="streams")
    p.add_argument("--tokens", type=int, default=16_000, help="budget per run (steps × streams)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between held-out evaluations")
    p.add_argument("--eval-chars", type=int, default=2000)
    p.add_argument("--truncation", type=int, default=8, help="T of TBPTT(T)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--update-every", type=int, default=1, help="K: an Adam update every K steps (1: fully online)")
    p.add_argument("--text", type=Path, default=TEXT)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "charlm_snap.md")
    p.add_argument("--append", action="store_true", help="add these runs to the existing JSON")
    p.add_argument("--cost", action="store_true", help="measure ms per step instead of learning")
    p.add_argument("--cost-steps", type=int, default=50)
    p.add_argument("--cost-repeats", type=int, default=3)
    p.add_argument("--from-json", action="store_true")
    args = p.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    if args.from_json:
        write_report(load(json_path), args.out)
        return
    task = rx.CharLM.from_file(args.text)
    command = "python benchmarks/charlm_snap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    saved = load(json_path) if (args.append or args.cost) and json_path.exists() else None
    if saved is None:
        saved = {"vocabulary": task.input_size, "invocations": [], "runs": [], "cost": [], "baselines": {}}
    saved["invocations"].append({"command": command, "machine": machine(), "load": os.getloadavg()[0],
                                 "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}})  # fmt: skip
    saved["baselines"][str(args.eval_chars)] = baselines(task, args.eval_chars)
    if args.cost:
        saved["cost"] += measure_cost(task, args)
        json_path.write_text(json.dumps(saved))
        write_report(saved, args.out)
        return
    seeds = args.seed_list if args.seed_list else range(args.seeds)
    for seed in seeds:  # seed-major: a cut-short run still covers every cell
        for cell in args.cells:
            for density in args.densities:
                for name in args.estimators:
                    r = run_one(task, cell, name, density, seed, args)
                    saved["runs"].append(r)
                    print(f"{cell} {r['estimator']:7s} density {density:.2f} seed {seed}: held-out bpc "
                          f"{r['test_bpc'][-1]:.3f} ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
                    json_path.write_text(json.dumps(saved))
    write_report(saved, args.out)


def load(path: Path) -> dict:
    """The results JSON; the first study's single-command format is read as one invocation."""
    saved = json.loads(path.read_text())
    if "invocations" not in saved:
        a = saved["args"]
        for r in saved["runs"]:
            r.update(cell="gru", hidden=a["hidden"], batch=a["batch"], lr=a["lr"], truncation=a["truncation"],
                     eval_chars=a["eval_chars"])  # fmt: skip
        saved = {"vocabulary": saved["vocabulary"], "runs": saved["runs"], "cost": [], "baselines": {},
                 "invocations": [{"command": saved["command"], "machine": saved["machine"], "args": a}]}  # fmt: skip
    return saved


def config(r) -> tuple:
    return (r["cell"], r["hidden"], r["density"], r["batch"], r["lr"], r["tokens"][-1], r["eval_chars"])


def label(r) -> str:
    name = f"TBPTT({r['truncation']})" if r["estimator"] == "TBPTT" else r["estimator"]
    k = r.get("update_every", 1)
    return name if k == 1 else f"{name}, update every {k}"


def config_name(c) -> str:
    cell, hidden, density, batch, lr, tokens, _ = c
    return f"{cell.upper()}-{hidden}, {100 * (1 - density):.0f} % sparse, {batch} streams, lr {lr:g}, {tokens:,} tokens"


def write_report(saved, out: Path):
    runs = saved["runs"]
    configs = list(dict.fromkeys(config(r) for r in runs))
    labels = list(dict.fromkeys(label(r) for r in runs))
    fig, axes = figure(ncols=min(3, max(1, len(configs))), nrows=(len(configs) + 2) // 3 if configs else 1,
                       size=(5.5, 3.8))  # fmt: skip
    colours = dict(zip(labels, [f"C{i}" for i in range(10)]))
    for ax, c in zip(axes, configs):
        for name in labels:
            sel = [r for r in runs if label(r) == name and config(r) == c]
            if not sel:
                continue
            curves = np.array([r["test_bpc"] for r in sel])
            ax.plot(sel[0]["tokens"], curves.mean(0), color=colours[name], label=f"{name} ({len(sel)})")
            ax.fill_between(sel[0]["tokens"], curves.min(0), curves.max(0), color=colours[name], alpha=0.2)
        base = saved["baselines"].get(str(c[6]))
        if base:
            ax.axhline(base["bigram"], color="black", ls="--", lw=1, label="add-one bigram")
        ax.set_ylim(top=min(ax.get_ylim()[1], 4.6))
        ax.set_title(config_name(c), fontsize=8)
        ax.set_xlabel("tokens (steps × streams)")
        ax.set_ylabel("held-out bits per character")
        ax.legend(fontsize=7)
    for ax in axes[len(configs):]:
        ax.set_visible(False)
    save_figure(fig, out.with_suffix(".png"))

    lines = ["# SnAp on character-level language modelling (tinyshakespeare), fully online", ""]
    machines = sorted({i["machine"] for i in saved["invocations"]})
    lines += [f"Machine: {'; '.join(machines)} — shared with other engineers' tests and benchmarks while it "
              "ran (load averages per run in the JSON where recorded): times are rough; ratios measured in one process "
              "are the figures to read.", "", "Commands (in order):", ""]  # fmt: skip
    lines += [f"    {i['command']}" for i in saved["invocations"]] + [""]
    lines += [
        "Sparse recurrent weights (a fixed random mask per gate matrix, density 0.25 / 0.1, i.e. 75 % / "
        "90 % sparsity; dense input weights), float32, + linear readout; next-character prediction "
        f"on `tinyshakespeare.txt` (first 90 % train, last 10 % held out; {saved['vocabulary']} characters); "
        "an Adam update after **every** step, the gradient averaged over the streams; TBPTT(T) is a "
        "sliding window of T steps backpropagated at every step. The same seed gives every estimator "
        "the same initial weights and the same stream positions. Held-out bpc on the first "
        "`eval_chars` held-out characters with the parameters of that moment; mean ± std over the seeds "
        "(the count in the table).",
        "",
    ]
    for ec, b in sorted(saved["baselines"].items()):
        lines.append(f"Reference on the first {int(ec):,} held-out characters: unigram {b['unigram']:.3f} bpc, "
                     f"add-one bigram {b['bigram']:.3f} bpc (both counted on the training text).")  # fmt: skip
    lines.append("")
    if saved["cost"]:
        lines += ["## Cost per step", "",
                  "Milliseconds per online step of all streams (forward, estimator, Adam update; TBPTT with T = 8), median of "
                  "alternated repeats in one process; `fill` is SnAp-n's stored entries per parameter as a "
                  "share of RTRL's (width of the pattern / state size).", "",
                  "| cell | units | sparsity | streams | estimator | ms / step | µs / token | × TBPTT | fill | load |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in saved["cost"]:
            tb = [q for q in saved["cost"] if q["estimator"] == "TBPTT" and
                  all(q[k] == row[k] for k in ("cell", "hidden", "batch", "density"))]  # fmt: skip
            ratio = f"{row['ms_per_step'] / tb[-1]['ms_per_step']:.1f}" if tb else "—"
            fill = "—" if row["pattern_fill"] is None else f"{row['pattern_fill']:.2f}"
            lines.append(f"| {row['cell'].upper()} | {row['hidden']} | {100 * (1 - row['density']):.0f} % | "
                         f"{row['batch']} | {row['estimator']} | {row['ms_per_step']:.2f} | {row['us_per_token']:.0f} "
                         f"| {ratio} | {fill} | {row['load'][0]:.1f} |")  # fmt: skip
        lines.append("")
    lines += ["## Held-out bits per character", ""]
    for c in configs:
        tok = next(r for r in runs if config(r) == c)["tokens"]
        checkpoints = sorted({len(tok) // 4, len(tok) // 2, len(tok) - 1})
        lines += [f"**{config_name(c)}** (held out: first {c[6]:,} characters)", ""]
        lines += ["| estimator | seeds | " + " | ".join(f"bpc at {tok[i]:,} tokens" for i in checkpoints)
                  + " | mean over the run | s per run |", "|---" * (len(checkpoints) + 4) + "|"]  # fmt: skip
        for name in labels:
            sel = [r for r in runs if label(r) == name and config(r) == c]
            if not sel:
                continue
            cells = [f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in ([r["test_bpc"][i] for r in sel] for i in checkpoints)]
            area = [np.mean(r["test_bpc"][1:]) for r in sel]
            lines.append(f"| {name} | {len(sel)} | " + " | ".join(cells) + f" | {np.mean(area):.3f} ± {np.std(area):.3f} "
                         f"| {np.mean([r['seconds'] for r in sel]):.0f} |")  # fmt: skip
        for a, b in [("SnAp-2", t) for t in labels if t.startswith("TBPTT")] + [("SnAp-2", "RTRL"), ("SnAp-1", "SnAp-2")]:
            paired = paired_difference(runs, c, a, b)
            if paired:
                lines.append("")
                lines.append(f"{a} − {b}, paired by seed ({len(paired[0])}): final "
                             + ", ".join(f"{d:+.3f}" for d in paired[0]) + "; mean over the run "
                             + ", ".join(f"{d:+.3f}" for d in paired[1]) + " bpc.")  # fmt: skip
        lines.append("")
    lines += [f"![held-out bpc]({out.with_suffix('.png').name})", ""]
    notes = out.with_name(out.stem + "_notes.md")
    if notes.exists():
        lines.append(notes.read_text())
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def paired_difference(runs, c, a, b):
    by_seed = {}
    for r in runs:
        if config(r) == c and label(r) in (a, b):
            by_seed.setdefault(r["seed"], {})[label(r)] = r
    pairs = [v for v in by_seed.values() if len(v) == 2]
    if not pairs:
        return None
    final = [v[a]["test_bpc"][-1] - v[b]["test_bpc"][-1] for v in pairs]
    area = [np.mean(v[a]["test_bpc"][1:]) - np.mean(v[b]["test_bpc"][1:]) for v in pairs]
    return final, area


if __name__ == "__main__":
    main()
