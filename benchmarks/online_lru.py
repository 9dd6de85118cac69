"""The online LRU: accuracy against BPTT and the ablations, cost per step, streaming memory.

Subcommands (each writes its part of docs/results/online_lru.json; ``report`` writes
docs/results/online_lru.md and online_lru.png from it):

  accuracy  copy task (T = 48) and sequential digits (T = 64), 1/2/4 layers, seeds vmapped,
            BPTT vs OnlineLRU vs 1-truncated vs spatial, same number of updates
  cost      µs per step: an online training step vs an inference-only step of the same
            4-layer network (jit first, block_until_ready, repeats interleaved, median)
  memory    peak RSS of a fresh process streaming T = 100 vs T = 100,000 online steps
  report    the markdown table + plot

Training protocol for the sequence tasks: each update draws a batch of whole sequences;
every estimator computes its gradient of the summed per-step loss of each sequence
(``accumulate_grads``: the online ones step by step, BPTT offline), vmapped over the
batch and averaged; one Adam update per batch.  Same budget (updates, batch, lr) for all.

    /work/venv/bin/python benchmarks/online_lru.py accuracy [--quick]
    /work/venv/bin/python benchmarks/online_lru.py cost
    /work/venv/bin/python benchmarks/online_lru.py memory
    /work/venv/bin/python benchmarks/online_lru.py report
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import rtrlax as rx
from common import bptt_chunk_grads
from harness import machine_description as machine, save_figure, time_alternating
from rtrlax.cells.base import run_sequence
from rtrlax.tasks.digits import class_loss, class_targets, sequential_digits

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
JSON = RESULTS / "online_lru.json"

METHODS = {
    "BPTT": lambda: rx.BPTT(),
    "online": lambda: rx.OnlineLRU(),
    "1-truncated": lambda: rx.OnlineLRU(horizon=1),
    "spatial": lambda: rx.OnlineLRU(horizon=0),
}


def load() -> dict:
    return json.loads(JSON.read_text()) if JSON.exists() else {}


def save(part: str, value) -> None:
    data = load()
    data[part] = value
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON.write_text(json.dumps(data, indent=1))


# --- tasks as batches of whole sequences ------------------------------------------------


def copy_batch(key, batch):
    task = rx.CopyTask()

    def one(k):
        def body(s, _):
            s, sample = task.sample(s)
            return s, (sample.x, sample.target)

        return jax.lax.scan(body, task.init(k), None, length=task.sequence_length)[1]

    xs, targets = jax.vmap(one)(jax.random.split(key, batch))
    return xs, targets


def copy_setup():
    task = rx.CopyTask()

    def accuracy(ys, targets):  # per-bit accuracy on the scored (recall) steps
        scored = targets.scored[..., None]
        correct = ((ys > 0) == (targets.bits > 0.5)) & scored
        return jnp.sum(correct) / (jnp.sum(scored) * task.bits)

    def train_batch(key, batch):
        return copy_batch(key, batch)

    test = copy_batch(jax.random.key(12345), 500)
    return dict(input=task.input_size, output=task.output_size, pool=False, loss=task.loss,
                train_batch=train_batch, test=test, accuracy=accuracy)  # fmt: skip


def digits_setup():
    xs, ys = sequential_digits("train")
    xt, yt = sequential_digits("test")
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    targets = class_targets(ys, 64)
    test = (jnp.asarray(xt), class_targets(jnp.asarray(yt), 64))

    def accuracy(ys_, targets_):  # the pooled prediction at the last step
        return jnp.mean(jnp.argmax(ys_[:, -1], -1) == targets_.label[:, -1])

    def train_batch(key, batch):
        idx = jax.random.choice(key, xs.shape[0], (batch,), replace=False)
        return xs[idx], jax.tree_util.tree_map(lambda a: a[idx], targets)

    return dict(input=1, output=10, pool=True, loss=class_loss, train_batch=train_batch,
                test=test, accuracy=accuracy)  # fmt: skip


# --- training ---------------------------------------------------------------------------


def train(setup, method, n_layers, seeds, *, updates, batch, d_model, d_hidden, lr):
    estimator = METHODS[method]()
    keys = jnp.stack([jax.random.key(s) for s in seeds])

    def make(k):
        return rx.LRUNet(
            setup["input"], setup["output"], d_model=d_model, d_hidden=d_hidden,
            n_layers=n_layers, key=k, r_min=0.9, r_max=0.999, max_phase=math.pi,
            pool=setup["pool"], dtype=jnp.float32,
        )  # fmt: skip

    models = eqx.filter_vmap(make)(keys)
    opt = optax.adam(lr)
    opt_states = eqx.filter_vmap(lambda m: opt.init(eqx.filter(m, eqx.is_inexact_array)))(models)
    loss_fn = setup["loss"]

    @eqx.filter_jit
    def update(models, opt_states, data_keys):
        def one_seed(model, opt_state, key):
            xs, targets = setup["train_batch"](key, batch)
            grads, losses = jax.vmap(
                lambda x, t: rx.accumulate_grads(estimator, model, x, t, loss_fn)
            )(xs, targets)
            grads = jax.tree_util.tree_map(lambda g: g.mean(0), grads)
            upd, opt_state = opt.update(grads, opt_state)
            return eqx.apply_updates(model, upd), opt_state, losses.sum(-1).mean()

        return eqx.filter_vmap(one_seed)(models, opt_states, data_keys)

    @eqx.filter_jit
    def evaluate(models):
        xs, targets = setup["test"]

        def one_seed(model):
            def run(x):
                def body(s, xt):
                    return model(s, xt)

                return jax.lax.scan(body, model.initial_state(), x)[1]

            ys = jax.vmap(run)(xs)
            return setup["accuracy"](ys, targets)

        return eqx.filter_vmap(one_seed)(models)

    t0 = time.perf_counter()
    curve = []
    data_key = jax.random.key(999)
    for i in range(updates):
        data_key, k = jax.random.split(data_key)
        ks = jax.random.split(k, len(seeds))
        models, opt_states, loss = update(models, opt_states, ks)
        if (i + 1) % max(1, updates // 10) == 0 or i == 0:
            curve.append((i + 1, np.asarray(loss).tolist()))
    acc = np.asarray(evaluate(models)).tolist()
    return dict(accuracy=acc, curve=curve, seconds=time.perf_counter() - t0)


def accuracy_cmd(args):
    cfg = dict(
        updates=args.updates, batch=args.batch, d_model=args.d_model, d_hidden=args.d_hidden,
        lr=args.lr,
    )  # fmt: skip
    seeds = list(range(args.seeds))
    out = load().get("accuracy", {}) if args.resume else {}
    out["config"] = dict(cfg, seeds=seeds, machine=machine(), command=" ".join(sys.argv))
    for task_name in args.tasks:
        setup = {"copy": copy_setup, "digits": digits_setup}[task_name]()
        for n_layers in args.layers:
            for method in args.methods:
                name = f"{task_name}/{n_layers}/{method}"
                if name in out:
                    continue
                res = train(setup, method, n_layers, seeds, **cfg)
                out[name] = res
                print(f"{name}: acc {np.round(res['accuracy'], 3)} ({res['seconds']:.0f} s)",
                      flush=True)  # fmt: skip
                save("accuracy", out)


# --- cost -------------------------------------------------------------------------------


def accumulate(est, step, model, batch, inputs, loss):
    """Scan ``step`` (``est.batch_step`` or ``est.batch_chunk_step``) over ``inputs`` from
    fresh carries of ``batch`` streams, summing the gradients: ``((carry, grads), losses)``."""
    c0 = jax.vmap(lambda _: est.init(model))(jnp.arange(batch))
    zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))

    def body(acc, xt):
        c, g = acc
        c, out = step(model, c, *xt, loss)
        return (c, jax.tree_util.tree_map(jnp.add, g, out.grads)), out.loss

    return jax.lax.scan(body, (c0, zero), inputs)


def cost_cmd(args):
    if any(args.T % k for k in args.K):
        raise SystemExit(f"every --K ({args.K}) must divide --T {args.T}")
    results = []
    for batch, d_model, d_hidden in [(50, 128, 64), (1, 128, 64), (1, 64, 32)]:
        results.append(cost_one(batch, d_model, d_hidden, args.repeats, T=args.T, Ks=args.K))
        save("cost", dict(rows=results, machine=machine(), command=" ".join(sys.argv),
                          T=args.T, K=args.K))  # fmt: skip


def cost_one(batch, d_model, d_hidden, repeats, T=48, Ks=(48,), layers=4):
    model = rx.LRUNet(8, 8, d_model=d_model, d_hidden=d_hidden, n_layers=layers,
                      key=jax.random.key(0), dtype=jnp.float32)  # fmt: skip
    xs = jax.random.normal(jax.random.key(1), (T, batch, 8), jnp.float32)
    ts = jax.random.normal(jax.random.key(2), (T, batch, 8), jnp.float32)
    loss = lambda y, t: jnp.mean((y - t) ** 2)  # noqa: E731

    @eqx.filter_jit
    def infer(model, xs, ts):
        s0 = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))
        return jax.lax.scan(lambda s, x: jax.vmap(model)(s, x), s0, xs)[1]

    def online(est):
        # what rx.OnlineLearner does per step: the estimator's batch_step over all streams
        # (stream-mean gradient), accumulated
        return eqx.filter_jit(lambda model, xs, ts: accumulate(est, est.batch_step, model, batch, (xs, ts), loss))

    @eqx.filter_jit
    def spatial_only(model, xs, ts):
        # the floor of any method built on spatial backprop: the gradient of the
        # stream-mean loss of one step (streams vmapped inside), no traces
        params, static = eqx.partition(model, eqx.is_inexact_array)
        s0 = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))

        def f(p, s, x, t):
            def one(s, x, t):
                st, y = eqx.combine(p, static)(s, x)
                return loss(y, t), jax.lax.stop_gradient(st)

            losses, st = jax.vmap(one)(s, x, t)
            return losses.mean(), st

        def body(acc, xt):
            s, g = acc
            (_, s), gs = jax.value_and_grad(f, has_aux=True)(params, s, *xt)
            return (s, jax.tree_util.tree_map(jnp.add, g, gs)), None

        zero = jax.tree_util.tree_map(jnp.zeros_like, params)
        return jax.lax.scan(body, (s0, zero), (xs, ts))[0]

    def chunked(est, K):
        # updates every K steps: chunk_step (batch_chunk_step over streams), K steps at once
        split = lambda a: a.reshape(T // K, K, *a.shape[1:]).swapaxes(1, 2)  # noqa: E731  [T/K, B, K, ...]
        return eqx.filter_jit(lambda model, xs, ts: accumulate(
            est, est.batch_chunk_step, model, batch, (split(xs), split(ts)), loss))  # fmt: skip

    def bptt_chunks(K):
        # the exact offline reference for a learner updating every K steps: backprop
        # through each chunk of K steps from the state the last chunk left
        split = lambda a: a.reshape(T // K, K, *a.shape[1:]).swapaxes(1, 2)  # noqa: E731

        @eqx.filter_jit
        def run(model, xs, ts):
            def body(acc, xt):
                s, g = acc
                _, s, gk = bptt_chunk_grads(model, s, *xt, loss)
                return (s, jax.tree_util.tree_map(jnp.add, g, gk)), None

            s0 = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))
            zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
            return jax.lax.scan(body, (s0, zero), (split(xs), split(ts)))[0]

        return run

    def bptt_chunks_sequence(K, chunk=32):
        # the same reference with the network's sequence mode, as rx.BPTT() runs it: dense
        # maps on all steps of a sub-chunk at once, the diagonal recurrence by
        # associative_scan (run_sequence with chunks of 32 steps), vmapped over streams
        split = lambda a: a.reshape(T // K, K, *a.shape[1:]).swapaxes(1, 2)  # noqa: E731
        params, static = eqx.partition(model, eqx.is_inexact_array)

        @eqx.filter_jit
        def run(params, xs, ts):
            def body(acc, xt):
                s, g = acc

                def chunk_loss(p):
                    m = eqx.combine(p, static)
                    end, ys = jax.vmap(lambda st, x: run_sequence(m, x, st, chunk=min(chunk, K)))(
                        jax.lax.stop_gradient(s), xt[0])
                    return jax.vmap(jax.vmap(loss))(ys, xt[1]).sum() / batch, end

                (_, s), gk = jax.value_and_grad(chunk_loss, has_aux=True)(params)
                return (s, jax.tree_util.tree_map(jnp.add, g, gk)), None

            s0 = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))
            zero = jax.tree_util.tree_map(jnp.zeros_like, params)
            return jax.lax.scan(body, (s0, zero), (split(xs), split(ts)))[0]

        return lambda model, xs, ts: run(eqx.filter(model, eqx.is_inexact_array), xs, ts)

    fns = {
        "inference": infer,
        "online (OnlineLRU)": online(rx.OnlineLRU()),
        **{f"online, updates every {K} steps (chunk_step)": chunked(rx.OnlineLRU(), K) for K in Ks},
        **{f"reference: BPTT through each chunk of {K}": bptt_chunks(K) for K in Ks},
        **{f"reference: BPTT through each chunk of {K}, sequence mode": bptt_chunks_sequence(K) for K in Ks},
        "generic SnAp-1 (rx.SnAp(1))": online(rx.SnAp(1)),
        "forward+backward at t, no traces": spatial_only,
    }
    if repeats == 0:  # a check: the functions and their arguments, untimed
        return fns, (model, xs, ts)
    # interleaved, so load changes hit every variant alike
    timed = time_alternating({k: (f, (model, xs, ts)) for k, f in fns.items()}, repeats)
    med = {k: t.wall / T * 1e6 for k, t in timed.items()}
    row = dict(batch=batch, d_model=d_model, d_hidden=d_hidden, layers=layers, us=med,
               ratio={k: v / med["inference"] for k, v in med.items()})  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


# --- memory -----------------------------------------------------------------------------


def stream_child(T: int, d_model: int, d_hidden: int, layers: int) -> None:
    """Stream T online steps (inputs drawn inside the scan); print peak RSS in MiB."""
    model = rx.LRUNet(8, 8, d_model=d_model, d_hidden=d_hidden, n_layers=layers,
                      key=jax.random.key(0), dtype=jnp.float32)  # fmt: skip
    est = rx.OnlineLRU()
    loss = lambda y, t: jnp.mean((y - t) ** 2)  # noqa: E731
    chunk = 100

    @eqx.filter_jit
    def run(carry, key):
        def body(acc, k):
            c, g = acc
            x = jax.random.normal(k, (8,), jnp.float32)
            c, out = est.step(model, c, x, jnp.roll(x, 1), loss)
            return (c, jax.tree_util.tree_map(jnp.add, g, out.grads)), out.loss

        zero = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
        (carry, _), losses = jax.lax.scan(body, (carry, zero), jax.random.split(key, chunk))
        return carry, losses.mean()

    carry = est.init(model)
    key = jax.random.key(1)
    for _ in range(T // chunk):
        key, k = jax.random.split(key)
        carry, loss = run(carry, k)
    jax.block_until_ready(carry)
    print(json.dumps(dict(T=T, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          final_loss=float(loss))))  # fmt: skip


def memory_cmd(args):
    rows = []
    for T in (100, 100_000):
        cmd = [sys.executable, __file__, "_stream", str(T), str(args.d_model), str(args.d_hidden),
               str(args.layers)]  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(row, flush=True)
    save("memory", dict(rows=rows, d_model=args.d_model, d_hidden=args.d_hidden,
                        layers=args.layers, machine=machine(), command=" ".join(sys.argv)))  # fmt: skip


# --- sCIFAR-size throughput and memory (meant for a GPU) -------------------------------

SCIFAR_METHODS = ("inference", "BPTT", "online", "online-chunked", "spatial")


def scifar_child(method, d_model, d_hidden, layers, T, batch, repeats, K) -> None:
    """One method in a fresh process, so the device's peak memory is that method's own.

    Random pixels (3 channels) and a random class label per sequence, the cross-entropy
    of the prediction at every step. ``BPTT``: the gradient of the summed loss of every
    sequence of the batch (vmapped), offline. ``online`` / ``spatial``: ``rx.OnlineLRU()``
    (``horizon=0`` for spatial) stepping through the sequence, ``batch_step`` over the
    batch at each step, the stream-mean gradients accumulated -- the same gradient
    BPTT gives for the last layer's recurrence, in memory independent of T.
    Prints one JSON line: ms per batch of sequences, tokens/s, peak device bytes.
    """
    model = rx.LRUNet(3, 10, d_model=d_model, d_hidden=d_hidden, n_layers=layers,
                      key=jax.random.key(0), dtype=jnp.float32)  # fmt: skip
    params, static = eqx.partition(model, eqx.is_inexact_array)
    xs = jax.random.normal(jax.random.key(1), (batch, T, 3), jnp.float32)
    labels = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
    ts = jnp.broadcast_to(labels[:, None], (batch, T))
    loss = optax.softmax_cross_entropy_with_integer_labels

    def inference(params, xs, ts):
        m = eqx.combine(params, static)
        s0 = jax.vmap(lambda _: m.initial_state())(jnp.arange(batch))
        step = lambda s, x: jax.vmap(m)(s, x)  # noqa: E731
        return jax.lax.scan(step, s0, xs.swapaxes(0, 1))[1].mean()

    def bptt(params, xs, ts):
        m = eqx.combine(params, static)
        one = lambda x, t: rx.accumulate_grads(rx.BPTT(), m, x, t, loss)  # noqa: E731
        grads, losses = jax.vmap(one)(xs, ts)
        return jax.tree_util.tree_map(lambda g: g.mean(0), grads), losses.mean()

    def online(est):
        def run(params, xs, ts):
            m = eqx.combine(params, static)
            (_, g), losses = accumulate(est, est.batch_step, m, batch, (xs.swapaxes(0, 1), ts.T), loss)
            return g, losses.mean()

        return run

    def chunked(params, xs, ts):  # OnlineLRU.batch_chunk_step over chunks of K steps
        est = rx.OnlineLRU()
        split = lambda a: a.reshape(batch, T // K, K, *a.shape[2:]).swapaxes(0, 1)  # noqa: E731
        m = eqx.combine(params, static)
        (_, g), losses = accumulate(est, est.batch_chunk_step, m, batch, (split(xs), split(ts)), loss)
        return g, losses.mean()

    fn = {"inference": inference, "BPTT": bptt, "online": online(rx.OnlineLRU()),
          "online-chunked": chunked, "spatial": online(rx.OnlineLRU(horizon=0))}[method]  # fmt: skip
    compiled = jax.jit(fn).lower(params, xs, ts).compile()
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, xs, ts))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, xs, ts))
        times.append(time.perf_counter() - t0)
    stats = jax.local_devices()[0].memory_stats() or {}
    med = float(np.median(times))
    print(json.dumps(dict(
        method=method if method != "online-chunked" else f"online, updates every {K} steps",
        ms=med * 1e3, ms_all=[t * 1e3 for t in times], first_ms=first * 1e3,
        tokens_per_s=batch * T / med, peak_bytes=stats.get("peak_bytes_in_use"),
        temp_bytes=temp, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        device=str(jax.devices()[0].device_kind),
    )), flush=True)  # fmt: skip


def scifar_cmd(args):
    """The sCIFAR-size network: online vs BPTT throughput and peak memory, fresh process each."""
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "_scifar", method, *map(str, (
            args.d_model, args.d_hidden, args.layers, args.T, args.batch, args.repeats, args.K))]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{method} failed (exit {out.returncode})")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    config = dict(d_model=args.d_model, d_hidden=args.d_hidden, layers=args.layers, T=args.T,
                  batch=args.batch, repeats=args.repeats, K=args.K)  # fmt: skip
    runs = load().get("scifar", {})  # one entry per backend, batch size and T
    key = f"{jax.default_backend()}, batch {args.batch}, T {args.T}"
    old = runs.get(key, {})
    same = {k: v for k, v in old.get("config", {}).items() if k not in ("repeats", "K")} == {
        k: v for k, v in config.items() if k not in ("repeats", "K")}  # fmt: skip
    if old and same:  # a later run adds its methods to the entry (replacing same-named rows)
        names = {r["method"] for r in rows}
        rows = [r for r in old["rows"] if r["method"] not in names] + rows
        commands = [c for c in old.get("commands", [old.get("command")]) if c]
    else:
        commands = []
    runs[key] = dict(rows=rows, config=config, machine=machine(),
                     commands=commands + ["python " + " ".join(sys.argv)])  # fmt: skip
    save("scifar", runs)


# --- report -----------------------------------------------------------------------------


def report_cmd(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load()
    lines = ["# The online LRU: accuracy, cost, streaming memory", ""]
    lines += [
        "Generated by `benchmarks/online_lru.py` (see its docstring for the commands). "
        "The machine was **shared with up to 5 other agents** while these ran, so timings "
        "are noisy (repeats interleaved, medians reported). The sCIFAR-size section "
        "names its own machine (a GPU for the batch-100 runs).",
        "",
    ]
    acc = data.get("accuracy")
    if acc:
        cfg = acc["config"]
        lines += [
            "## Accuracy (same budget for every method)",
            "",
            f"LRUNet d_model {cfg['d_model']}, d_hidden {cfg['d_hidden']}, LayerNorm, no dropout, "
            f"r ∈ [0.9, 0.999], phase ∈ [0, π]; Adam lr {cfg['lr']}; {cfg['updates']} updates of "
            f"{cfg['batch']} whole sequences; seeds {cfg['seeds']} (mean ± std over seeds). "
            "Copy: T = 48 (20 × 7 bits, pad 7, stop, recall 20), per-bit accuracy on the "
            "recall steps of 500 held-out sequences (chance 50 %). Digits: sklearn 8×8, "
            "pixel by pixel (T = 64), running-mean pooling with the gradient to the current "
            "step only, loss at every step, accuracy of the last step's prediction on the "
            "360 held-out images (chance 10 %). Online methods compute their gradients "
            "step by step (`accumulate_grads`); BPTT is the reference.",
            f"Machine: {cfg['machine']}. Command: `{cfg['command']}`.",
            "",
        ]
        methods = [m for m in METHODS if any(k.endswith("/" + m) for k in acc)]
        for task in ("copy", "digits"):
            rows = sorted({int(k.split("/")[1]) for k in acc if k.startswith(task + "/")})
            if not rows:
                continue
            lines += [f"### {task}", "", "| layers | " + " | ".join(methods) + " |",
                      "|---|" + "---|" * len(methods)]  # fmt: skip
            for n in rows:
                cells = []
                for m in methods:
                    r = acc.get(f"{task}/{n}/{m}")
                    cells.append("—" if r is None else
                                 f"{100 * np.mean(r['accuracy']):.1f} ± {100 * np.std(r['accuracy']):.1f}")  # fmt: skip
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for ax, task in zip(axes[:2], ("copy", "digits")):
            rows = sorted({int(k.split("/")[1]) for k in acc if k.startswith(task + "/")})
            width = 0.8 / max(1, len(methods))
            for j, m in enumerate(methods):
                vals = [acc.get(f"{task}/{n}/{m}", {}).get("accuracy", [np.nan]) for n in rows]
                ax.bar(np.arange(len(rows)) + j * width, [100 * np.mean(v) for v in vals], width,
                       yerr=[100 * np.std(v) for v in vals], label=m)  # fmt: skip
            ax.set_xticks(np.arange(len(rows)) + width * (len(methods) - 1) / 2, [str(n) for n in rows])
            ax.set_xlabel("layers")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(task)
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    cost = data.get("cost")
    if cost:
        lines += [
            f"## Cost per step (4-layer LRUNet, {cost.get('T', 48)} steps per timed call, float32)",
            "",
            "µs per step (median of interleaved repeats) and the ratio to an inference-only "
            "step of the same network. `online` is what `rx.OnlineLearner` runs: the "
            "estimator's `batch_step` over all streams (the stream-mean gradient of one step, "
            "ready for an update after every step). `updates every K steps` is "
            "`OnlineLRU.chunk_step`: the same summed gradient as K steps of `online` (tested to "
            "round-off), for a learner that updates every K steps; it runs the forward step "
            "by step and the spatial backprop and trace sums batched over the chunk. "
            "`forward+backward at t, no traces` is the gradient of the stream-mean loss of one "
            "step without any traces: the floor of any per-step online method built on "
            "spatial backprop. `reference: BPTT through each chunk of K` is what the same "
            "learner would spend on exact backprop through each chunk instead (`jax.grad` "
            "through a `lax.scan` of the network; no gradient across chunks); `…, sequence "
            "mode` is the same gradient through the network's whole-sequence evaluation, as "
            "`rx.BPTT()` runs it (dense maps on 32 steps at once, the diagonal recurrence by "
            "`associative_scan`; `rtrlax.cells.base.run_sequence`, vmapped over streams).",
            f"Machine: {cost['machine']}. Command: `{cost['command']}`.",
            "",
        ]
        names = list(cost["rows"][0]["us"])
        lines += ["| batch | d_model/d_hidden | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]  # fmt: skip
        for r in cost["rows"]:
            cells = [f"{r['us'][n]:.0f} µs ({r['ratio'][n]:.1f}×)" for n in names]
            lines.append(f"| {r['batch']} | {r['d_model']}/{r['d_hidden']} | " + " | ".join(cells) + " |")
        lines.append("")
        if acc:
            ax = axes[2]
            labels = [f"B={r['batch']}\n{r['d_model']}/{r['d_hidden']}" for r in cost["rows"]]
            width = 0.8 / len(names)
            for j, n in enumerate(names):
                ax.bar(np.arange(len(labels)) + j * width, [r["ratio"][n] for r in cost["rows"]],
                       width, label=n)  # fmt: skip
            ax.axhline(2.5, color="k", ls="--", lw=1, label="target 2.5×")
            ax.set_xticks(np.arange(len(labels)) + width * (len(names) - 1) / 2, labels)
            ax.set_xlabel("streams B, d_model/d_hidden")
            ax.set_ylabel("× inference step")
            ax.set_yscale("log")
            ax.set_title("cost per step, 4 layers")
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    mem = data.get("memory")
    if mem:
        a, b = mem["rows"]
        lines += [
            "## Streaming memory",
            "",
            f"Peak RSS of a fresh process that streams T online steps of a {mem['layers']}-layer "
            f"LRUNet (d_model {mem['d_model']}, d_hidden {mem['d_hidden']}, one stream, "
            "an update-ready gradient every step, inputs drawn inside the jitted scan): ",
            "",
            "| T | peak RSS (MiB) | wall (s) |",
            "|---|---|---|",
            f"| {a['T']:,} | {a['peak_rss_mib']:.1f} | {a['seconds']:.0f} |",
            f"| {b['T']:,} | {b['peak_rss_mib']:.1f} | {b['seconds']:.0f} |",
            "",
            f"Ratio {b['peak_rss_mib'] / a['peak_rss_mib']:.3f} (target ≤ 1.05). "
            f"Command: `{mem['command']}`.",
            "",
        ]
    lines += scifar_lines(data.get("scifar", {}))
    if acc:
        save_figure(fig, RESULTS / "online_lru.png", dpi=110)
        lines += ["![accuracy and cost](online_lru.png)", ""]
    notes = RESULTS / "online_lru_notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    (RESULTS / "online_lru.md").write_text("\n".join(lines))
    print("\n".join(lines))


def scifar_lines(runs: dict) -> list[str]:
    """The sCIFAR-size tables: one per (backend, batch, T) entry of ``runs``."""
    if not runs:
        return []
    out = [
        "## sCIFAR-size network: online vs BPTT, throughput and peak memory",
        "",
        "4-layer LRUNet (sizes below), 3 random input channels, a random class per sequence, "
        "cross-entropy at every step. Time = median over repeats of one jitted call that "
        "produces the batch's gradient (inference: the outputs only), compilation excluded; "
        "tokens/s = batch × T / time. `online` is `rx.OnlineLRU()` stepping through the "
        "sequence with `batch_step` over the batch, its stream-mean gradients accumulated; "
        "`online, updates every K steps` is `OnlineLRU.batch_chunk_step` over chunks of K "
        "steps (the same gradient, tested); "
        "`spatial` is `rx.OnlineLRU(horizon=0)`; `BPTT` is `jax.grad` of the summed loss of "
        "each sequence, vmapped. Each method ran in a fresh process: *peak device memory* is "
        "the device allocator's peak (GPU only), *XLA temp* the compiled function's "
        "temporary buffers, *peak RSS* the host process's.",
        "",
    ]
    for name, run in runs.items():
        c = run["config"]
        inf = next((r["ms"] for r in run["rows"] if r["method"] == "inference"), None)
        mib = lambda b: "—" if b is None else f"{b / 2**20:,.0f} MiB"  # noqa: E731
        out += [
            f"### {name} (d_model {c['d_model']}, d_hidden {c['d_hidden']}, "
            f"{c['layers']} layers)",
            "",
            f"Machine: {run['machine']}. "
            + "Commands: " + ", ".join(f"`{c}`" for c in run.get("commands", [run.get("command")])) + ".",
            "",
            "| method | ms per batch | tokens/s | × inference | peak device memory | XLA temp "
            "| peak RSS |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in run["rows"]:
            ratio = "—" if inf is None else f"{r['ms'] / inf:.1f}×"
            out.append(
                f"| {r['method']} | {r['ms']:,.0f} | {r['tokens_per_s']:,.0f} | {ratio} | "
                f"{mib(r['peak_bytes'])} | {mib(r['temp_bytes'])} | {r['peak_rss_mib']:,.0f} MiB |"
            )
        out.append("")
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_stream":
        stream_child(*map(int, sys.argv[2:6]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_scifar":
        scifar_child(sys.argv[2], *map(int, sys.argv[3:10]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--tasks", nargs="+", default=["copy", "digits"])
    a.add_argument("--layers", nargs="+", type=int, default=[1, 2, 4])
    a.add_argument("--methods", nargs="+", default=list(METHODS))
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--updates", type=int, default=300)
    a.add_argument("--batch", type=int, default=32)
    a.add_argument("--d-model", type=int, default=32)
    a.add_argument("--d-hidden", type=int, default=32)
    a.add_argument("--lr", type=float, default=3e-3)
    a.add_argument("--resume", action="store_true")
    c = sub.add_parser("cost")
    c.add_argument("--repeats", type=int, default=7)
    c.add_argument("--T", type=int, default=384, help="steps per timed call")
    c.add_argument("--K", type=int, nargs="+", default=[48, 384],
                   help="chunk lengths of chunk_step (each divides T)")
    m = sub.add_parser("memory")
    m.add_argument("--d-model", type=int, default=64)
    m.add_argument("--d-hidden", type=int, default=32)
    m.add_argument("--layers", type=int, default=4)
    g = sub.add_parser("scifar", help="sCIFAR-size online vs BPTT throughput/memory (GPU)")
    g.add_argument("--methods", nargs="+", default=list(SCIFAR_METHODS), choices=SCIFAR_METHODS)
    g.add_argument("--d-model", type=int, default=256)
    g.add_argument("--d-hidden", type=int, default=128)
    g.add_argument("--layers", type=int, default=4)
    g.add_argument("--T", type=int, default=1024)
    g.add_argument("--batch", type=int, default=100)
    g.add_argument("--repeats", type=int, default=5)
    g.add_argument("--K", type=int, default=128, help="chunk length of online-chunked (divides T)")
    sub.add_parser("report")
    args = p.parse_args()
    cmds = {"accuracy": accuracy_cmd, "cost": cost_cmd, "memory": memory_cmd,
            "scifar": scifar_cmd, "report": report_cmd}  # fmt: skip
    cmds[args.cmd](args)


if __name__ == "__main__":
    main()
