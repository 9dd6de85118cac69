"""ColoR's online meta-gradient through LMS head updates: fidelity, cost, and a meta-learning run.

Two parts, each writing its part of docs/results/meta_gradient.json; ``report`` writes
docs/results/meta_gradient.md and meta_gradient.png.

  fidelity  The ColoR test bed (50 Bernoulli(½) inputs, targets U(−50, 50), episodes of
            50 steps) with a linear head learned inside the episode by LMS (step α);
            the meta-gradient dL/dθ of the episode's Σ ½e² through the inner updates, by
            the online forward-mode recursion (``rtrlax.learning.meta``) with dw/dθ kept
            dense ("dense", O(k·p)), column-local ("column", O(p)) or dropped ("none":
            the plain gradient with the head held fixed), and by truncated backprop of
            the meta-objective (windows of K steps), each against jax.grad through the
            whole unrolled process, float64, many random networks per density ρ.
            Also: time per episode of each method (jitted, vmapped over the networks,
            median of interleaved repeats), the compute the comparison is matched on.
  learn     θ learned across a stream of tasks (a new target function each episode of
            T steps; the head restarts from 0 and learns by LMS within the episode) by
            the online meta-gradient (dense and column-local) or by the plain online
            gradient of the prediction error; then held fixed and scored on new tasks:
            the head's squared error after a fixed number of LMS steps per task.
            Several seeds.

    python benchmarks/meta_gradient.py fidelity
    python benchmarks/meta_gradient.py learn
    python benchmarks/meta_gradient.py report
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import rtrlax as rx
from harness import ResultParts, machine_description as machine
from rtrlax.learning.meta import (
    exact_meta_gradient,
    meta_objective,
    online_meta_gradient,
    truncated_meta_gradient,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
JSON = RESULTS / "meta_gradient.json"




_PARTS = ResultParts(JSON)
load, save = _PARTS.load, _PARTS.save


# --- fidelity ------------------------------------------------------------------------------


def fidelity_cmd(args):
    jax.config.update("jax_enable_x64", True)
    D, T, k, alpha = args.inputs, args.steps, args.columns, args.alpha
    truncs = [int(v) for v in args.truncations.split(",")]
    methods = ["dense", "column", "none"] + [f"trunc{K}" for K in truncs]

    def episode(key, rho):
        k_cell, k_x, k_y = jax.random.split(key, 3)
        cell = rx.Columnar(D, k, density=rho, key=k_cell)
        xs = jax.random.bernoulli(k_x, 0.5, (T, D)).astype(jnp.float64)
        ys = jax.random.uniform(k_y, (T,), minval=-50.0, maxval=50.0)
        return cell, xs, ys

    def grad_fn(method):
        if method.startswith("trunc"):
            K = int(method[5:])
            return lambda c, x, y: truncated_meta_gradient(c, x, y, alpha=alpha, truncation=K)[0]
        return lambda c, x, y: online_meta_gradient(c, x, y, alpha=alpha, head=method)[0]

    out = {"config": dict(inputs=D, steps=T, columns=k, alpha=alpha, networks=args.networks,
                          machine=machine(), command=" ".join(sys.argv))}  # fmt: skip
    t0 = time.perf_counter()
    for rho in [float(v) for v in args.densities.split(",")]:
        keys = jax.random.split(jax.random.key(int(rho * 1000) + 7), args.networks)
        cells, xs, ys = eqx.filter_vmap(lambda kk: episode(kk, rho))(keys)
        ref = eqx.filter_jit(eqx.filter_vmap(lambda c, x, y: exact_meta_gradient(c, x, y, alpha=alpha)[0]))(cells, xs, ys)
        flat_ref = jax.vmap(lambda g: ravel_pytree(g)[0])(ref)
        row = {}
        for m in methods:
            f = eqx.filter_jit(eqx.filter_vmap(grad_fn(m)))
            g = jax.vmap(lambda g: ravel_pytree(g)[0])(f(cells, xs, ys))
            live = flat_ref != 0  # masked (absent) connections: zero in both
            cos = jnp.sum(g * flat_ref, 1) / (jnp.linalg.norm(g, axis=1) * jnp.linalg.norm(flat_ref, axis=1))
            sign = jnp.sum((jnp.sign(g) == jnp.sign(flat_ref)) & live, 1) / jnp.sum(live, 1)
            err = jnp.linalg.norm(g - flat_ref, axis=1) / jnp.linalg.norm(flat_ref, axis=1)
            row[m] = {n: [float(np.mean(v)), float(np.std(v))] for n, v in
                      (("cosine", cos), ("sign", sign), ("rel_error", err))}  # fmt: skip
        out[f"rho={rho:g}"] = row
        print(f"rho={rho:g}: " + ", ".join(f"{m} cos {row[m]['cosine'][0]:.3f}" for m in methods), flush=True)
        save("fidelity", out)
    # cost: µs per episode per network, all methods interleaved, ρ = 0
    keys = jax.random.split(jax.random.key(3), args.networks)
    cells, xs, ys = eqx.filter_vmap(lambda kk: episode(kk, 0.0))(keys)
    fns = {m: eqx.filter_jit(eqx.filter_vmap(grad_fn(m))) for m in methods}
    fns["exact"] = eqx.filter_jit(eqx.filter_vmap(lambda c, x, y: exact_meta_gradient(c, x, y, alpha=alpha)[0]))
    fns["forward only"] = eqx.filter_jit(eqx.filter_vmap(lambda c, x, y: meta_objective(c, x, y, alpha=alpha)[0]))
    for f in fns.values():
        jax.block_until_ready(f(cells, xs, ys))
    times = {m: [] for m in fns}
    for _ in range(args.repeats):
        for m, f in fns.items():
            s = time.perf_counter()
            jax.block_until_ready(f(cells, xs, ys))
            times[m].append((time.perf_counter() - s) / args.networks * 1e6)
    out["cost_us_per_episode"] = {m: float(np.median(v)) for m, v in times.items()}
    out["config"]["seconds"] = time.perf_counter() - t0
    print("cost (µs/episode):", {m: round(v) for m, v in out["cost_us_per_episode"].items()}, flush=True)
    save("fidelity", out)


# --- meta-learning across a stream of tasks --------------------------------------------------


def task_stream(key, d, n_features, T):
    """One task: inputs x_t Bernoulli(½); target y_t = 2 u · (x_{t−1, :n} − ½) + 0.1 noise,
    with task weights u ~ N(0, I): what matters (the previous step's first n inputs) is
    shared by all tasks — a representation worth learning — how it matters is not."""
    k_x, k_u, k_n = jax.random.split(key, 3)
    xs = jax.random.bernoulli(k_x, 0.5, (T + 1, d)).astype(jnp.float32)
    z = xs[:-1, :n_features] - 0.5
    u = jax.random.normal(k_u, (n_features,))
    ys = 2.0 * z @ u + 0.1 * jax.random.normal(k_n, (T,))
    return xs[1:], ys


def learn_cmd(args):
    d, k, T, alpha = args.inputs, args.columns, args.steps, args.alpha
    seeds = list(range(args.seeds))
    kinds = {"meta (dense W)": "dense", "meta (column W)": "column", "plain online gradient": "none"}
    opt = optax.adam(args.lr)

    def score(cell, key, n=args.test_tasks):
        """Squared error per within-task step on n new tasks, θ fixed (head from 0)."""
        xs, ys = jax.vmap(lambda kk: task_stream(kk, d, args.features, T))(jax.random.split(key, n))
        losses = jax.vmap(lambda x, y: meta_objective(cell, x, y, alpha=alpha)[1][0])(xs, ys)
        return 2 * losses.mean(0)  # e_t² averaged over tasks, [T]

    def run(kind, seed):
        cell = rx.Columnar(d, k, key=jax.random.key(100 + seed), dtype=jnp.float32)
        params, static = eqx.partition(cell, eqx.is_inexact_array)
        opt_state = opt.init(params)

        @jax.jit
        def chunk(params, opt_state, key):
            def update(carry, kk):
                params, opt_state = carry
                c = eqx.combine(params, static)
                xs, ys = jax.vmap(lambda q: task_stream(q, d, args.features, T))(jax.random.split(kk, args.batch))
                g, losses = jax.vmap(lambda x, y: online_meta_gradient(c, x, y, alpha=alpha, head=kind))(xs, ys)
                g = jax.tree_util.tree_map(lambda a: a.mean(0), g)
                upd, opt_state = opt.update(g, opt_state, params)
                return (optax.apply_updates(params, upd), opt_state), losses.mean()

            (params, opt_state), losses = jax.lax.scan(update, (params, opt_state), jax.random.split(key, args.log_every))
            return params, opt_state, losses.mean()

        test_key = jax.random.key(10_000)
        curve = [(0, float(jnp.mean(score(cell, test_key)[-args.tail:])))]
        key = jax.random.key(seed)
        for i in range(args.updates // args.log_every):
            key, sub = jax.random.split(key)
            params, opt_state, _ = chunk(params, opt_state, sub)
            err = score(eqx.combine(params, static), test_key)
            curve.append(((i + 1) * args.log_every, float(jnp.mean(err[-args.tail:]))))
        final = score(eqx.combine(params, static), test_key)
        return dict(curve=curve, final_per_step=np.asarray(final).tolist())

    out = {"config": dict(vars(args), machine=machine(), command=" ".join(sys.argv))}
    out["config"].pop("func", None)
    t0 = time.perf_counter()
    for name, kind in kinds.items():
        out[name] = [run(kind, s) for s in seeds]
        print(name, [round(r["curve"][-1][1], 3) for r in out[name]], f"({time.perf_counter() - t0:.0f} s)", flush=True)
        save("learn", out)
    out["untrained θ"] = [dict(curve=[r["curve"][0]], final_per_step=None) for r in out["plain online gradient"]]
    out["config"]["seconds"] = time.perf_counter() - t0
    save("learn", out)


# --- report --------------------------------------------------------------------------------


def report_cmd(args):
    data = load()
    lines = ["# ColoR's online meta-gradient through LMS head updates", ""]
    fid = data.get("fidelity")
    if fid:
        c = fid["config"]
        lines += [
            f"Machine: {c['machine']}. Command: `{c['command']}` ({c.get('seconds', 0):.0f} s).",
            "",
            f"Test bed: {c['inputs']} Bernoulli(½) inputs, targets U(−50, 50), episodes of {c['steps']} "
            f"steps, {c['columns']} LSTM columns (`rx.Columnar`, cross-column density ρ), a linear head "
            f"learned inside the episode by LMS (α = {c['alpha']}, w₀ = 0); meta-objective L(θ) = "
            "Σ_t ½ e_t² through the inner updates; reference: `jax.grad` through the whole unrolled "
            f"process; float64; {c['networks']} random networks per ρ (mean ± std). Methods: the online "
            "forward-mode meta-gradient with dw/dθ kept **dense** (k × p) or **column**-local (O(p)), or "
            "dropped (**none**: the plain online gradient with the head held fixed), all on ColoR's column "
            "traces; **truncK**: backprop of the meta-objective through windows of K steps. Sign agreement "
            "over parameters with a non-zero true meta-gradient; rel. error ‖g − g*‖/‖g*‖.",
            "",
        ]
        rhos = [key for key in fid if key.startswith("rho=")]
        methods = list(fid[rhos[0]].keys())
        for metric, title in (("cosine", "cosine"), ("sign", "sign agreement"), ("rel_error", "relative error")):
            lines += [f"**{title}**", "", "| ρ | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
            for r in rhos:
                lines.append(f"| {r[4:]} | " + " | ".join(
                    f"{fid[r][m][metric][0]:.3g} ± {fid[r][m][metric][1]:.2g}" for m in methods) + " |")  # fmt: skip
            lines.append("")
        cost = fid.get("cost_us_per_episode")
        if cost:
            lines += ["**Cost** (µs per episode and network, ρ = 0, vmapped over the networks, jitted, median "
                      "of interleaved repeats; `forward only` runs the inner learning without any gradient):", "",
                      "| " + " | ".join(cost) + " |", "|---" * len(cost) + "|",
                      "| " + " | ".join(f"{v:.0f}" for v in cost.values()) + " |", ""]  # fmt: skip
    lrn = data.get("learn")
    if lrn:
        c = lrn["config"]
        names = [n for n in lrn if n != "config"]
        lines += [
            "## Meta-learning across a stream of tasks",
            "",
            f"Command: `{c['command']}` ({c.get('seconds', 0):.0f} s). Each task: {c['inputs']} Bernoulli(½) "
            f"inputs x_t, target y_t = 2 u·(x_{{t−1, :{c['features']}}} − ½) + 0.1 noise (which inputs "
            "matter, one step back, is shared by all tasks: a representation worth learning; how they "
            f"matter, u ~ N(0, I), is new in each task); {c['steps']} steps per task; the head restarts at 0 and learns by LMS "
            f"(α = {c['alpha']}). θ ({c['columns']} columns, ρ = 0, float32) is updated with Adam "
            f"(lr {c['lr']}) once per batch of {c['batch']} tasks, {c['updates']} updates, by the online meta-"
            "gradient (dense or column-local dw/dθ) or by the plain online gradient of the same errors with "
            f"the head held fixed. Score: mean squared error over the last {c['tail']} steps of each of "
            f"{c['test_tasks']} new tasks (θ fixed), i.e. after {c['steps'] - c['tail']} LMS steps; "
            f"{len(lrn[names[0]])} seeds.",
            "",
            "| θ learned by | error after the inner learning (mean ± std over seeds) | per seed |",
            "|---|---|---|",
        ]
        for n in names:
            finals = [r["curve"][-1][1] for r in lrn[n]]
            lines.append(f"| {n} | {np.mean(finals):.3f} ± {np.std(finals):.3f} | "
                         + ", ".join(f"{v:.3f}" for v in finals) + " |")  # fmt: skip
        lines.append("")
    lines += ["![meta-gradient](meta_gradient.png)", ""]
    if args.notes and Path(args.notes).exists():
        lines += [Path(args.notes).read_text()]
    (RESULTS / "meta_gradient.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if fid:
        rhos = [key for key in fid if key.startswith("rho=")]
        r = [float(key[4:]) for key in rhos]
        for m in fid[rhos[0]]:
            mu = [fid[key][m]["cosine"][0] for key in rhos]
            sd = [fid[key][m]["cosine"][1] for key in rhos]
            axes[0].errorbar(r, mu, yerr=sd, marker="o", capsize=3, label=m)
        axes[0].set_xlabel("cross-column density ρ")
        axes[0].set_ylabel("cosine with jax.grad through the inner learning")
        axes[0].legend(fontsize=8)
    if lrn:
        for n in [n for n in lrn if n not in ("config", "untrained θ")]:
            curves = np.array([[v for _, v in r["curve"]] for r in lrn[n]])
            steps = [s for s, _ in lrn[n][0]["curve"]]
            axes[1].plot(steps, curves.mean(0), label=n)
            axes[1].fill_between(steps, curves.min(0), curves.max(0), alpha=0.2)
        axes[1].set_xlabel("outer updates of θ")
        axes[1].set_ylabel("error after the within-task LMS steps")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "meta_gradient.png", dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fidelity")
    f.add_argument("--networks", type=int, default=20)
    f.add_argument("--columns", type=int, default=20)
    f.add_argument("--inputs", type=int, default=50)
    f.add_argument("--steps", type=int, default=50)
    f.add_argument("--alpha", type=float, default=0.01)
    f.add_argument("--densities", default="0,0.1,0.2,0.3,0.5")
    f.add_argument("--truncations", default="1,5,10")
    f.add_argument("--repeats", type=int, default=5)
    f.set_defaults(func=fidelity_cmd)
    g = sub.add_parser("learn")
    g.add_argument("--seeds", type=int, default=3)
    g.add_argument("--columns", type=int, default=10)
    g.add_argument("--inputs", type=int, default=8)
    g.add_argument("--features", type=int, default=4)
    g.add_argument("--steps", type=int, default=30)
    g.add_argument("--tail", type=int, default=10)
    g.add_argument("--alpha", type=float, default=0.1)
    g.add_argument("--lr", type=float, default=3e-3)
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--updates", type=int, default=1000)
    g.add_argument("--log-every", type=int, default=100)
    g.add_argument("--test-tasks", type=int, default=500)
    g.set_defaults(func=learn_cmd)
    r = sub.add_parser("report")
    r.add_argument("--notes", default=str(RESULTS / "meta_gradient_notes.md"))
    r.set_defaults(func=report_cmd)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
