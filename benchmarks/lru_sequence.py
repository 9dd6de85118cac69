"""Sequence mode vs stepping for the LRU network at the sCIFAR size (issue 15, item 3).

The 4-layer LRUNet (d_model 256, d_hidden 128, pooled output, 10 classes, 3 inputs per
step), B = 4 sequences of T = 1024 steps, float32, CPU.  Two operations, each in its
stepwise form (a ``lax.scan`` over time of the batched step: the form rtrlax used for
BPTT and inference before the sequence mode) and its sequence form
(``model.sequence``: dense maps on all B·T tokens at once, the diagonal recurrences by
``jax.lax.associative_scan``), timed alternately in one process:

* BPTT step: loss and gradient of the batch-mean summed cross-entropy (a loss at every
  step against the sequence's label);
* inference: the outputs for every step of the B sequences.

Usage: PYTHONPATH=src python benchmarks/lru_sequence.py [--repeats 5] [--T 1024]
Writes docs/results/lru_sequence.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

import rtrlax as rx
from rtrlax.cells.base import run_sequence

CHUNKS = (None, 16, 32, 64)  # 32 is rx.BPTT()'s default

OUT = Path(__file__).resolve().parent.parent / "docs" / "results"


def loss_fn(y, label):
    return -jax.nn.log_softmax(y)[label]


def make_ops(model):
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def stepwise_outputs(m, xs):  # xs [B, T, in]: scan over time of the batched step
        state = jax.vmap(lambda _: m.initial_state())(jnp.arange(xs.shape[0]))
        _, ys = jax.lax.scan(lambda s, x: jax.vmap(m)(s, x), state, jnp.swapaxes(xs, 0, 1))
        return jnp.swapaxes(ys, 0, 1)

    def sequence_outputs(chunk):
        def outputs(m, xs):
            return jax.vmap(lambda x: run_sequence(m, x, chunk=chunk)[1])(xs)

        return outputs

    def bptt(outputs):
        def total(params, xs, labels):
            ys = outputs(eqx.combine(params, static), xs)
            losses = jax.vmap(jax.vmap(loss_fn, in_axes=(0, None)))(ys, labels)
            return losses.sum() / xs.shape[0]

        return jax.jit(jax.value_and_grad(total))

    def infer(outputs):
        return jax.jit(lambda params, xs: outputs(eqx.combine(params, static), xs))

    forms = {"stepwise": stepwise_outputs} | {
        f"sequence, chunk {c}" if c else "sequence, all T at once": sequence_outputs(c)
        for c in CHUNKS
    }
    return params, {
        "bptt_step": {name: bptt(f) for name, f in forms.items()},
        "inference": {name: infer(f) for name, f in forms.items()},
    }


def timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--out", default="lru_sequence")
    args = ap.parse_args()
    model = rx.LRUNet(3, 10, d_model=256, d_hidden=128, n_layers=4, key=jax.random.key(0),
                      r_min=0.9, r_max=0.999, pool=True, dtype=jnp.float32)  # fmt: skip
    xs = jax.random.normal(jax.random.key(1), (args.B, args.T, 3), jnp.float32)
    labels = jax.random.randint(jax.random.key(2), (args.B,), 0, 10)
    params, ops = make_ops(model)
    results = {}
    for name, fns in ops.items():
        call = (lambda f: f(params, xs, labels)) if name == "bptt_step" else (lambda f: f(params, xs))
        outs = {form: call(f) for form, f in fns.items()}  # compile all, and check they agree
        ref = jax.tree_util.tree_leaves(outs["stepwise"])
        diff = max(
            float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(x)) + 1e-30))
            for out in outs.values() for x, y in zip(ref, jax.tree_util.tree_leaves(out))
        )  # fmt: skip
        times = {form: [] for form in fns}
        for _ in range(args.repeats):  # alternate
            for form, f in fns.items():
                times[form].append(timed(call, f))
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = {k: v / med["stepwise"] for k, v in med.items()}
        results[name] = dict(times=times, median=med, ratio=ratio, max_rel_diff_f32=diff)
        print(name, {k: (round(v, 3), round(ratio[k], 2)) for k, v in med.items()},
              "max rel diff (float32)", f"{diff:.1e}", flush=True)  # fmt: skip
    meta = dict(machine=f"{platform.processor() or platform.machine()}, {jax.device_count()} "
                f"{jax.devices()[0].platform} device(s); a 2-core AMD EPYC VM shared with ~7 other "
                "engineers' jobs (load average 10-20 during the run)", jax=jax.__version__,
                B=args.B, T=args.T, repeats=args.repeats,
                command=f"PYTHONPATH=src python benchmarks/lru_sequence.py --repeats {args.repeats} --T {args.T} --B {args.B}")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(dict(meta=meta, results=results), indent=1))
    rows = "\n".join(
        f"| {name} | {form} | {t:.3f} | {r['ratio'][form]:.2f}× |"
        for name, r in results.items() for form, t in r["median"].items()
    )  # fmt: skip
    diffs = ", ".join(f"{name} {r['max_rel_diff_f32']:.1e}" for name, r in results.items())
    (OUT / f"{args.out}.md").write_text(f"""# LRU network: sequence mode vs stepping (CPU)

4-layer `LRUNet` (d_model 256, d_hidden 128, pooled output, 10 classes, 3 inputs/step:
the sCIFAR size), B = {args.B} sequences of T = {args.T} steps, float32.  *Stepwise*: a `lax.scan`
over time of the batched step (how BPTT and inference ran before the sequence mode).
*Sequence*: `model.sequence` — every dense map on all B·T tokens at once, each diagonal
recurrence by `jax.lax.associative_scan`; `rx.BPTT()` runs it in chunks of 32 steps.  Median of
{args.repeats} alternating runs, seconds per call, compiled first.

| operation | form | median time (s) | time / stepwise |
|---|---|---|---|
{rows}

BPTT step = loss and gradient of the batch-mean summed cross-entropy (a loss at every
step).  *chunk c*: the sequence mode on consecutive chunks of c steps carrying the state
(`run_sequence(..., chunk=c)`; `rx.BPTT()` uses c = 32).  Equality is tested in float64
(`tests/test_deep.py`: ≤ 1e-12, 1–4 layers); here, in float32, the largest relative
difference from the stepwise numbers: {diffs}.

Machine: {meta['machine']}; jax {jax.__version__}.  Timings on this shared machine are
noisy; the ratio comes from alternating runs in one process.
Command: `{meta['command']}`
""")


if __name__ == "__main__":
    main()
