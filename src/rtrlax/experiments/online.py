"""Supervised online learning on a task: what ``rtrlax run copy`` and ``run charlm`` do.

An experiment here is: a task, a model (a network around a cell, by name), an online
estimator, Adam, an :class:`~rtrlax.learning.learner.OnlineLearner` over ``batch``
streams, a budget of ``steps`` per stream, and what to report (the learner's metrics
per chunk, plus held-out bits per character for the char-LM).  Everything is named
through :mod:`rtrlax.experiments.registry`, so a user's registered estimator, cell or
task runs here unchanged.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ..learning.checkpoint import StopOnSignal
from . import registry
from .results import write_results

#: options that do not change the numbers a run computes (not compared on resume)
_NOT_HPARAMS = {"steps", "chunk", "save_every", "resume", "override", "out", "save", "quiet",
                "plugin", "eval_chars", "devices"}


def build_model(*, network: str, cell: str, input_size: int, output_size: int, hidden: int,
                layers: int, density, input_density, key):
    """The model of an experiment, by registry names."""
    return registry.make_network(network, cell, input_size, output_size, hidden, key=key,
                                 layers=layers, density=density, input_density=input_density)


def progress_bar(total: int, desc: str, disable: bool = False):
    """The progress bar every long run shows (tqdm; steps per stream)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=disable, leave=False)


def run_online(
    *,
    task: str,
    task_options: dict[str, Any],
    estimator: str,
    cell: str,
    hidden: int,
    steps: int,
    batch: int,
    lr: float,
    network: str = "readout",
    layers: int = 1,
    density: float | None = None,
    input_density: float | None = None,
    update_every: int = 1,
    chunk: int = 500,
    seed: int = 0,
    out: Path | None = None,
    save: Path | None = None,
    resume: Path | str | None = None,
    quiet: bool = False,
    save_every: int | None = None,
    override: bool = False,
    eval_chars: int | None = None,
    devices: int | None = None,
    config: dict | None = None,
) -> dict:
    """Train online and write the results; returns ``{"history", "seconds", "state"}``
    (and ``"test_bpc"`` for the char-LM).  ``devices``: split the streams over that many
    devices (:func:`rtrlax.learning.sharding.stream_mesh`).  ``config`` is what
    ``metrics.json`` and ``config.toml`` record (the command line passes its resolved
    options).

    ``steps`` is the run's total per stream: a run resumed from a checkpoint (``resume``:
    a checkpoint directory, or ``"latest"``: the newest good one under ``save``) takes
    the remaining steps and ends bit-identical to an uninterrupted run; its history
    starts with the checkpoint's.  ``save``: checkpoints every ``save_every`` steps, on
    SIGINT/SIGTERM (the current chunk finishes, the run saves and returns) and at the
    end.  A resume whose hyper-parameters differ from the checkpoint's is refused unless
    ``override``."""
    import jax
    import optax

    from ..learning.learner import OnlineLearner

    the_task = registry.make_task(task, **task_options)
    k_model, k_run = jax.random.split(jax.random.key(seed))
    model = build_model(network=network, cell=cell, input_size=the_task.input_size,
                        output_size=the_task.output_size, hidden=hidden, layers=layers,
                        density=density, input_density=input_density, key=k_model)
    mesh = None
    if devices is not None:
        from ..learning.sharding import stream_mesh

        mesh = stream_mesh(devices)
    learner = OnlineLearner(model, registry.make_estimator(estimator), optax.adam(lr),
                            update_every=update_every, mesh=mesh)
    hparams = {k: v for k, v in (config or {}).items() if k not in _NOT_HPARAMS}
    hparams.setdefault("estimator_spec", estimator)
    hparams.setdefault("lr", lr)
    history: dict = {}
    source = save if resume == "latest" else resume
    if source is not None and (resume != "latest" or Path(source).exists()):
        state, history = learner.resume(Path(source), batch_size=batch, task=the_task,
                                        hparams=hparams, override=override)
    else:
        state = learner.init(k_run, batch_size=batch, task=the_task)
    on_chunk = None
    if task == "copy-curriculum":
        def on_chunk(s, m):
            m["level"] = int(s.task_state.level[0])

    remaining = max(steps - int(state.step), 0)
    t0 = time.perf_counter()
    step_chunk = learner.whole_updates(chunk)  # a chunked estimator takes K steps at once
    with progress_bar(remaining, f"{task} {estimator}", disable=quiet) as bar, StopOnSignal() as stop:
        def progress(done, m):
            bar.update(done - bar.n)
            bar.set_postfix({k: f"{v:.4g}" for k, v in m.items() if k != "step"})

        state, history = learner.run(
            state, the_task, remaining, chunk=step_chunk, progress=progress, stop=stop,
            save_every=save_every, directory=save, hparams=hparams, metrics=history,
            on_chunk=on_chunk,
        )  # fmt: skip
    if stop.signal is not None:
        print(f"stopped by signal {stop.signal} at step {int(state.step)}; saved to {save} "
              "(continue with --resume latest)" if save else
              f"stopped by signal {stop.signal} at step {int(state.step)} (nothing saved: no --save)")
    history = {k: [float(x) for x in v] for k, v in history.items()}
    seconds = time.perf_counter() - t0
    result = {"history": history, "seconds": seconds, "state": state}
    if eval_chars is not None:
        import equinox as eqx

        from ..tasks.charlm import evaluate_bpc

        trained = eqx.combine(state.params, eqx.partition(model, eqx.is_inexact_array)[1])
        result["test_bpc"] = float(evaluate_bpc(trained, the_task, max_chars=eval_chars))
        print(f"held-out bpc ({eval_chars} chars): {result['test_bpc']:.4f}")
    out = out or Path("runs") / f"{task}-{estimator.replace(':', '')}"
    measures = {"seconds": seconds, "steps_per_second": remaining * batch / max(seconds, 1e-9)}
    if "test_bpc" in result:
        measures["test_bpc"] = result["test_bpc"]
    write_results(out, config or {}, history, title=f"{task}: {estimator}", label=estimator,
                  measures=measures)
    final = {k: next((x for x in reversed(v) if math.isfinite(x)), math.nan)
             for k, v in history.items()}  # the last window that was scored
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png, config.toml  ({seconds:.1f} s)")
    print("final: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    return result
