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
    "CartPole-PO": (dict(env="CartPole-PO"), 64, 8000),
    "MemoryChain (memory 6)": (dict(env="MemoryChain-bsuite", memory_length=6), 64, 2500),
    "Breakout-MinAtar": (dict(env="Breakout-MinAtar"), 64, 1000),
    "SpaceInvaders-MinAtar": (dict(env="SpaceInvaders-MinAtar"), 64, 1000),
}
#: the first session's runs (raw rewards and features): kept for the before/after table
CONTROL_V1 = OUT / "rl_control_v1.json"
SEEDS = (0, 1, 2)

PREDICTION_ENVS = {"Breakout-MinAtar": (4, 10000), "SpaceInvaders-MinAtar": (4, 10000)}
PRED_CHUNK = 1000  #: chunk = MSRE window = timed chunk of the cost measurement (one compile each)
#: the CCN's stages: 20 columns, 4 per stage, a new stage every fifth of the run
CCN_STAGES = f"20:4:{PREDICTION_ENVS['Breakout-MinAtar'][1] // 5}"
#: prediction, compute-matched: family -> {name: run_predict kwargs} (sizes to choose from).
#: The reference is ColoR columnar-16; ``prediction-cost`` measures every candidate's time
#: per step and ``prediction`` runs, per family, the candidate closest to the reference.
REFERENCE = "ColoR columnar-16"
PREDICTOR_FAMILIES = {
    "ColoR columnar": {REFERENCE: dict(estimator="color", cell="columnar", hidden=16)},
    "CCN": {"CCN 20:4 (ColoR)": dict(estimator="color", stages=CCN_STAGES, reset_state=False)},
    "SnAp-1 LSTM": {f"SnAp-1 LSTM-{h}": dict(estimator="snap:1", cell="lstm", hidden=h) for h in (8, 16)},
    "RTRL GRU": {f"RTRL GRU-{h}": dict(estimator="rtrl", cell="gru", hidden=h) for h in (4, 8)},
    "online LRU": {f"online LRU 2x{h}": dict(estimator="onlinelru", cell="lru", network="lrunet", hidden=h,
                                             layers=2) for h in (8, 16)},
    "TBPTT(8) LSTM": {f"TBPTT(8) LSTM-{h}": dict(estimator="tbptt:8", cell="lstm", hidden=h) for h in (4, 8)},
}
PREDICTORS = {n: kw for fam in PREDICTOR_FAMILIES.values() for n, kw in fam.items()}
#: the first session's Atari rows (not compute-matched) stay in this file
PREDICTION_V1 = OUT / "rl_prediction_v1.json"


def _load():
    import os

    return os.getloadavg()


#: the same-budget ablation on CartPole-PO: these agents with raw features and rewards
RAW_AGENTS = ("SnAp-1 GRU-32", "memoryless MLP-64", "MLP-64, observation only")


def control(only=None, path: Path = OUT / "rl_control.json", envs=None, raw: bool = False) -> None:
    """All control runs not yet in ``path`` (``only``: just that agent; ``envs``: just
    those environments).  Observation normalisation and reward scaling on (``run_rl``'s
    defaults) for every agent; ``raw=True`` turns both off."""
    from rtrlax.experiments.rl import run_rl

    results = {}
    if path.exists():
        results = json.loads(path.read_text())["runs"]
    for env_label, (env_kw, n_envs, steps) in CONTROL_ENVS.items():
        if envs is not None and env_label not in envs:
            continue
        for name, kw in AGENTS.items():
            key = f"{env_label} | {name}"
            if key in results or (only is not None and name not in only):
                continue
            runs = []
            for seed in SEEDS:
                t0 = time.perf_counter()
                r = run_rl(**env_kw, **kw, num_envs=n_envs, steps=steps, chunk=steps // 20, seed=seed,
                           normalize_obs=not raw, scale_reward=not raw)
                runs.append({"history": r["history"], "seconds": time.perf_counter() - t0})
                print(f"{key} seed {seed}: final return {r['history']['return'][-1]:.2f} "
                      f"({runs[-1]['seconds']:.1f} s, load {_load()[0]:.1f})", flush=True)
            results[key] = {"env": env_label, "agent": name, "num_envs": n_envs, "steps": steps, "runs": runs}
            path.write_text(json.dumps({"runs": results, "load": _load()}, indent=1))


def prediction_cost(repeats: int = 3, steps: int = PRED_CHUNK) -> None:
    """Time per environment step (µs) of every candidate predictor on Breakout-MinAtar with
    4 environments (whole TD(λ) step: environment, behaviour policy, model, estimator,
    update), alternately in one process, median of ``repeats`` chunks after a compile."""
    import jax

    from rtrlax.experiments.rl import run_predict

    n_envs = PREDICTION_ENVS["Breakout-MinAtar"][0]
    agents = {}
    for name, kw in PREDICTORS.items():
        r = run_predict(env="Breakout-MinAtar", **kw, num_envs=n_envs, steps=1, chunk=1, window=1)
        agents[name] = (r["agent"], r["state"])
        jax.block_until_ready(r["agent"].run(r["state"], steps, chunk=steps)[0].params)  # compile
        print("compiled", name, flush=True)
    times = {name: [] for name in agents}
    for _ in range(repeats):
        for name, (agent, state) in agents.items():
            t0 = time.perf_counter()
            jax.block_until_ready(agent.run(state, steps, chunk=steps)[0].params)
            times[name].append(time.perf_counter() - t0)
    rows = {name: 1e6 * statistics.median(t) / (steps * n_envs) for name, t in times.items()}
    for name, us in rows.items():
        print(f"{name}: {us:.1f} µs per env step", flush=True)
    (OUT / "rl_prediction_cost.json").write_text(json.dumps(
        {"us_per_env_step": rows, "env": "Breakout-MinAtar", "num_envs": n_envs, "steps": steps,
         "repeats": repeats, "load": _load()}, indent=1))


def matched_predictors() -> dict[str, float]:
    """Per family, the candidate whose measured cost is closest (in ratio) to the
    reference's: ``{name: µs per env step}``."""
    cost = json.loads((OUT / "rl_prediction_cost.json").read_text())["us_per_env_step"]
    ref = cost[REFERENCE]
    pick = {}
    for fam in PREDICTOR_FAMILIES.values():
        name = min(fam, key=lambda n: abs(np.log(cost[n] / ref)))
        pick[name] = cost[name]
    return pick


def prediction() -> None:
    from rtrlax.experiments.rl import run_predict

    results = {}
    path = OUT / "rl_prediction.json"
    if path.exists():
        results = json.loads(path.read_text())["runs"]
    if not (OUT / "rl_prediction_cost.json").exists():
        prediction_cost()  # same process, same chunk: the runs below reuse its compiled steps
    names = list(matched_predictors())
    jobs = [(env, n, steps, name) for env, (n, steps) in PREDICTION_ENVS.items() for name in names]
    for env, n, steps, name in jobs:
        key = f"{env} | {name}"
        if key in results:
            continue
        runs = []
        for seed in SEEDS[:2]:
            t0 = time.perf_counter()
            r = run_predict(env=env, **PREDICTORS[name], num_envs=n, steps=steps, chunk=PRED_CHUNK,
                            window=PRED_CHUNK,
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


def _final(hist, key, frac=0.3):
    """Mean of the finite values in the last ``frac`` of the chunks."""
    tail = max(1, int(round(frac * len(hist[key]))))
    v = [x for x in hist[key][-tail:] if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _return_cell(rec) -> str:
    """A table cell: mean ± std over seeds of the final return of one run record."""
    if rec is None:
        return "not run"
    finals = [_final(r["history"], "return") for r in rec["runs"]]
    return f"{np.nanmean(finals):.2f} ± {np.nanstd(finals):.2f}"


def _mean_final(rec, key):
    return float(np.nanmean([_final(r["history"], key) for r in rec["runs"]]))


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
                  "eligibility traces + Adam update **every step**, observation normalisation and reward "
                  "scaling on (`run_rl`'s defaults), against the same agent acting only "
                  "(forward pass and sampling, normalised with the frozen statistics). Median of 5 timed chunks, learning and acting "
                  "alternately in one process, after a compile run.", "",
                  "| environments | learning (env steps/s) | acting only (env steps/s) | learning cost / acting | load avg (1 min) |",
                  "|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['num_envs']} | {r['learn_sps']:,.0f} | {r['act_sps']:,.0f} | "
                         f"{r['ratio']:.1f}x | {r['load'][0]:.1f} |")
        lines.append("")
    cp = OUT / "rl_control.json"
    if cp.exists():
        runs = json.loads(cp.read_text())["runs"]
        lines += ["## Control: streaming actor-critic", "",
                  "Return of the episodes that ended in the last 30% of the run (mean ± std over "
                  f"{len(SEEDS)} seeds; seeds {', '.join(map(str, SEEDS))}), equal environment steps per "
                  "agent, the same hyper-parameters for every agent (no per-agent tuning): Adam 3e-3, "
                  "γ = 0.99, λ = 0.9, entropy 0.01, an update every step, **observation normalisation and "
                  "reward scaling on** (running mean/std of the features; rewards divided by the running "
                  "std of the discounted return — `run_rl`'s defaults since this run), trunk input = "
                  "[observation, previous action one-hot, previous reward]. 'MLP-64, observation only' is "
                  "*the* memoryless baseline (it sees o_t alone); 'memoryless MLP-64' is fed the previous "
                  "action and reward like the recurrent trunks and is kept as an extra row: a feed-forward "
                  "policy fed its own previous action can keep a bit of memory in it (it solved "
                  "MemoryChain on 1 seed of 3 in the first session that way). Budgets: " + "; ".join(
                      f"{k}: {n} envs × {s} steps = {n * s:,} env steps" for k, (_, n, s) in CONTROL_ENVS.items())
                  + f". Load average during the runs: {json.loads(cp.read_text()).get('load', [float('nan')])[0]:.1f} "
                  "(1 min, at the end).", ""]
        envs = list(CONTROL_ENVS)
        lines += ["| agent | " + " | ".join(envs) + " |", "|---|" + "---:|" * len(envs)]
        for name in AGENTS:
            cells = []
            for env in envs:
                cells.append(_return_cell(runs.get(f"{env} | {name}")))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("![control](rl_control.png)")
        lines.append("")
        if CONTROL_V1.exists():
            old = json.loads(CONTROL_V1.read_text())["runs"]
            lines += ["**Before and after the fix** on CartPole-PO. First column: the first session's runs "
                      "(raw features and rewards, 32 envs × 15,000 steps = 480k env steps, 15,000 updates, last "
                      "30% of 10 chunks, 3 seeds). Second: `benchmarks/rl.py control-raw`, raw features and "
                      "rewards (`--no-normalize-obs --no-scale-reward`) at this run's budget and seeds, for "
                      "three agents. Third: the table above.", "",
                      "| agent | CartPole-PO, raw (480k) | raw, same budget as this run | "
                      "CartPole-PO, normalised + scaled (this run) |",
                      "|---|---:|---:|---:|"]
            raw_path = OUT / "rl_control_raw.json"
            same = json.loads(raw_path.read_text())["runs"] if raw_path.exists() else {}
            for name in AGENTS:
                row = []
                for src in (old, same, runs):
                    row.append(_return_cell(src.get(f"CartPole-PO | {name}")))
                lines.append(f"| {name} | " + " | ".join(row) + " |")
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
        cost = json.loads((OUT / "rl_prediction_cost.json").read_text())
        envs = list(PREDICTION_ENVS)
        names = list(dict.fromkeys(r["agent"] for r in runs.values()))
        lines += ["## Prediction: TD(λ) policy evaluation, compute-matched", "",
                  "**Compute match.** `benchmarks/rl.py prediction-cost` times one whole TD(λ) step "
                  f"(environment, behaviour policy, model, estimator, update; {cost['num_envs']} environments, "
                  f"median of {cost['repeats']} chunks of {cost['steps']} steps, all candidates alternately "
                  f"in one process, load average {cost['load'][0]:.1f}) for several sizes of each "
                  f"predictor family on {cost['env']}; `prediction` then runs, per family, the size whose "
                  f"cost is closest to the reference ({REFERENCE}). Measured costs (µs per environment "
                  "step; the chosen size in bold):", "",
                  "| candidate | µs / env step | cost / reference |", "|---|---:|---:|"]
        ref = cost["us_per_env_step"][REFERENCE]
        for name, us in cost["us_per_env_step"].items():
            label = f"**{name}**" if name in names else name
            lines.append(f"| {label} | {us:.1f} | {us / ref:.2f} |")
        lines += ["", f"MSRE over the last 30% of the windows of {PRED_CHUNK:,} steps (mean ± std over 2 seeds, "
                  "seeds 0 and 1) and, in brackets, the MSRE of predicting 0 on the same steps. TD(λ) with "
                  "RMSProp-normalised steps (`rx.td_rmsprop(1e-3)`), γ = 0.9, λ = 0.9, model state reset at "
                  "episode ends (the CCN keeps its state running: its stages follow its step count); "
                  "behaviour policies scripted (`rtrlax.tasks.envs.behaviour_policy`: Breakout follows the "
                  "ball, Space Invaders random, ε = 0.1). Budgets: " + "; ".join(
                      f"{e}: {n} envs × {s:,} steps" for e, (n, s) in PREDICTION_ENVS.items())
                  + f"; the CCN adds 4 columns every {int(CCN_STAGES.split(':')[2]):,} steps.", "",
                  "| predictor | µs / env step | " + " | ".join(envs) + " |",
                  "|---|---:|" + "---:|" * len(envs)]
        for name in names:
            cells = []
            for env in envs:
                rec = runs.get(f"{env} | {name}")
                if rec is None:
                    cells.append("not run")
                    continue
                m = [_final(r["history"], "msre") for r in rec["runs"]]
                z = np.nanmean([_final(r["history"], "msre_zero") for r in rec["runs"]])
                cells.append(f"{np.nanmean(m):.4f} ± {np.nanstd(m):.4f} ({z:.4f})")
            lines.append(f"| {name} | {cost['us_per_env_step'][name]:.1f} | " + " | ".join(cells) + " |")
        lines += ["", "![prediction](rl_prediction.png)", ""]
        if PREDICTION_V1.exists():
            old = json.loads(PREDICTION_V1.read_text())["runs"]
            atari = {k: v for k, v in old.items() if v["env"].startswith("atari-")}
            if atari:
                lines += ["Atari Breakout through ale-py (the first session's runs, **not** compute-matched "
                          "and not re-run: uniformly random behaviour policy, frame skip 4, sticky actions "
                          "0.25, 16×16 grey features, 2 envs × 2,000 steps, 2 seeds, windows of 500 steps): "
                          + "; ".join(f"{v['agent']} {_mean_final(v, 'msre'):.4f}" for v in atari.values())
                          + f" against predicting zero {_mean_final(next(iter(atari.values())), 'msre_zero'):.4f}.",
                          ""]

        def draw_prediction(ax, env):
            for name in names:
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
             "prediction-cost": prediction_cost,
             "control-raw": lambda: control(RAW_AGENTS, OUT / "rl_control_raw.json", ("CartPole-PO",),
                                            raw=True),
             "control-small": lambda: control(envs=("CartPole-PO", "MemoryChain (memory 6)")),
             "control-minatar": lambda: control(envs=("Breakout-MinAtar", "SpaceInvaders-MinAtar"))}
    for arg in sys.argv[1:] or ["throughput", "control", "prediction", "report"]:
        parts[arg]()
