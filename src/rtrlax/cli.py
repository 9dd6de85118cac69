"""The ``rtrlax`` command.

``rtrlax run <task> [options]`` trains online on a task and writes
``metrics.json``, ``metrics.csv`` and ``curve.png`` to ``--out``;
``rtrlax demo`` runs a small comparison of estimators on the copy task.
``rtrlax <command> --help`` describes every option.

Extending it: add an estimator to :data:`ESTIMATORS`, a cell to :data:`CELLS`, or a
task to :data:`RUNNERS` (a function that adds its sub-parser).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

# --- registries -------------------------------------------------------------------------


def _int_arg(name: str, arg: str | None, default: int) -> int:
    if arg is None or arg == "":
        return default
    try:
        return int(arg)
    except ValueError:
        raise ValueError(f"{name} takes an integer argument, as in '{name}:4'; got '{arg}'.")


def _estimators() -> dict[str, Callable]:
    import rtrlax as rx

    return {
        "rtrl": lambda a: rx.RTRL(),
        "snap": lambda a: rx.SnAp(_int_arg("snap", a, 1)),
        "tbptt": lambda a: rx.TBPTT(_int_arg("tbptt", a, 16)),
    }


#: estimator name -> factory(argument or None); "name:arg" on the command line.
ESTIMATORS: dict[str, Callable] = {}
ESTIMATORS["sparsertrl"] = lambda a: importlib.import_module("rtrlax").SparseRTRL((float(a) if "." in a else int(a)) if a else 0.25)
ESTIMATORS["onlinelru"] = lambda a: importlib.import_module("rtrlax").OnlineLRU(int(a) if a else None)


def _cells() -> dict[str, Callable]:
    import rtrlax as rx

    return {"vanilla": rx.VanillaRNN, "gru": rx.GRU, "lstm": rx.LSTM}


#: cell name -> class taking (input_size, hidden_size, *, key, density, input_density).
CELLS: dict[str, Callable] = {}
CELLS["egru"] = lambda *a, **kw: importlib.import_module("rtrlax").EGRU(*a, **kw)
CELLS["lru"] = lambda *a, **kw: importlib.import_module("rtrlax.cells.lru").make_lru_core(*a, **kw)


def make_estimator(spec: str):
    """``"snap:2"`` -> ``rx.SnAp(2)``; raises ValueError naming the choices."""
    registry = {**_estimators(), **ESTIMATORS}
    name, _, arg = spec.partition(":")
    name = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"snap1": ("snap", "1"), "snap2": ("snap", "2"), "snap3": ("snap", "3")}
    if name in aliases and not arg:
        name, arg = aliases[name]
    if name not in registry:
        raise ValueError(
            f"unknown estimator '{spec}'; choose one of: {', '.join(sorted(registry))} "
            "(arguments after a colon, e.g. tbptt:8, snap:2)."
        )
    return registry[name](arg or None)


def make_cell(name: str, input_size: int, hidden: int, *, key, density=1.0, input_density=1.0):
    registry = {**_cells(), **CELLS}
    if name not in registry:
        raise ValueError(f"unknown cell '{name}'; choose one of: {', '.join(sorted(registry))}.")
    return registry[name](input_size, hidden, key=key, density=density, input_density=input_density)


# --- results ----------------------------------------------------------------------------


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import jax

    desc = f"{cpu}, {os.cpu_count()} cores, {jax.default_backend()} backend, jax {jax.__version__}"
    if jax.default_backend() != "cpu":
        desc += f", {jax.devices()[0].device_kind}"
    return desc


def write_results(out: Path, config: dict, history: dict, *, title: str) -> None:
    """metrics.json (config + per-chunk history), metrics.csv and curve.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    hist = {k: [float(x) for x in v] for k, v in history.items()}
    (out / "metrics.json").write_text(
        json.dumps({"config": config, "machine": machine_description(), "history": hist}, indent=2)
    )
    keys = list(hist)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        w.writerows(zip(*(hist[k] for k in keys)))
    plot_curves(out / "curve.png", {config.get("estimator", "run"): hist}, title=title)


def plot_curves(path: Path, runs: dict[str, dict], *, title: str, keys=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(runs.values()))
    keys = keys or [k for k in first if k != "step"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for name, hist in runs.items():
            if k in hist:
                ax.plot(hist["step"], hist[k], label=name)
        ax.set_xlabel("steps")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- rtrlax run copy -----------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser, *, steps: int, hidden: int, lr: float) -> None:
    p.add_argument("--estimator", default="snap:1", help="rtrl | snap[:n] | tbptt[:T] | ... (default snap:1)")
    p.add_argument("--hidden", type=int, default=hidden, help=f"hidden units (default {hidden})")
    p.add_argument("--steps", type=int, default=steps, help=f"online steps per stream (default {steps})")
    p.add_argument("--batch", type=int, default=8, help="independent streams (default 8)")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    p.add_argument("--update-every", type=int, default=1, help="K: update every K steps (default 1)")
    p.add_argument("--chunk", type=int, default=500, help="steps per jitted chunk (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="results directory (default runs/<task>-<estimator>)")
    p.add_argument("--save", type=Path, default=None, help="write a learner checkpoint here at the end")
    p.add_argument("--resume", type=Path, default=None, help="continue from a checkpoint written by --save")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_copy(sub) -> None:
    p = sub.add_parser(
        "copy",
        help="copy task (fixed T=48, or the SnAp curriculum)",
        description="Online training on the copy task (TASKS.md): fixed 7-bit patterns of length 20 "
        "(T = 48), or with --curriculum the SnAp paper's 1-bit curriculum where L grows on the "
        "0.15 bits/step rule.",
    )
    _add_common(p, steps=20000, hidden=64, lr=1e-3)
    p.add_argument("--cell", default="gru", help="vanilla | gru | lstm (default gru)")
    p.add_argument("--density", type=float, default=1.0, help="recurrent weight density in (0, 1]")
    p.add_argument("--input-density", type=float, default=1.0, help="input weight density in (0, 1]")
    p.add_argument("--curriculum", action="store_true", help="the SnAp curriculum variant")
    p.add_argument("--max-length", type=int, default=64, help="curriculum: largest L (default 64)")
    p.add_argument("--pattern-length", type=int, default=20, help="fixed variant: pattern length (20)")
    p.add_argument("--padding", type=int, default=7, help="fixed variant: blank steps (7)")
    p.add_argument("--bits", type=int, default=7, help="fixed variant: bits per step (7)")
    p.set_defaults(func=_run_copy)


def _run_copy(args) -> dict:
    import jax
    import optax

    import rtrlax as rx

    task = (
        rx.CopyCurriculum(max_length=args.max_length)
        if args.curriculum
        else rx.CopyTask(args.bits, args.pattern_length, args.padding)
    )
    k_cell, k_out, k_run = jax.random.split(jax.random.key(args.seed), 3)
    cell = make_cell(
        args.cell,
        task.input_size,
        args.hidden,
        key=k_cell,
        density=args.density,
        input_density=args.input_density,
    )
    model = rx.Readout(cell, task.output_size, key=k_out)
    estimator = make_estimator(args.estimator)
    extra = {}
    if args.curriculum:
        extra["level"] = lambda state: int(state.task_state.level[0])
    return train(args, "copy-curriculum" if args.curriculum else "copy", task, model, estimator, k_run, extra)


def train(args, name, task, model, estimator, key, extra=None) -> dict:
    """Shared driver of ``rtrlax run``: learner, progress bar, checkpoints, results."""
    import optax

    import rtrlax as rx

    learner = rx.OnlineLearner(
        model, estimator, optax.adam(args.lr), update_every=args.update_every
    )
    if args.resume is not None:
        state = learner.restore(args.resume, batch_size=args.batch, task=task)
    else:
        state = learner.init(key, batch_size=args.batch, task=task)
    history: dict[str, list] = {}
    t0 = time.perf_counter()
    chunk = learner.whole_updates(args.chunk)  # a chunked estimator takes K steps at once
    with _bar(args.steps, f"{name} {args.estimator}", disable=args.quiet) as bar:
        done = 0
        while done < args.steps:
            n = min(chunk, args.steps - done)
            state, m = learner.run(state, task, n, chunk=n)
            done += n
            for k, v in m.items():
                history.setdefault(k, []).append(float(v[-1]))
            for k, f in (extra or {}).items():
                history.setdefault(k, []).append(f(state))
            bar.update(n)
            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items() if k != "step"})
    seconds = time.perf_counter() - t0
    if args.save is not None:
        learner.save(state, args.save)
    out = args.out or Path("runs") / f"{name}-{args.estimator.replace(':', '')}"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    config.update(task=name, seconds=seconds, steps_per_second=args.steps * args.batch / seconds)
    write_results(out, config, history, title=f"{name}: {args.estimator}")
    final = {k: v[-1] for k, v in history.items()}
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png  ({seconds:.1f} s)")
    print("final: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    return {"history": history, "seconds": seconds, "state": state}


def _bar(total, desc, disable=False):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=disable, leave=False)


#: task name -> function(subparsers) adding ``rtrlax run <task>``.
RUNNERS: dict[str, Callable] = {"copy": _add_copy}
RUNNERS["charlm"] = lambda sub: importlib.import_module("rtrlax.tasks.charlm").add_cli(sub)
RUNNERS["trace-patterning"] = lambda sub: importlib.import_module("rtrlax.tasks.animal").add_cli(sub)


# --- rtrlax demo --------------------------------------------------------------------------


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="compare RTRL, SnAp-1, truncated BPTT and a trace-free baseline on a copy task",
        description="A small comparison on the copy task (2 bits, pattern 4, 2 blanks: T = 11) with a "
        "GRU-16: exact RTRL, SnAp-1, TBPTT(4) (too short to bridge the delay) and TBPTT(1), the "
        "trace-free instantaneous gradient. Prints a table, writes demo.png and demo.json. "
        "About two minutes on 2 CPU cores.",
    )
    p.add_argument("--steps", type=int, default=12000, help="online steps per stream (default 12000)")
    p.add_argument("--batch", type=int, default=16, help="streams (default 16)")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (runs/demo)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> dict:
    import jax
    import numpy as np
    import optax

    import rtrlax as rx

    task = rx.CopyTask(bits=2, pattern_length=4, padding=2)
    k_cell, k_out, k_run = jax.random.split(jax.random.key(args.seed), 3)
    model = rx.Readout(
        rx.GRU(task.input_size, args.hidden, key=k_cell), task.output_size, key=k_out
    )
    contenders = {
        "RTRL (exact)": rx.RTRL(),
        "SnAp-1": rx.SnAp(1),
        "TBPTT(4)": rx.TBPTT(4),
        "trace-free (TBPTT(1))": rx.TBPTT(1),
    }
    chunk = 250
    runs, rows = {}, []
    for name, est in contenders.items():
        learner = rx.OnlineLearner(model, est, optax.adam(1e-2))
        state = learner.init(k_run, batch_size=args.batch, task=task)
        state, _ = learner.run(state, task, chunk, chunk=chunk)  # compile + first chunk
        jax.block_until_ready(state)
        hist: dict[str, list] = {}
        t0 = time.perf_counter()
        with _bar(args.steps - chunk, name) as bar:
            for _ in range((args.steps - chunk) // chunk):
                state, m = learner.run(state, task, chunk, chunk=chunk)
                for k, v in m.items():
                    hist.setdefault(k, []).append(float(v[-1]))
                bar.update(chunk)
                bar.set_postfix(bits_per_step=f"{hist['bits_per_step'][-1]:.3f}")
        jax.block_until_ready(state)
        seconds = time.perf_counter() - t0
        hist = {k: np.asarray(v) for k, v in hist.items()}
        runs[name] = {k: list(map(float, v)) for k, v in hist.items()}
        tail = max(1, len(hist["loss"]) // 5)
        rows.append(
            (
                name,
                float(hist["bits_per_step"][-tail:].mean()),
                float(hist["bit_accuracy"][-tail:].mean()),
                1e6 * seconds / (len(hist['loss']) * chunk),
            )
        )
    header = f"{'estimator':<24}{'bits/step':>10}{'bit acc.':>10}{'µs/step':>10}"
    lines = [header, "-" * len(header)]
    lines += [f"{n:<24}{b:>10.3f}{a:>10.3f}{us:>10.0f}" for n, b, a, us in rows]
    table = "\n".join(lines)
    print(f"\ncopy task T={task.sequence_length}, GRU-{args.hidden}, {args.batch} streams, "
          f"{args.steps} online steps each (last 20% of chunks averaged; µs per step of all streams)")
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_curves(args.out / "demo.png", runs, title="rtrlax demo: copy task, GRU-16, fully online",
                keys=["bits_per_step", "bit_accuracy"])
    (args.out / "demo.json").write_text(json.dumps(
        {"machine": machine_description(), "rows": rows, "history": runs, "steps": args.steps,
         "batch": args.batch}, indent=2))
    print(f"wrote {args.out}/demo.png and demo.json")
    return {"rows": rows}


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtrlax",
        description="Online learning for recurrent networks: train and compare estimators.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train online on a task", description="Train online on a task.")
    tasks = run.add_subparsers(dest="task", required=True)
    for add in RUNNERS.values():
        add(tasks)
    _add_demo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:  # bad option values: a clear message, exit status 2
        parser.exit(2, f"rtrlax: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
