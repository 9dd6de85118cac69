"""Long-range sequence classification with the online LRU, sized for a shared 2-core CPU.

Subcommands (each writes its part of docs/results/long_range.json; ``report`` writes
docs/results/long_range.md):

  accuracy  generated ListOps (LRA grammar, expressions of 500–640 tokens, padded to
            T = 640) and sequential digits upsampled to 16×16 (T = 256, a downsized
            stand-in for sequential CIFAR), with an ``rx.LRUNet`` (pooled output, loss at
            every step) trained by the online LRU (``rx.OnlineLRU()``: gradients computed
            online during each sequence, one update at its end — the paper's protocol),
            BPTT, spatial-only (``horizon=0``) and 1-truncated (``horizon=1``); seeds
            vmapped; same updates, batch and learning rate for all.  Training loop:
            ``online_lru.py``'s ``train``.
  cost      the sCIFAR-size network (4 layers, d_model 256, d_hidden 128, 3 inputs,
            T = 1024): µs per step (inference, online step by step, online K = 1024 steps
            at once, BPTT through the sequence) and XLA's temporary-memory estimate of
            each compiled function — throughput and memory only, no training.
  report    the markdown table.

    python benchmarks/long_range.py accuracy
    python benchmarks/long_range.py cost
    python benchmarks/long_range.py report
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rtrlax as rx
from harness import ResultParts, machine_description as machine
from cells import train as cells_train
from online_lru import train
from rtrlax.tasks.digits import class_loss, class_targets, sequential_digits
from rtrlax.tasks.listops import OPERATORS, PAD, VOCAB, _ID, evaluate, to_tokens

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
JSON = RESULTS / "long_range.json"




_PARTS = ResultParts(JSON)
# methods for a DeepRNN of another cell (``--cell``), named as in cells.py: the online LRU's
# scheme is rx.SnAp(1) there; TBPTT(1) (backprop through step t only) is the 1-truncated
# gradient (one step of credit to the recurrence); the LRU-only "spatial" has no analogue.
METHODS = ("online", "BPTT", "spatial", "1-truncated")
CELL_METHODS = {"online": "online", "BPTT": "bptt", "1-truncated": "spatial"}
load, save = _PARTS.load, _PARTS.save


# --- data ---------------------------------------------------------------------------------


class _TooLong(Exception):
    pass


def long_listops(n, *, seed, min_length, max_length, operator_prob=0.3, max_depth=10, max_args=10):
    """ListOps with the LRA grammar (``tasks/listops.py``'s rule: below ``max_depth`` a node
    is an operator with ``operator_prob``, else a digit; 2..``max_args`` arguments), the
    root always an operator, keeping expressions of ``min_length``–``max_length`` tokens.
    A draw is abandoned as soon as it exceeds ``max_length``: the library generator
    builds each whole tree first, and the length distribution is so heavy-tailed that
    reaching 500+ tokens that way takes minutes on this machine."""
    import random

    rng = random.Random(seed)

    def tree(depth, budget):
        if budget[0] > max_length:
            raise _TooLong
        if depth == 0 or (depth < max_depth and rng.random() < operator_prob):
            op = OPERATORS[rng.randrange(len(OPERATORS))]
            k = rng.randint(2, max_args)
            budget[0] += 2
            return (op, [tree(depth + 1, budget) for _ in range(k)])
        budget[0] += 1
        return rng.randrange(10)

    tokens = np.full((n, max_length), PAD, np.int32)
    labels = np.zeros(n, np.int32)
    i = 0
    while i < n:
        try:
            t = tree(0, [0])
        except _TooLong:
            continue
        toks = to_tokens(t)
        if min_length <= len(toks) <= max_length:
            tokens[i, : len(toks)] = [_ID[s] for s in toks]
            labels[i] = evaluate(t)
            i += 1
    return tokens, labels


def listops_setup(n_train, n_test, min_length, length):
    t0 = time.perf_counter()
    tok, lab = long_listops(n_train + n_test, seed=0, min_length=min_length, max_length=length)
    print(f"listops: {n_train + n_test} expressions in {time.perf_counter() - t0:.0f} s", flush=True)
    tok, lab = jnp.asarray(tok), jnp.asarray(lab)
    tr_tok, tr_lab, te_tok, te_lab = tok[:n_train], lab[:n_train], tok[n_train:], lab[n_train:]
    onehot = lambda t: jax.nn.one_hot(t, VOCAB, dtype=jnp.float32)  # noqa: E731

    def train_batch(key, batch):
        idx = jax.random.choice(key, n_train, (batch,), replace=False)
        return onehot(tr_tok[idx]), class_targets(tr_lab[idx], length)

    def accuracy(ys, targets):
        return jnp.mean(jnp.argmax(ys[:, -1], -1) == targets.label[:, -1])

    majority = float(np.bincount(np.asarray(te_lab), minlength=10).max() / len(te_lab))
    setup = dict(input=VOCAB, output=10, pool=True, loss=class_loss, train_batch=train_batch,
                 test=(onehot(te_tok), class_targets(te_lab, length)), accuracy=accuracy)  # fmt: skip
    return setup, majority


def digits16_setup():
    def up(x):  # [n, 64, 1] -> 8x8 -> 16x16 (each pixel repeated 2x2) -> [n, 256, 1]
        img = x.reshape(-1, 8, 8)
        return np.repeat(np.repeat(img, 2, 1), 2, 2).reshape(-1, 256, 1)

    xs, ys = sequential_digits("train")
    xt, yt = sequential_digits("test")
    xs, ys, xt, yt = jnp.asarray(up(xs)), jnp.asarray(ys), jnp.asarray(up(xt)), jnp.asarray(yt)
    targets = class_targets(ys, 256)

    def train_batch(key, batch):
        idx = jax.random.choice(key, xs.shape[0], (batch,), replace=False)
        return xs[idx], jax.tree_util.tree_map(lambda a: a[idx], targets)

    def accuracy(ys_, targets_):
        return jnp.mean(jnp.argmax(ys_[:, -1], -1) == targets_.label[:, -1])

    majority = float(np.bincount(np.asarray(yt)).max() / len(yt))
    return dict(input=1, output=10, pool=True, loss=class_loss, train_batch=train_batch,
                test=(xt, class_targets(yt, 256)), accuracy=accuracy), majority  # fmt: skip


def accuracy_cmd(args):
    seeds = list(range(args.seeds))
    out = load().get("accuracy", {}) if args.resume else {}
    out["config"] = dict(vars(args), seeds=seeds, machine=machine(), command=" ".join(sys.argv))
    out["config"].pop("func")
    for task in args.tasks:
        if task == "listops":
            setup, majority = listops_setup(args.listops_train, args.listops_test, args.min_length, args.length)
            updates = args.listops_updates
        else:
            setup, majority = digits16_setup()
            updates = args.digits_updates
        out[f"{task}/majority"] = majority
        prefix = task if args.cell == "lru" else f"{task}/{args.cell}"
        out[f"{prefix}/setup"] = dict(updates=updates, lr=args.lr, batch=args.batch, layers=args.layers,
                                    d_model=args.d_model, d_hidden=args.d_hidden, command=" ".join(sys.argv))  # fmt: skip
        for method in args.methods:
            name = f"{task}/{method}" if args.cell == "lru" else f"{task}/{args.cell}/{method}"
            if name in out:
                continue
            kw = dict(updates=updates, batch=args.batch, d_model=args.d_model,
                      d_hidden=args.d_hidden, lr=args.lr)  # fmt: skip
            if args.cell == "lru":
                res = train(setup, method, args.layers, seeds, **kw)
            else:  # a DeepRNN of another cell: cells.py's loop, online = rx.SnAp(1)
                if method not in CELL_METHODS:
                    print(f"{name}: skipped (no {method!r} variant for a {args.cell} stack)")
                    continue
                res = cells_train(setup, args.cell, CELL_METHODS[method], args.layers, seeds, **kw)
            res["load"] = os.getloadavg()[0]
            res["updates"] = updates
            out[name] = res
            print(f"{name}: acc {np.round(res['accuracy'], 3)} ({res['seconds']:.0f} s)", flush=True)
            save("accuracy", out)


# --- cost of the sCIFAR-size network ---------------------------------------------------------


def cost_cmd(args):
    T, batch = args.T, args.batch
    model = rx.LRUNet(3, 10, d_model=args.d_model, d_hidden=args.d_hidden, n_layers=args.layers,
                      key=jax.random.key(0), r_min=0.9, r_max=0.999, max_phase=math.pi, pool=True,
                      dtype=jnp.float32)  # fmt: skip
    xs = jax.random.uniform(jax.random.key(1), (batch, T, 3), jnp.float32)
    labels = jnp.zeros((batch,), jnp.int32)
    targets = class_targets(labels, T)
    est = rx.OnlineLRU()

    def infer(model, xs):
        return jax.vmap(lambda x: jax.lax.scan(lambda s, xt: model(s, xt), model.initial_state(), x)[1][-1])(xs)

    def online(model, xs):  # step by step: one estimator step per input (rx.accumulate_grads)
        return jax.vmap(lambda x, t: rx.accumulate_grads(est, model, x, t, class_loss)[0])(xs, targets)

    def online_chunk(model, xs):  # the whole sequence at once: batch_chunk_step, K = T
        c0 = jax.vmap(lambda _: est.init(model))(jnp.arange(batch))
        return est.batch_chunk_step(model, c0, xs, targets, class_loss)[1].grads

    def bptt(model, xs):
        return jax.vmap(lambda x, t: rx.accumulate_grads(rx.BPTT(), model, x, t, class_loss)[0])(xs, targets)

    fns = {"inference": infer, "online, step by step": online, f"online, {T} steps at once": online_chunk,
           "BPTT through the sequence": bptt}  # fmt: skip
    params, static = eqx.partition(model, eqx.is_inexact_array)
    row = {"us_per_step": {}, "temp_MiB": {}, "ratio": {}}
    compiled = {}
    for name, f in fns.items():
        g = jax.jit(lambda p, x, f=f: f(eqx.combine(p, static), x))
        lowered = g.lower(params, xs).compile()
        mem = lowered.memory_analysis()
        row["temp_MiB"][name] = None if mem is None else mem.temp_size_in_bytes / 2**20
        compiled[name] = lowered
        jax.block_until_ready(lowered(params, xs))
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for name, c in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(c(params, xs))
            times[name].append((time.perf_counter() - t0) / (T * batch) * 1e6)
    med = {k: float(np.median(v)) for k, v in times.items()}
    row["us_per_step"] = med
    row["ratio"] = {k: v / med["inference"] for k, v in med.items()}
    n_params = sum(a.size for a in jax.tree_util.tree_leaves(params))
    row.update(config=dict(vars(args), params=int(n_params), machine=machine(), command=" ".join(sys.argv)))
    row["config"].pop("func")
    print(json.dumps(row, indent=1), flush=True)
    save("cost", row)


# --- report ----------------------------------------------------------------------------------


def _loads(acc):
    loads = [r["load"] for r in acc.values() if isinstance(r, dict) and "load" in r]
    return (f"; 1-minute load average at the end of the runs that recorded it: {min(loads):.1f}–"
            f"{max(loads):.1f} on 2 cores" if loads else "")  # fmt: skip


def report_cmd(args):
    data = load()
    lines = ["# Long-range classification with the online LRU (shared 2-core CPU budget)", ""]
    acc = data.get("accuracy")
    if acc:
        c = acc["config"]
        lines += [
            f"Machine: {c['machine']} — shared with other engineers' tests and benchmarks while it ran "
            f"(commands per row below the table){_loads(acc)}.",
            "",
            "Networks: `rx.LRUNet` (*lru*: r ∈ [0.9, 0.999]) or `rx.DeepRNN` of another cell (named in "
            "the *net* column), pooled output (running mean, gradient to the current step only), "
            "cross-entropy at every step, float32; Adam at a constant learning rate; each row's budget "
            f"(layers, d_model = d_hidden, updates × sequences per update, lr) in its columns; {len(c['seeds'])} "
            "seeds (vmapped), every method of a row the same sequences and updates. **online**: "
            "`rx.OnlineLRU()` for the LRU (gradients accumulated during each sequence, one update at "
            "its end: the online-LRU paper's protocol), `rx.SnAp(1)` (the same scheme: exact "
            "per-layer traces + spatial backprop) for other cells; **BPTT**: exact gradient of the same "
            "loss; **spatial**: `OnlineLRU(horizon=0)` (no temporal credit; LRU only); "
            "**1-truncated**: `OnlineLRU(horizon=1)` for the LRU, `rx.TBPTT(1)` for other cells "
            "(backprop through step t only). These budgets are tiny next to the paper's (many GPU "
            "epochs): the rows show what a shared CPU can order, not the paper's accuracies.",
            "",
            f"* ListOps: generated with the LRA grammar (depth ≤ 10, ≤ 10 arguments, operator "
            f"probability 0.3, the root always an operator), expressions of {c['min_length']}–{c['length']} tokens padded to "
            f"T = {c['length']}; {c['listops_train']} training, {c['listops_test']} test expressions.",
            f"* Digits 16×16: scikit-learn's 8×8 digits, each pixel repeated 2×2, read pixel by pixel "
            "(T = 256); 1,438 training, 359 test images.",
            "",
            "| task | net | layers | d | updates × batch | lr | chance (majority class) | " + " | ".join(METHODS) + " |",
            "|---" * (len(METHODS) + 7) + "|",
        ]
        setups = sorted(k[: -len("/setup")] for k in acc if k.endswith("/setup"))
        for prefix in setups:
            task, _, net = prefix.partition("/")
            base = task.split("@")[0]
            cells = []
            for m in METHODS:
                r = acc.get(f"{prefix}/{m}")
                cells.append("—" if r is None else f"{np.mean(r['accuracy']):.3f} ± {np.std(r['accuracy']):.3f}")
            st = acc[f"{prefix}/setup"]
            lines.append(f"| {task} | {net or 'lru'} | {st['layers']} | {st['d_model']} | {st['updates']} × "
                         f"{st['batch']} | {st['lr']} | {acc.get(base + '/majority', float('nan')):.3f} | "
                         + " | ".join(cells) + " |")  # fmt: skip
        lines += ["", "Test accuracy at the last step, mean ± std over seeds; per seed, wall time and "
                  "load average in `long_range.json` (a task name `X@N×B` marks an earlier, smaller "
                  "budget kept for comparison). Commands, per row:", ""]  # fmt: skip
        for prefix in setups:
            lines.append(f"* {prefix}: `{acc[prefix + '/setup']['command']}`")
        lines.append("")
    cost = data.get("cost")
    if cost:
        c = cost["config"]
        lines += [
            "## The sCIFAR-size network: throughput and memory only",
            "",
            f"`rx.LRUNet(3, 10, d_model={c['d_model']}, d_hidden={c['d_hidden']}, n_layers={c['layers']}, "
            f"pool=True)` ({c['params']:,} parameters), T = {c['T']} steps (one sequential-CIFAR image, "
            f"3 channels), batch {c['batch']}, float32; gradient of the summed every-step loss; jit first, "
            f"median of {c['repeats']} interleaved repeats. Memory: XLA's temporary-buffer size of each "
            f"compiled function (`memory_analysis().temp_size_in_bytes`). Command: `{c['command']}`.",
            "",
            "| | µs per step | × inference | XLA temp memory (MiB) |",
            "|---|---|---|---|",
        ]
        for k, v in cost["us_per_step"].items():
            mem = cost["temp_MiB"].get(k)
            lines.append(f"| {k} | {v:.0f} | {cost['ratio'][k]:.1f} | {'?' if mem is None else f'{mem:.1f}'} |")
        lines.append("")
    if args.notes and Path(args.notes).exists():
        lines.append(Path(args.notes).read_text())
    (RESULTS / "long_range.md").write_text("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--tasks", nargs="+", default=["listops", "digits16"])
    a.add_argument("--methods", nargs="+", default=["online", "BPTT", "spatial", "1-truncated"])
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--layers", type=int, default=2)
    a.add_argument("--d-model", type=int, default=16)
    a.add_argument("--d-hidden", type=int, default=16)
    a.add_argument("--lr", type=float, default=5e-3)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--listops-updates", type=int, default=40)
    a.add_argument("--digits-updates", type=int, default=120)
    a.add_argument("--listops-train", type=int, default=400)
    a.add_argument("--listops-test", type=int, default=100)
    a.add_argument("--min-length", type=int, default=500)
    a.add_argument("--length", type=int, default=640)
    a.add_argument("--resume", action="store_true")
    a.add_argument("--cell", default="lru", help="the stack's cell: lru (rx.LRUNet, rx.OnlineLRU) or a "
                   "DeepRNN cell name (mingru, rtu, ...; online = rx.SnAp(1))")
    a.set_defaults(func=accuracy_cmd)
    c = sub.add_parser("cost")
    c.add_argument("--T", type=int, default=1024)
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--d-model", type=int, default=256)
    c.add_argument("--d-hidden", type=int, default=128)
    c.add_argument("--layers", type=int, default=4)
    c.add_argument("--repeats", type=int, default=3)
    c.set_defaults(func=cost_cmd)
    r = sub.add_parser("report")
    r.add_argument("--notes", default=str(RESULTS / "long_range_notes.md"))
    r.set_defaults(func=report_cmd)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
