"""Per-step cost of every online estimator against an inference-only step of the same model.

For each (estimator, hidden size, batch size): a jitted ``lax.scan`` of ``--steps``
online steps (``vmap`` over the batch of streams) is compiled first, then timed
``--repeats`` times with ``block_until_ready``; the table reports the median time per
step, its ratio to the inference-only step of the same model measured in the same
run, the carry (state + traces) size and XLA's temporary buffer size for the
compiled step (its peak working memory beyond arguments and outputs).

Roofline columns: this machine's float32 matmul GFLOP/s and memory-copy GB/s are
measured first, in the same process (``harness.measure_peak``); each row reports what it
achieved — flops on M per second for dense RTRL, carry bytes read and written per second
for trace estimators — and that as a fraction of the peak.  Dense RTRL rows also get a
"matmul floor" table: the step against the batched ``D·M`` product alone (timed
alternately) and XLA's temporary memory of one donated step against M.

    python benchmarks/step_cost.py                      # full table -> docs/results/step_cost.md
    python benchmarks/step_cost.py --hidden 32 64 --batch 1 --only rtrl snap1
    python benchmarks/step_cost.py --hidden 128 --batch 1 32 --only rtrl --steps 8 --repeats 3 \
        --out docs/results/step_cost_rtrl.md             # the dense-RTRL floor table
    python benchmarks/step_cost.py --hidden 8 --batch 1 2 --steps 4 --repeats 2 --chunk 2 \
        --out /tmp/step_cost_tiny.md                     # every row, tiny: does it run?

Other estimators join by appending an :class:`Entry` to :data:`ENTRIES`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrlax as rx
from common import bptt_chunk_grads
from harness import (
    busy_cores, compiled_memory, load_note, machine_description, measure_peak, time_alternating, time_call, tree_bytes,
)

INPUT_SIZE = 32
OUTPUT_SIZE = 8


def gru_model(hidden: int, key, density: float = 1.0):
    k1, k2 = jax.random.split(key)
    cell = rx.GRU(INPUT_SIZE, hidden, key=k1, density=density, dtype=jnp.float32)
    return rx.Readout(cell, OUTPUT_SIZE, key=k2)


def vanilla_model(hidden: int, key, density: float = 1.0):
    k1, k2 = jax.random.split(key)
    cell = rx.VanillaRNN(INPUT_SIZE, hidden, key=k1, density=density, dtype=jnp.float32)
    return rx.Readout(cell, OUTPUT_SIZE, key=k2)


@dataclass
class Entry:
    """One row family of the table."""

    name: str  #: label in the table
    estimator: Callable[[], rx.AbstractOnlineEstimator]
    model: Callable = gru_model  #: (hidden, key) -> model; its inference step is the baseline
    model_name: str = "GRU"
    max_hidden: dict = field(default_factory=lambda: {1: 10**9, 32: 10**9})  #: per batch size


ENTRIES: list[Entry] = [
    Entry("RTRL", rx.RTRL, max_hidden={1: 256, 32: 128}),
    Entry("RTRL", rx.RTRL, model=vanilla_model, model_name="RNN", max_hidden={1: 256, 32: 128}),
    Entry("SnAp-1", lambda: rx.SnAp(1)),
    Entry("TBPTT(16)", lambda: rx.TBPTT(16)),
    Entry("OnlineLRU", rx.OnlineLRU, model=lambda h, key: rx.LRUNet(INPUT_SIZE, OUTPUT_SIZE, d_model=h, d_hidden=max(1, h // 2), n_layers=4, key=key, dtype=jnp.float32), model_name="LRUNet-4 (d_hidden=h/2)", max_hidden={1: 256, 32: 128}),
    Entry("SparseRTRL", lambda: rx.SparseRTRL(), model=lambda h, key, density=1.0: rx.Readout(rx.EGRU(INPUT_SIZE, h, key=key, density=density, dtype=jnp.float32), OUTPUT_SIZE, key=jax.random.fold_in(key, 1)), model_name="EGRU", max_hidden={1: 256, 32: 64}),
    Entry("SnAp-2", lambda: rx.SnAp(2), model=lambda h, key: gru_model(h, key, density=0.1), model_name="GRU-10%", max_hidden={1: 256, 32: 64}),
    Entry("UORO", rx.UORO),
    Entry("KF-RTRL", rx.KFRTRL, model=vanilla_model, model_name="RNN", max_hidden={1: 256, 32: 128}),
    Entry("RFLO", rx.RFLO, model=vanilla_model, model_name="RNN"),
    Entry("ColoR", rx.ColoR, model=lambda h, key: rx.Readout(rx.Columnar(INPUT_SIZE, h, key=key, dtype=jnp.float32), OUTPUT_SIZE, key=jax.random.fold_in(key, 1)), model_name="Columnar"),
]


def loss_fn(y, target):
    return jnp.sum((y - target) ** 2)


def _time(fn, args, repeats):
    """(median wall seconds, median CPU seconds of this process) per call."""
    return tuple(time_call(fn, *args, repeats=repeats))


def _temp_bytes(fn, args) -> int | None:
    mem = compiled_memory(fn, *args)
    return None if mem is None else mem.temp


def inference_cost(model, batch, steps, repeats, key):
    xs = jax.random.normal(key, (steps, batch, INPUT_SIZE), jnp.float32)

    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def run(params, xs):
        model = eqx.combine(params, static)
        state = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))

        def body(state, x):
            state, y = jax.vmap(model)(state, x)
            return state, y[:, 0]

        return jax.lax.scan(body, state, xs)

    wall, cpu = _time(run, (params, xs), repeats)
    return wall / steps, cpu / steps


def online_cost(model, estimator, batch, steps, repeats, key):
    """Per-step cost of the learner's step for a batch of streams (``batch_step``, the
    stream-mean gradient of every step)."""
    return _scan_cost(model, estimator, (steps, batch), estimator.batch_step, steps, repeats, key)


def chunk_cost(model, estimator, batch, steps, chunk, repeats, key):
    """Per-step cost of ``batch_chunk_step`` (updates every ``chunk`` steps) over ``steps``
    steps (a multiple of ``chunk``): the summed gradient of each chunk."""
    lead = (steps // chunk, batch, chunk)
    return _scan_cost(model, estimator, lead, estimator.batch_chunk_step, steps, repeats, key)


def bptt_chunk_cost(model, batch, steps, chunk, repeats, key):
    """Per-step cost of exact backprop through each chunk of ``chunk`` steps
    (:func:`reference.bptt_chunk_grads`) over ``steps`` steps: the reference for a
    learner that updates every ``chunk`` steps."""
    kx, kt = jax.random.split(key)
    lead = (steps // chunk, batch, chunk)
    xs = jax.random.normal(kx, (*lead, INPUT_SIZE), jnp.float32)
    ts = jax.random.normal(kt, (*lead, OUTPUT_SIZE), jnp.float32)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = jax.vmap(lambda _: model.initial_state())(jnp.arange(batch))

    @jax.jit
    def run(params, state, xs, ts):
        m = eqx.combine(params, static)

        def body(c, xt):
            loss, state, grads = bptt_chunk_grads(m, c[0], *xt, loss_fn)
            return (state, grads), loss  # the gradient overwrites the last, as in _scan_cost

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return jax.lax.scan(body, (state, zeros), (xs, ts))

    wall, cpu = _time(run, (params, state, xs, ts), repeats)
    return wall / steps, cpu / steps, None, _temp_bytes(run, (params, state, xs, ts))


def _scan_fn(model, estimator, lead, step, key):
    """A jitted scan of ``step(model, carry, x, t, loss_fn)`` over inputs and targets of
    leading shape ``lead`` (scanned axis first, then streams): ``(run, args)``.  The scan
    unrolls as rtrlax's own scans do (``estimator.scan_unroll(model)``)."""
    kx, kt = jax.random.split(key)
    xs = jax.random.normal(kx, (*lead, INPUT_SIZE), jnp.float32)
    ts = jax.random.normal(kt, (*lead, OUTPUT_SIZE), jnp.float32)
    batch = lead[1]
    carry = jax.vmap(lambda k: estimator.init(model, key=k))(jax.random.split(key, batch))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def run(params, carry, xs, ts):
        model = eqx.combine(params, static)

        def body(c, xt):
            carry, _ = c
            carry, out = step(model, carry, xt[0], xt[1], loss_fn)
            # Each gradient is written into the loop carry (overwriting the last one): it
            # must be computed, and nothing is spent beyond producing it.  (Stacking every
            # step's gradient as a scan output would instead measure page faults on a
            # fresh steps x parameters buffer.)
            return (carry, out.grads), out.loss

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        unroll = estimator.scan_unroll(model)
        (carry, grads), losses = jax.lax.scan(body, (carry, zeros), (xs, ts), unroll=unroll)
        return carry, losses, grads

    return run, (params, carry, xs, ts)


def _scan_cost(model, estimator, lead, step, steps, repeats, key):
    """Per step of ``steps``: (wall s, CPU s, carry bytes, temp bytes) of :func:`_scan_fn`."""
    run, args = _scan_fn(model, estimator, lead, step, key)
    wall, cpu = _time(run, args, repeats)
    return wall / steps, cpu / steps, tree_bytes(args[1]), _temp_bytes(run, args)


def rtrl_floor(model, batch, steps, repeats, key):
    """Dense RTRL against its own matrix product, timed alternately in this process.

    Returns a dict: per-step wall time of the scanned ``batch_step`` (``step``) and of the
    batched product ``D·M`` alone (``dm``: ``[B, S, S] @ [B, S, P_r]``, ``P_r`` the
    recurrent parameters, i.e. the columns of M), the influence matrices of all streams
    (``m_bytes``), XLA's temporary memory of one jitted step with the carry donated
    (``temp_bytes``), and the flops a step performs on M (``flops``: the product with
    ``[D; g]``, ``2·S·(S+1)·P_r``, plus the immediate term's ``S·P_r`` additions, per
    stream)."""
    est = rx.RTRL()
    run, args = _scan_fn(model, est, (steps, batch), est.batch_step, key)
    carry = args[1]
    s, p_r = carry.influence[0].shape[1], sum(b.shape[2] for b in carry.influence)
    d = jax.random.normal(key, (batch, s, s), jnp.float32) / s
    m = jax.random.normal(jax.random.fold_in(key, 1), (batch, s, p_r), jnp.float32)
    dm = jax.jit(jnp.matmul)
    t = time_alternating({"step": (run, args), "dm": (dm, (d, m))}, repeats)
    one = jax.jit(lambda c, x, tg: est.batch_step(model, c, x, tg, loss_fn), donate_argnums=0)
    mem = compiled_memory(one, carry, args[2][0], args[3][0])
    return {
        "step": t["step"].wall / steps, "dm": t["dm"].wall, "m_bytes": tree_bytes(carry.influence),
        "step_cpu": t["step"].cpu / steps, "dm_cpu": t["dm"].cpu,
        "temp_bytes": None if mem is None else mem.temp,
        "flops": batch * (2 * s * (s + 1) * p_r + s * p_r),
    }


def roofline(name, wall, carry_b, floor, peak):
    """``(achieved, fraction of peak)`` strings for a row: GFLOP/s for dense RTRL (its
    product on M and immediate term), GB/s for estimators that carry traces (the carry
    read and written once per step), nothing for the others."""
    if peak is None:
        return "—", "—"
    if floor is not None:
        rate = floor["flops"] / wall / 1e9
        return f"{rate:.1f} GFLOP/s", f"{rate / peak.gflops:.0%}"
    if carry_b and name not in ("inference",) and not name.startswith(("TBPTT", "reference")):
        rate = 2 * carry_b / wall / 1e9
        return f"{rate:.2f} GB/s", f"{rate / peak.gbs:.0%}"
    return "—", "—"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--steps", type=int, default=20, help="steps per timed scan")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", nargs="*", default=None, help="entry names to run (case-insensitive)")
    p.add_argument("--out", type=Path, default=Path("docs/results/step_cost.md"))
    p.add_argument("--chunk", type=int, default=None, metavar="K",
                   help="also time chunk_step (updates every K steps) where an estimator has it")
    p.add_argument("--no-peak", action="store_true", help="skip the peak micro-benchmarks (no roofline columns)")
    args = p.parse_args(argv)
    load_at_start = busy_cores()
    if args.chunk is not None and args.chunk < 1:
        p.error("--chunk must be a positive integer")

    entries = ENTRIES
    if args.only:
        wanted = {n.lower() for n in args.only}
        entries = [e for e in ENTRIES if e.name.lower() in wanted]
    peak = None if args.no_peak else measure_peak()
    if peak is not None:
        print(peak.describe(), flush=True)
    key = jax.random.key(0)
    rows, floors = [], []
    inference = {}
    bptt_done = set()

    def add(model_name, name, hidden, batch, w, c, w0, c0, carry_b, temp_b, floor=None):
        achieved, frac = roofline(name, w, carry_b, floor, peak)
        rows.append((model_name, name, hidden, batch, w, c, w / w0, c / c0, carry_b, temp_b, achieved, frac))
        print(_fmt(rows[-1]), flush=True)

    for batch in args.batch:
        for hidden in args.hidden:
            for e in entries:
                if hidden > e.max_hidden.get(batch, 10**9):
                    continue
                model = e.model(hidden, key)
                base_key = (e.model_name, hidden, batch)
                if base_key not in inference:
                    inference[base_key] = inference_cost(model, batch, args.steps, args.repeats, key)
                    w, c = inference[base_key]
                    add(e.model_name, "inference", hidden, batch, w, c, w, c, None, None)
                w0, c0 = inference[base_key]
                # dense RTRL at hidden >= 128: fewer steps per call (each takes ms to s), but
                # at least 8: a call allocates its output carry (M-sized, page-faulted in),
                # a cost per call that fewer steps would pass off as a cost per step
                big = e.name.startswith("RTRL") and hidden >= 128
                steps = max(8, args.steps // 4) if big else args.steps
                w, c, carry_b, temp_b = online_cost(model, e.estimator(), batch, steps, args.repeats, key)
                floor = None
                if e.name == "RTRL":
                    floor = rtrl_floor(model, batch, steps, args.repeats, key)
                    floors.append((e.model_name, hidden, batch, floor))
                    print(_fmt_floor(floors[-1]), flush=True)
                add(e.model_name, e.name, hidden, batch, w, c, w0, c0, carry_b, temp_b, floor)
                est = e.estimator()
                if args.chunk and getattr(est, "chunked", False):
                    n = max(1, steps // args.chunk) * args.chunk
                    w, c, carry_b, temp_b = chunk_cost(model, est, batch, n, args.chunk, args.repeats, key)
                    add(e.model_name, f"{e.name}, updates every {args.chunk} (chunk_step)", hidden, batch,
                        w, c, w0, c0, carry_b, temp_b)
                    if base_key not in bptt_done:  # the exact offline reference, once per model
                        bptt_done.add(base_key)
                        w, c, carry_b, temp_b = bptt_chunk_cost(model, batch, n, args.chunk, args.repeats, key)
                        add(e.model_name, f"reference: BPTT through each chunk of {args.chunk}", hidden,
                            batch, w, c, w0, c0, carry_b, temp_b)
    write_table(args.out, rows, floors, peak, " ".join(sys.argv[1:]) if argv is None else " ".join(argv),
                load_at_start)


def _mb(b):
    return "—" if b is None else f"{b / 2**20:.2f}"


def _fmt(row):
    model, name, hidden, batch, wall, cpu, r_wall, r_cpu, carry_b, temp_b, achieved, frac = row
    return (
        f"| {model} | {name} | {hidden} | {batch} | {wall * 1e6:.1f} | {r_wall:.2f}× "
        f"| {cpu * 1e6:.1f} | {r_cpu:.2f}× | {_mb(carry_b)} | {_mb(temp_b)} | {achieved} | {frac} |"
    )


def _fmt_floor(entry):
    model, hidden, batch, f = entry
    temp = "—" if f["temp_bytes"] is None else f"{f['temp_bytes'] / f['m_bytes']:.2f}×"
    return (
        f"| {model} | {hidden} | {batch} | {f['step'] * 1e3:.2f} | {f['dm'] * 1e3:.2f} "
        f"| {f['step'] / f['dm']:.2f}× | {f['step_cpu'] * 1e3:.2f} | {f['dm_cpu'] * 1e3:.2f} "
        f"| {f['step_cpu'] / f['dm_cpu']:.2f}× | {_mb(f['m_bytes'])} | {_mb(f['temp_bytes'])} | {temp} |"
    )


def write_table(path: Path, rows, floors, peak, argstr: str, load_at_start: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Step cost: online estimators vs an inference-only step",
        "",
        f"Machine: {machine_description()}; {load_note(load_at_start)}.",
        f"Command: `python benchmarks/step_cost.py {argstr}`".rstrip() + " (float32, input 32, readout 8).",
        "",
        ("This machine's " + peak.describe() + "." if peak is not None else "Peak not measured (`--no-peak`)."),
        "",
        "Time per step = median over repeats of a jitted `lax.scan` of vmapped steps over all streams, "
        "divided by the number of steps (compilation excluded): wall-clock, and the CPU time of the "
        "process (all threads), which is the steadier figure when the machine is shared. Ratio = time / "
        "inference-only step of the same model and batch measured in the same run. Carry = state + "
        "traces of all streams; temp = XLA's temporary buffers of the compiled scan. Rows "
        "`…, updates every K (chunk_step)`: the estimator's `batch_chunk_step` over chunks of K "
        "steps — the same gradient summed over each chunk as K steps (tested), for a learner "
        "that updates every K steps; time per step likewise. Row `reference: BPTT through each "
        "chunk of K`: what the same learner would spend on exact backprop through each chunk "
        "instead (`jax.grad` through a `lax.scan` of the model; no gradient across chunks).",
        "",
        "Roofline: `achieved` is, for dense RTRL, the flops it spends on M per second (the product "
        "`[D; g]·M`, 2·S·(S+1)·P_r per stream, plus the immediate term's S·P_r additions; P_r = "
        "recurrent parameters) and, for estimators that carry traces, the carry bytes read and "
        "written once per step per second (2 × carry / wall time); `of peak` divides it by the "
        "matmul GFLOP/s or the copy GB/s measured above, in the same process. `—`: no such "
        "bound applies (inference, TBPTT's input buffer, BPTT). The copy peak streams 128 MiB "
        "through main memory: carries small enough to stay in the CPU caches can exceed it "
        "(over 100 %).",
        "",
        "| model | estimator | hidden | batch | wall µs/step | × inference | CPU µs/step | × inference (CPU) "
        "| carry MiB | temp MiB | achieved | of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt(r) for r in rows]
    if floors:
        lines += [
            "",
            "## Dense RTRL at the matmul floor",
            "",
            "Step = the scanned `batch_step` above, per step (at hidden ≥ 128, scans of at least 8 "
            "steps, two per loop iteration as `RTRL.scan_unroll` asks); `D·M alone` = the batched product "
            "`[B, S, S] @ [B, S, P_r]` by itself (one jitted call), the two timed alternately in "
            "this process (medians of wall-clock and of process CPU time). M = the influence matrices of all streams; temp = "
            "XLA's temporary memory of one jitted `batch_step` with the carry donated "
            "(`compiled.memory_analysis()`).",
            "",
            "| model | hidden | batch | step ms | D·M alone ms | step / D·M | step CPU ms | D·M alone CPU ms "
            "| step / D·M (CPU) | M MiB | temp MiB | temp / M |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [_fmt_floor(f) for f in floors]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
