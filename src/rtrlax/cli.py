"""The ``rtrlax`` command.

* ``rtrlax run <task> [options]`` trains online on a task and writes ``metrics.json``,
  ``metrics.csv``, ``curve.png`` and ``config.toml`` (the resolved configuration) to
  ``--out``; ``rtrlax run --config exp.toml`` runs a configuration file (the same keys
  as the flags, plus ``task``; flags given on the command line override the file).
* ``rtrlax list`` prints every registered estimator, cell, network and task, and which
  estimator works with which cells.
* ``rtrlax demo`` runs a small side-by-side comparison of estimators on the copy task.

Every argument is checked before anything is built or compiled, and ``--help`` answers
without importing JAX: names are looked up in :mod:`rtrlax.experiments.registry`
(whose constructors import lazily), the experiments themselves live in
:mod:`rtrlax.experiments`.  A bad argument exits with status 2 and one line on stderr.

Extending it: register estimators, cells, networks or tasks in the registry (see its
docstring; ``--plugin MODULE`` imports a module of yours that does so).  A new kind of
run is a function ``add(subparsers)`` in :data:`RUNNERS` that adds its sub-parser with
``set_defaults(func=..., check=...)``: ``check(args)`` validates (no JAX), ``func(args)``
runs the experiment, passing ``args.resolved`` (the task and every option: what
``config.toml`` records) to it as its ``config``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tomllib
from pathlib import Path
from typing import Callable

from .experiments import registry

# --- argument checks (no JAX) ----------------------------------------------------------------


def _positive(args, *names: str) -> None:
    for name in names:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {v}.")


def _finite_positive(args, *names: str) -> None:
    for name in names:
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}.")


def _in_unit(name: str, v, *, low_open: bool = True) -> None:
    if v is None:
        return
    ok = (0 < v <= 1) if low_open else (0 <= v <= 1)
    if not (math.isfinite(v) and ok):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"--{name} must lie in {interval}, got {v}.")


def _writable_dir(flag: str, path: Path | None) -> None:
    """``path`` is (or can become) a directory we may write into; an existing file there
    is refused, never moved aside."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is an existing file, not a directory: choose another path.")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: cannot create or write into {parent}.")


def _checkpoint_dir(flag: str, path: Path | None) -> None:
    """A checkpoint written by ``--save``: a directory of ``step-*`` checkpoints, or one
    checkpoint (``meta.json`` and ``state.npz``)."""
    if path is None:
        return
    single = (path / "meta.json").is_file() and (path / "state.npz").is_file()
    if not path.is_dir() or not (single or any(path.glob("step-*/meta.json"))):
        raise ValueError(f"{flag} {path} is not a checkpoint written by --save (expected "
                         "step-* checkpoints, or meta.json and state.npz, in it).")


def _text_file(path: Path, byte_level: bool) -> None:
    if not path.is_file():
        raise ValueError(f"--text {path} is not a file: give the path of a local text file "
                         "(e.g. tinyshakespeare.txt).")
    if not byte_level:
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"--text {path} is not UTF-8 text ({e.reason} at byte {e.start}): "
                             "add --byte-level to model its raw bytes.") from None


def _check_model(args) -> None:
    """Estimator, cell and network by name, and that they work together."""
    registry.parse("estimator", args.estimator)
    cell = registry.get("cell", args.cell)
    network = registry.get("network", args.network)
    registry.check_pair(args.estimator, args.cell)
    if network.requires is not None and network.requires not in cell.tags:
        raise ValueError(f"network '{network.name}' needs a {network.requires} cell, got "
                         f"'{cell.name}'.")
    _positive(args, "hidden", "layers")
    _in_unit("density", args.density, low_open="columnar" not in cell.tags)
    _in_unit("input-density", args.input_density)


def _check_online(args) -> None:
    _check_model(args)
    _positive(args, "steps", "batch", "update_every", "chunk", "devices")
    if args.devices is not None and args.batch % args.devices:
        raise ValueError(f"--batch {args.batch} streams do not divide over --devices "
                         f"{args.devices}: use a multiple of {args.devices}.")
    _finite_positive(args, "lr")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    _writable_dir("--out", args.out)
    _writable_dir("--save", args.save)
    _positive(args, "save_every")
    if args.save_every is not None and args.save is None:
        raise ValueError("--save-every needs --save DIR (where the checkpoints go).")
    if args.resume == "latest":
        if args.save is None:
            raise ValueError("--resume latest needs --save DIR (the checkpoints to resume from).")
        if args.save.exists():  # absent: nothing saved yet, so the run starts afresh
            _checkpoint_dir("--save", args.save)
    elif args.resume is not None:
        _checkpoint_dir("--resume", Path(args.resume))


# --- rtrlax run copy / charlm -------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser, *, steps: int, hidden: int, lr: float) -> None:
    p.add_argument("--estimator", default="snap:1",
                   help="an estimator, with its argument after a colon: "
                   + ", ".join(e.usage for e in registry.entries("estimator") if e.online)
                   + " (default snap:1; `rtrlax list` describes them)")
    p.add_argument("--cell", default="gru",
                   help=" | ".join(registry.names("cell")) + " (default gru)")
    p.add_argument("--network", default="readout",
                   help=" | ".join(registry.names("network")) + " (default readout)")
    p.add_argument("--layers", type=int, default=1, help="recurrent layers (stacks; default 1)")
    p.add_argument("--hidden", type=int, default=hidden, help=f"hidden units (default {hidden})")
    p.add_argument("--density", type=float, default=None,
                   help="recurrent weight density in (0, 1] (columnar: cross-column density "
                   "in [0, 1], default 0)")
    p.add_argument("--input-density", type=float, default=None, help="input weight density in (0, 1]")
    p.add_argument("--steps", type=int, default=steps, help=f"online steps per stream (default {steps})")
    p.add_argument("--batch", type=int, default=8, help="independent streams (default 8)")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    p.add_argument("--update-every", type=int, default=1, help="K: update every K steps (default 1)")
    p.add_argument("--chunk", type=int, default=500, help="steps per jitted chunk (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--devices", type=int, default=None,
                   help="split the streams over this many devices (--batch must be a multiple)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default runs/<task>-<estimator>)")
    p.add_argument("--save", type=Path, default=None,
                   help="directory for learner checkpoints (step-N, the newest 3 kept), written "
                   "at the end, on SIGINT/SIGTERM and every --save-every steps")
    p.add_argument("--save-every", type=int, default=None,
                   help="also checkpoint every N steps (needs --save)")
    p.add_argument("--resume", default=None,
                   help="continue up to --steps from a checkpoint directory, or 'latest': the "
                   "newest good one under --save (a fresh start if there is none yet)")
    p.add_argument("--override", action="store_true",
                   help="resume even if the checkpoint's hyper-parameters differ from these")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_copy(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "copy",
        help="copy task (fixed T=48, or the SnAp curriculum)",
        description="Online training on the copy task: fixed 7-bit patterns of length 20 "
        "(T = 48), or with --curriculum the SnAp paper's 1-bit curriculum where L grows on the "
        "0.15 bits/step rule.",
    )
    _add_common(p, steps=20000, hidden=64, lr=1e-3)
    p.add_argument("--curriculum", action="store_true", help="the SnAp curriculum variant")
    p.add_argument("--max-length", type=int, default=64, help="curriculum: largest L (default 64)")
    p.add_argument("--pattern-length", type=int, default=20, help="fixed variant: pattern length (20)")
    p.add_argument("--padding", type=int, default=7, help="fixed variant: blank steps (7)")
    p.add_argument("--bits", type=int, default=7, help="fixed variant: bits per step (7)")
    p.set_defaults(func=_run_copy, check=_check_copy)
    return p


def _check_copy(args) -> None:
    _check_online(args)
    _positive(args, "max_length", "pattern_length", "bits")
    if args.padding < 0:
        raise ValueError(f"--padding must be >= 0, got {args.padding}.")


def _online_kwargs(args) -> dict:
    names = ("estimator", "cell", "network", "layers", "hidden", "density", "input_density",
             "steps", "batch", "lr", "update_every", "chunk", "seed", "out", "save", "resume",
             "quiet", "save_every", "override", "devices")
    return {n: getattr(args, n) for n in names} | {"config": args.resolved}


def _run_copy(args) -> dict:
    from .experiments.online import run_online

    if args.curriculum:
        task, options = "copy-curriculum", {"max_length": args.max_length}
    else:
        task, options = "copy", {"bits": args.bits, "pattern_length": args.pattern_length,
                                 "padding": args.padding}
    return run_online(task=task, task_options=options, **_online_kwargs(args))


def _add_charlm(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "charlm",
        help="character-level language modelling on a local text file (bits per character)",
        description="Online next-character prediction on a local text (first 90%% train, last 10%% "
        "held out). Reports training bpc while learning and held-out bpc at the end.",
    )
    _add_common(p, steps=5000, hidden=64, lr=3e-3)
    p.add_argument("--text", type=Path, required=True, help="path of a local UTF-8 text file")
    p.add_argument("--byte-level", action="store_true", help="raw bytes (vocabulary 256)")
    p.add_argument("--eval-chars", type=int, default=20000, help="held-out characters scored (20000)")
    p.set_defaults(func=_run_charlm, check=_check_charlm)
    return p


def _check_charlm(args) -> None:
    _check_online(args)
    _positive(args, "eval_chars")
    _text_file(args.text, args.byte_level)


def _run_charlm(args) -> dict:
    from .experiments.online import run_online

    return run_online(task="charlm", task_options={"text": args.text, "byte_level": args.byte_level},
                      eval_chars=args.eval_chars, **_online_kwargs(args))


# --- rtrlax run sequence ------------------------------------------------------------------------

#: sequence-classification tasks: name -> (needs --data, the option --length sets)
_SEQUENCE_TASKS = {"listops": (False, "max_length"), "digits": (False, None),
                   "scifar": (True, None), "imdb": (True, "length"),
                   "lra-listops": (True, "max_length")}


def _add_sequence(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sequence",
        help="sequence classification: ListOps, sequential digits, sCIFAR, IMDB, LRA ListOps",
        description="Online learning on whole labelled sequences streamed step by step (a reset "
        "at each start, the label scored at every step, accuracy at the last): generated ListOps "
        "and sequential 8x8 digits, or sequential CIFAR-10, byte-level IMDB and LRA ListOps from "
        "your own downloaded files (--data). Defaults: a 2-layer LRU network with the online LRU.",
    )
    _add_common(p, steps=5000, hidden=64, lr=1e-3)
    p.set_defaults(cell="lru", network="lrunet", layers=2, estimator="onlinelru")
    p.add_argument("--seq-task", default="listops", choices=list(_SEQUENCE_TASKS),
                   help="which task (default listops)")
    p.add_argument("--data", type=Path, default=None,
                   help="folder of the downloaded files (scifar: cifar-10-batches-py; imdb: "
                   "aclImdb; lra-listops: the TSV files)")
    p.add_argument("--length", type=int, default=None,
                   help="listops / lra-listops: longest sequence; imdb: bytes per review")
    p.set_defaults(func=_run_sequence, check=_check_sequence)
    return p


def _check_sequence(args) -> None:
    _check_online(args)
    needs_data, length_option = _SEQUENCE_TASKS[args.seq_task]
    if needs_data and (args.data is None or not args.data.is_dir()):
        raise ValueError(f"--seq-task {args.seq_task} reads your downloaded files: give their "
                         f"folder with --data (got {args.data}).")
    if args.length is not None and length_option is None:
        raise ValueError(f"--length does not apply to --seq-task {args.seq_task}.")
    _positive(args, "length")


def _run_sequence(args) -> dict:
    from .experiments.online import run_online

    _, length_option = _SEQUENCE_TASKS[args.seq_task]
    options = {} if args.data is None else {"path": args.data}
    if args.length is not None:
        options[length_option] = args.length
    return run_online(task=args.seq_task, task_options=options, **_online_kwargs(args))


# --- rtrlax run trace-patterning ------------------------------------------------------------


def _add_trace(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "trace-patterning",
        help="TD(λ) prediction on trace patterning / conditioning (MSRE)",
        description="Online TD(λ) prediction of the discounted US on an animal-learning stream; "
        "reports the mean squared return error (MSRE) per logging window. Seeds run as a batch "
        "of independent streams and networks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--method", default="columnar",
                   help="columnar | ccn | constructive | snap1-lstm | tbptt-T:H")
    p.add_argument("--variant", default="patterning", choices=["patterning", "conditioning", "noisy"])
    p.add_argument("--isi", type=int, nargs=2, default=[14, 26], help="ISI range (CCN paper: 24 36)")
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3, help="step size α (RMSProp-normalised TD)")
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--lam", type=float, default=0.99)
    p.add_argument("--log", type=int, default=20_000, help="steps per MSRE window (multiple of 1000)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default runs/trace-<method>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run_trace, check=_check_trace)
    return p


def _check_trace(args) -> None:
    from .experiments.prediction import check_method

    check_method(args.method)
    _positive(args, "steps", "seeds", "log")
    _finite_positive(args, "lr")
    _in_unit("gamma", args.gamma, low_open=False)
    _in_unit("lam", args.lam, low_open=False)
    if args.log % 1000 or args.steps % args.log:
        raise ValueError("--log must be a multiple of 1000 and --steps a multiple of --log "
                         f"(got --log {args.log}, --steps {args.steps}).")
    lo, hi = args.isi
    if not 1 <= lo <= hi:
        raise ValueError(f"--isi takes two steps 1 <= low <= high, got {lo} {hi}.")
    _writable_dir("--out", args.out)


def _run_trace(args) -> dict:
    from .experiments.prediction import run_prediction

    names = ("method", "variant", "isi", "steps", "seeds", "seed", "lr", "gamma", "lam", "log",
             "out", "quiet")
    return run_prediction(**{n: getattr(args, n) for n in names}, config=args.resolved)


#: ``rtrlax run <name>``: a function adding the sub-parser (with ``func`` and ``check``)
RUNNERS: dict[str, Callable[..., argparse.ArgumentParser]] = {
    "copy": _add_copy,
    "charlm": _add_charlm,
    "trace-patterning": _add_trace,
    "sequence": _add_sequence,
    "rl": lambda sub: _rl().add_rl(sub),
    "predict": lambda sub: _rl().add_predict(sub),
}


def _rl():
    from .experiments import rl  # argparse and registry only: no JAX, no gymnax

    return rl


# --- rtrlax demo / list ---------------------------------------------------------------------


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
    p.set_defaults(func=_run_demo, check=_check_demo)


def _check_demo(args) -> None:
    _positive(args, "batch", "hidden")
    if args.steps < 500:
        raise ValueError(f"--steps must be at least 500 (two chunks of 250), got {args.steps}.")
    _writable_dir("--out", args.out)


def _run_demo(args) -> dict:
    from .experiments.demo import run_demo

    return run_demo(steps=args.steps, batch=args.batch, hidden=args.hidden, seed=args.seed,
                    out=args.out)


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="every registered estimator, cell, network and task",
                       description="Print the registry: each entry with its description; for "
                       "estimators and networks, the cells they work with.")
    p.set_defaults(func=_run_list, check=lambda args: None)


def _run_list(args) -> dict:
    for kind in registry.kinds():
        print(f"{kind}s:")
        for e in registry.entries(kind):
            print(f"  {e.usage:<22} {e.description}")
            if kind in ("estimator", "network") and e.requires is not None:
                cells = [c.name for c in registry.entries("cell") if e.requires in c.tags]
                print(f"  {'':<22}   cells: {', '.join(cells)}")
            elif kind == "estimator" and not e.online:
                print(f"  {'':<22}   offline only (rx.accumulate_grads)")
            elif kind == "estimator":
                print(f"  {'':<22}   cells: all")
        print()
    return {}


# --- configuration files --------------------------------------------------------------------

#: options that are not part of an experiment's identity (not written to config.toml)
_NOT_RECORDED = {"func", "check", "command", "command_name", "task", "config", "out", "save",
                 "quiet", "resolved", "resume", "override"}


def resolved_config(args) -> dict:
    """What ``config.toml`` records: the task and every option of the run."""
    config = {"task": args.task}
    for k, v in vars(args).items():
        if k in _NOT_RECORDED or (k == "plugin" and not v):
            continue
        config[k] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
    return config


def _load_config(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file.") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path} is not valid TOML: {e}.") from None


def _config_defaults(parser: argparse.ArgumentParser, values: dict, path: Path) -> dict:
    """``values`` from a config file as defaults for ``parser``'s options (typed like the
    flags; unknown keys refused, naming the valid ones)."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    defaults = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            valid = ", ".join(sorted(actions))
            raise ValueError(f"--config {path}: unknown key '{key}' for this task; valid keys: {valid}.")
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise ValueError(f"--config {path}: '{key}' must be true or false, got {value!r}.")
        elif action.type is Path:
            value = Path(value)
        elif action.type in (int, float):
            items = value if isinstance(value, list) else [value]
            ok = all(isinstance(x, (int, float)) and not isinstance(x, bool)
                     and (action.type is float or isinstance(x, int)) for x in items)
            if not ok or (isinstance(value, list) != (action.nargs is not None)):
                raise ValueError(f"--config {path}: '{key}' must be "
                                 f"{'an integer' if action.type is int else 'a number'}"
                                 f"{' list' if action.nargs else ''}, got {value!r}.")
            value = [action.type(x) for x in items] if isinstance(value, list) else action.type(value)
        elif action.dest == "plugin":
            value = list(value) if isinstance(value, list) else [value]
        defaults[dest] = value
    return defaults


def _find_config(argv: list[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--config="):
            return Path(a.split("=", 1)[1])
    return None


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and the ``run`` sub-parsers by task name."""
    parser = argparse.ArgumentParser(
        prog="rtrlax",
        description="Online learning for recurrent networks: train and compare estimators.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train online on a task",
                         description="Train online on a task. `rtrlax run --config exp.toml` "
                         "reads the task and options from a file (flags override it).")
    run.add_argument("--config", type=Path, help="a TOML file of options (+ task = \"...\")")
    tasks = run.add_subparsers(dest="task", required=True)
    subparsers = {}
    for name, add in RUNNERS.items():
        p = add(tasks)
        p.add_argument("--config", type=Path, default=None,
                       help="a TOML file with the same keys as these flags (flags override it)")
        p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                       help="import MODULE first (it may register estimators, cells, tasks)")
        subparsers[name] = p
    _add_demo(sub)
    _add_list(sub)
    return parser, subparsers


def _prepare(argv: list[str]):
    """Parse ``argv`` (with its config file) and check every argument; no JAX."""
    parser, subparsers = build_parser()
    path = _find_config(argv) if argv[:1] == ["run"] else None
    if path is not None:
        values = _load_config(path)
        task = values.pop("task", None)
        rest = _without_config(argv[1:])
        if rest and rest[0] in subparsers:
            task, rest = rest[0], rest[1:]
        elif task is None:
            raise ValueError(f"--config {path} names no task: add task = \"copy\" (or another "
                             "of: " + ", ".join(subparsers) + ") or name it on the command line.")
        elif task not in subparsers:
            raise ValueError(f"--config {path}: unknown task '{task}'; choose one of: "
                             + ", ".join(subparsers) + ".")
        argv = ["run", task, "--config", str(path), *rest]
        chosen = subparsers[task]
        for module in values.get("plugin", []):
            _import_plugin(module)
        defaults = _config_defaults(chosen, values, path)
        chosen.set_defaults(**defaults)
        for action in chosen._actions:  # a required flag the file gives is no longer required
            if action.dest in defaults:
                action.required = False
    args = parser.parse_args(argv)
    for module in getattr(args, "plugin", []) or []:
        _import_plugin(module)
    args.check(args)
    if args.command == "run":  # what config.toml records (runners pass it on as ``config``)
        args.resolved = resolved_config(args)
    return parser, args


def _without_config(argv: list[str]) -> list[str]:
    """``argv`` without its ``--config PATH`` / ``--config=PATH``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--config":
            skip = True
        elif not a.startswith("--config="):
            out.append(a)
    return out


def _import_plugin(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"--plugin {module}: cannot import it ({e}).") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _, args = _prepare(argv)  # bad arguments: found here, before any JAX work
        args.func(args)
    except ValueError as e:  # one line on stderr, exit status 2, no traceback
        print(f"rtrlax: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except FloatingPointError as e:  # a run that diverged: one line, exit status 1
        print(f"rtrlax: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except BrokenPipeError:  # `rtrlax list | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
