"""Online RL benchmark: control, prediction and throughput -> docs/results/rl.md + plots.

    PYTHONPATH=src python benchmarks/rl.py throughput     # env steps/s, learning vs acting
    PYTHONPATH=src python benchmarks/rl.py control        # return vs env steps, 3 seeds
    PYTHONPATH=src python benchmarks/rl.py prediction     # MSRE on MinAtar (+ Atari)
    PYTHONPATH=src python benchmarks/rl.py report         # tables + plots from the JSON files

Each part writes ``docs/results/rl_<part>.json``; ``report`` turns them into
``docs/results/rl.md``, ``rl_control.png`` and ``rl_prediction.png``.  Budgets are
the constants below (stated in the report).  float32, CPU.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "docs" / "results"

#: control agents: name -> run_rl keyword arguments
AGENTS = {
    "RTRL GRU-8": dict(estimator="rtrl", cell="gru", hidden=8),
    "SnAp-1 GRU-32": dict(estimator="snap:1", cell="gru", hidden=32),
    "ColoR columnar-16": dict(estimator="color", cell="columnar", hidden=16),
    "online LRU 2x16": dict(estimator="onlinelru", cell="lru", network="lrunet", hidden=16, layers=2),
    "TBPTT(8) GRU-32": dict(estimator="tbptt:8", cell="gru", hidden=32),
    "memoryless MLP-64": dict(estimator="tbptt:1", cell="ff", hidden=64),
    "MLP-64, observation only": dict(estimator="tbptt:1", cell="ff", hidden=64, feed_action_reward=False),
}
#: control environments: label -> (run_rl kwargs, environments, steps per environment)
CONTROL_ENVS = {
    "CartPole-PO": (dict(env="CartPole-PO"), 32, 15000),
    "MemoryChain (memory 6)": (dict(env="MemoryChain-bsuite", memory_length=6), 32, 5000),
    "Breakout-MinAtar": (dict(env="Breakout-MinAtar"), 16, 2000),
    "SpaceInvaders-MinAtar": (dict(env="SpaceInvaders-MinAtar"), 16, 2000),
}
SEEDS = (0, 1, 2)

#: prediction: name -> run_predict kwargs
PREDICTORS = {
    "ColoR columnar-16": dict(estimator="color", cell="columnar", hidden=16),
    "SnAp-1 LSTM-16": dict(estimator="snap:1", cell="lstm", hidden=16),
    "RTRL GRU-4": dict(estimator="rtrl", cell="gru", hidden=4),
    "online LRU 2x16": dict(estimator="onlinelru", cell="lru", network="lrunet", hidden=16, layers=2),
    "TBPTT(8) LSTM-16": dict(estimator="tbptt:8", cell="lstm", hidden=16),
}
PREDICTION_ENVS = {"Breakout-MinAtar": (4, 4000), "SpaceInvaders-MinAtar": (4, 4000)}
ATARI = ("atari-breakout", 2, 2000, ("ColoR columnar-16", "SnAp-1 LSTM-16", "TBPTT(8) LSTM-16"))


def _load():
    import os

    return os.getloadavg()


def control(only: str | None = None, path: Path = OUT / "rl_control.json") -> None:
    """All control runs not yet in ``path`` (``only``: just that agent)."""
    from rtrlax.experiments.rl import run_rl

    results = {}
    if path.exists():
        results = json.loads(path.read_text())["runs"]
    for env_label, (env_kw, n_envs, steps) in CONTROL_ENVS.items():
        for name, kw in AGENTS.items():
            key = f"{env_label} | {name}"
            if key in results or (only is not None and name != only):
                continue
            runs = []
            for seed in SEEDS:
                t0 = time.perf_counter()
                r = run_rl(**env_kw, **kw, num_envs=n_envs, steps=steps, chunk=steps // 10, seed=seed)
                runs.append({"history": r["history"], "seconds": time.perf_counter() - t0})
                print(f"{key} seed {seed}: final return {r['history']['return'][-1]:.2f} "
                      f"({runs[-1]['seconds']:.1f} s, load {_load()[0]:.1f})", flush=True)
            results[key] = {"env": env_label, "agent": name, "num_envs": n_envs, "steps": steps, "runs": runs}
            path.write_text(json.dumps({"runs": results, "load": _load()}, indent=1))


def prediction() -> None:
    from rtrlax.experiments.rl import run_predict

    results = {}
    path = OUT / "rl_prediction.json"
    if path.exists():
        results = json.loads(path.read_text())["runs"]
    jobs = [(env, n, steps, name) for env, (n, steps) in PREDICTION_ENVS.items() for name in PREDICTORS]
    env, n, steps, names = ATARI
    jobs += [(env, n, steps, name) for name in names]
    for env, n, steps, name in jobs:
        key = f"{env} | {name}"
        if key in results:
            continue
        runs = []
        for seed in SEEDS[:2]:
            t0 = time.perf_counter()
            r = run_predict(env=env, **PREDICTORS[name], num_envs=n, steps=steps, chunk=500, window=500,
                            seed=seed, gamma=0.9, lam=0.9, lr=1e-3)
            runs.append({"history": r["history"], "seconds": time.perf_counter() - t0})
            print(f"{key} seed {seed}: last MSRE {r['history']['msre'][-1]:.4f} "
                  f"(zero: {r['history']['msre_zero'][-1]:.4f}; {runs[-1]['seconds']:.1f} s)", flush=True)
        results[key] = {"env": env, "agent": name, "num_envs": n, "steps": steps, "runs": runs}
        path.write_text(json.dumps({"runs": results, "load": _load()}, indent=1))


def throughput(repeats: int = 5) -> None:
    """Env steps/s of the whole SnAp-1 GRU-32 agent on CartPole-v1 (environment + network +
    estimator + Adam update every step) and of the same agent acting only, alternately
    in one process, median of ``repeats`` timed chunks after a compile run."""
    import jax

    from rtrlax.experiments.rl import run_rl

    rows = []
    for n_envs in (1, 64, 256):
        steps = 2000 if n_envs == 1 else 500
        r = run_rl(env="CartPole-v1", estimator="snap:1", cell="gru", hidden=32, num_envs=n_envs,
                   steps=1, chunk=1)
        agent, state = r["agent"], r["state"]
        times = {True: [], False: []}
        for learn in (True, False):  # compile
            jax.block_until_ready(agent.run(state, steps, chunk=steps, learn=learn)[0].params)
        for _ in range(repeats):
            for learn in (True, False):
                t0 = time.perf_counter()
                jax.block_until_ready(agent.run(state, steps, chunk=steps, learn=learn)[0].params)
                times[learn].append(time.perf_counter() - t0)
        learn_sps = n_envs * steps / statistics.median(times[True])
        act_sps = n_envs * steps / statistics.median(times[False])
        rows.append({"num_envs": n_envs, "steps": steps, "learn_sps": learn_sps, "act_sps": act_sps,
                     "ratio": act_sps / learn_sps, "load": _load()})
        print(rows[-1], flush=True)
    (OUT / "rl_throughput.json").write_text(json.dumps({"rows": rows}, indent=1))


def _final(hist, key, tail=3):
    v = [x for x in hist[key][-tail:] if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _panels(envs, draw, xlabel: str, ylabel: str, path) -> None:
    """One panel per environment (``draw(ax, env)`` plots its lines), labelled, saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(envs), figsize=(4.4 * len(envs), 3.4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        draw(ax, env)
        ax.set_title(env)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report() -> None:
    from rtrlax.experiments.results import machine_description

    lines = ["# Online RL: control, prediction, throughput", "",
             "Made by `benchmarks/rl.py` (`PYTHONPATH=src python benchmarks/rl.py throughput|control|"
             "prediction|report`), float32 on CPU: " + machine_description() + ". The machine was a "
             "**shared 2-core AMD EPYC VM** with several other engineers' tests and benchmarks "
             "running at the same time (load averages are recorded with each part); absolute "
             "speeds are therefore pessimistic and noisy, ratios measured in one process are the "
             "reliable figures.", ""]
    tp = OUT / "rl_throughput.json"
    if tp.exists():
        rows = json.loads(tp.read_text())["rows"]
        lines += ["## Throughput", "",
                  "SnAp-1 GRU-32 actor-critic on CartPole-v1: environment + network + SnAp-1 traces + "
                  "eligibility traces + Adam update **every step**, against the same agent acting only "
                  "(forward pass and sampling). Median of 5 timed chunks, learning and acting "
                  "alternately in one process, after a compile run.", "",
                  "| environments | learning (env steps/s) | acting only (env steps/s) | learning cost / acting | load avg (1 min) |",
                  "|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['num_envs']} | {r['learn_sps']:,.0f} | {r['act_sps']:,.0f} | "
                         f"{r['ratio']:.1f}x | {r['load'][0]:.1f} |")
        lines.append("")
    control_files = sorted(OUT.glob("rl_control*.json"))
    if control_files:
        runs = {}
        for cp in control_files:
            runs.update(json.loads(cp.read_text())["runs"])
        lines += ["## Control: streaming actor-critic", "",
                  "Return of the episodes that ended in the last 30% of the run (mean ± std over "
                  f"{len(SEEDS)} seeds), equal environment steps per agent. Adam 3e-3, γ = 0.99, "
                  "λ = 0.9, entropy 0.01, an update every step, trunk input = [observation, previous "
                  "action one-hot, previous reward] (the 'memoryless MLP-64' too; 'MLP-64, observation "
                  "only' sees o_t alone: a feed-forward policy fed its previous action can keep a bit "
                  "of memory in it). Budgets: " + "; ".join(
                      f"{k}: {n} envs × {s} steps = {n * s:,} env steps" for k, (_, n, s) in CONTROL_ENVS.items()) + ".", ""]
        envs = list(CONTROL_ENVS)
        lines += ["| agent | " + " | ".join(envs) + " |", "|---|" + "---:|" * len(envs)]
        for name in AGENTS:
            cells = []
            for env in envs:
                rec = runs.get(f"{env} | {name}")
                if rec is None:
                    cells.append("not run")
                    continue
                finals = [_final(r["history"], "return") for r in rec["runs"]]
                cells.append(f"{np.nanmean(finals):.2f} ± {np.nanstd(finals):.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("![control](rl_control.png)")
        lines.append("")
        def draw_control(ax, env):
            for name in AGENTS:
                rec = runs.get(f"{env} | {name}")
                if rec is None:
                    continue
                x = np.asarray(rec["runs"][0]["history"]["env_steps"])
                y = np.asarray([r["history"]["return"] for r in rec["runs"]], float)
                ax.plot(x, np.nanmean(y, 0), label=name)
                ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), alpha=0.15)

        _panels(envs, draw_control, "environment steps", "episode return", OUT / "rl_control.png")
    pp = OUT / "rl_prediction.json"
    if pp.exists():
        runs = json.loads(pp.read_text())["runs"]
        envs = list(dict.fromkeys(r["env"] for r in runs.values()))
        lines += ["## Prediction: TD(λ) policy evaluation", "",
                  "MSRE of the last 3 windows of 500 steps (mean over 2 seeds) and, in brackets, the MSRE of "
                  "predicting 0 on the same steps. TD(λ) with RMSProp-normalised steps "
                  "(`rx.td_rmsprop(1e-3)`), γ = 0.9, λ = 0.9, model state reset at episode ends; "
                  "behaviour policies scripted (`rtrlax.tasks.envs.behaviour_policy`: Breakout follows "
                  "the ball, Space Invaders random, ε = 0.1); Atari Breakout through ale-py under a "
                  "uniformly random policy (frame skip 4, sticky actions 0.25, 16×16 grey features). "
                  "Budgets: " + "; ".join(f"{e}: {n} envs × {s} steps" for e, (n, s) in PREDICTION_ENVS.items())
                  + f"; {ATARI[0]}: {ATARI[1]} envs × {ATARI[2]} steps.", "",
                  "| predictor | " + " | ".join(envs) + " |", "|---|" + "---:|" * len(envs)]
        for name in PREDICTORS:
            cells = []
            for env in envs:
                rec = runs.get(f"{env} | {name}")
                if rec is None:
                    cells.append("not run")
                    continue
                m = np.nanmean([_final(r["history"], "msre") for r in rec["runs"]])
                z = np.nanmean([_final(r["history"], "msre_zero") for r in rec["runs"]])
                cells.append(f"{m:.4f} ({z:.4f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", "![prediction](rl_prediction.png)", ""]
        def draw_prediction(ax, env):
            for name in PREDICTORS:
                rec = runs.get(f"{env} | {name}")
                if rec is None:
                    continue
                h = rec["runs"][0]["history"]
                ax.plot(h["step"], np.nanmean([r["history"]["msre"] for r in rec["runs"]], 0), label=name)
            ax.set_yscale("log")

        _panels(envs, draw_prediction, "steps per environment", "MSRE", OUT / "rl_prediction.png")
    notes = OUT / "rl_notes.md"
    if notes.exists():
        lines += [notes.read_text()]
    (OUT / "rl.md").write_text("\n".join(lines) + "\n")
    print("wrote", OUT / "rl.md")


if __name__ == "__main__":
    parts = {"control": control, "prediction": prediction, "throughput": throughput, "report": report,
             "control-obs-only": lambda: control("MLP-64, observation only", OUT / "rl_control_obs_only.json")}
    for arg in sys.argv[1:] or ["throughput", "control", "prediction", "report"]:
        parts[arg]()
