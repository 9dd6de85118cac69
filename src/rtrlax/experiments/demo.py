"""``rtrlax demo``: exact RTRL, SnAp-1, truncated BPTT and a trace-free baseline on a
small copy task, side by side (a table, ``demo.png``, ``demo.json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import registry
from .online import progress_bar
from .results import machine_description, plot_curves


def run_demo(*, steps: int = 12000, batch: int = 16, hidden: int = 16, seed: int = 0,
             out: Path = Path("runs/demo")) -> dict:
    """Train a GRU-``hidden`` online on a small copy task (2 bits, pattern 4, 2 blanks:
    T = 11) with exact RTRL, SnAp-1, TBPTT(4) and TBPTT(1); print a table, write
    ``demo.png`` and ``demo.json`` to ``out``.  Returns ``{"rows": ...}``."""
    import jax
    import numpy as np
    import optax

    from ..learning.learner import OnlineLearner

    task = registry.make_task("copy", bits=2, pattern_length=4, padding=2)
    k_model, k_run = jax.random.split(jax.random.key(seed))
    model = registry.make_network("readout", "gru", task.input_size, task.output_size, hidden,
                                  key=k_model)
    contenders = {
        "RTRL (exact)": "rtrl",
        "SnAp-1": "snap:1",
        "TBPTT(4)": "tbptt:4",
        "trace-free (TBPTT(1))": "tbptt:1",
    }
    chunk = 250
    runs, rows = {}, []
    for name, spec in contenders.items():
        learner = OnlineLearner(model, registry.make_estimator(spec), optax.adam(1e-2))
        state = learner.init(k_run, batch_size=batch, task=task)
        state, _ = learner.run(state, task, chunk, chunk=chunk)  # compile + first chunk
        jax.block_until_ready(state)
        hist: dict[str, list] = {}
        t0 = time.perf_counter()
        with progress_bar(steps - chunk, name) as bar:
            for _ in range((steps - chunk) // chunk):
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
    print(f"\ncopy task T={task.sequence_length}, GRU-{hidden}, {batch} streams, "
          f"{steps} online steps each (last 20% of chunks averaged; µs per step of all streams)")
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(out / "demo.png", runs, title="rtrlax demo: copy task, GRU-16, fully online",
                keys=["bits_per_step", "bit_accuracy"])
    (out / "demo.json").write_text(json.dumps(
        {"machine": machine_description(), "rows": rows, "history": runs, "steps": steps,
         "batch": batch}, indent=2))
    print(f"wrote {out}/demo.png and demo.json")
    return {"rows": rows}
