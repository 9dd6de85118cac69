"""Supervised online learning on a task: what ``rtrlax run copy`` and ``run charlm`` do.

An experiment here is: a task, a model (a network around a cell, by name), an online
estimator, Adam, an :class:`~rtrlax.learning.learner.OnlineLearner` over ``batch``
streams, a budget of ``steps`` per stream, and what to report (the learner's metrics
per chunk, plus held-out bits per character for the char-LM).  Everything is named
through :mod:`rtrlax.experiments.registry`, so a user's registered estimator, cell or
task runs here unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import registry
from .results import write_results


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
    resume: Path | None = None,
    quiet: bool = False,
    eval_chars: int | None = None,
    config: dict | None = None,
) -> dict:
    """Train online and write the results; returns ``{"history", "seconds", "state"}``
    (and ``"test_bpc"`` for the char-LM).  ``config`` is what ``metrics.json`` and
    ``config.toml`` record (the command line passes its resolved options)."""
    import jax
    import optax

    from ..learning.learner import OnlineLearner

    the_task = registry.make_task(task, **task_options)
    k_model, k_run = jax.random.split(jax.random.key(seed))
    model = build_model(network=network, cell=cell, input_size=the_task.input_size,
                        output_size=the_task.output_size, hidden=hidden, layers=layers,
                        density=density, input_density=input_density, key=k_model)
    learner = OnlineLearner(model, registry.make_estimator(estimator), optax.adam(lr),
                            update_every=update_every)
    if resume is not None:
        state = learner.restore(resume, batch_size=batch, task=the_task)
    else:
        state = learner.init(k_run, batch_size=batch, task=the_task)
    extra = {}
    if task == "copy-curriculum":
        extra["level"] = lambda s: int(s.task_state.level[0])

    history: dict[str, list] = {}
    t0 = time.perf_counter()
    step_chunk = learner.whole_updates(chunk)  # a chunked estimator takes K steps at once
    with progress_bar(steps, f"{task} {estimator}", disable=quiet) as bar:
        done = 0
        while done < steps:
            n = min(step_chunk, steps - done)
            state, m = learner.run(state, the_task, n, chunk=n)
            done += n
            for k, v in m.items():
                history.setdefault(k, []).append(float(v[-1]))
            for k, f in extra.items():
                history.setdefault(k, []).append(f(state))
            bar.update(n)
            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items() if k != "step"})
    seconds = time.perf_counter() - t0
    if save is not None:
        learner.save(state, save)
    result = {"history": history, "seconds": seconds, "state": state}
    if eval_chars is not None:
        import equinox as eqx

        from ..tasks.charlm import evaluate_bpc

        trained = eqx.combine(state.params, eqx.partition(model, eqx.is_inexact_array)[1])
        result["test_bpc"] = float(evaluate_bpc(trained, the_task, max_chars=eval_chars))
        print(f"held-out bpc ({eval_chars} chars): {result['test_bpc']:.4f}")
    out = out or Path("runs") / f"{task}-{estimator.replace(':', '')}"
    measures = {"seconds": seconds, "steps_per_second": steps * batch / seconds}
    if "test_bpc" in result:
        measures["test_bpc"] = result["test_bpc"]
    write_results(out, config or {}, history, title=f"{task}: {estimator}", label=estimator,
                  measures=measures)
    final = {k: v[-1] for k, v in history.items()}
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png, config.toml  ({seconds:.1f} s)")
    print("final: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))
    return result
