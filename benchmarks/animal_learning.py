"""Animal-learning benchmark: MSRE of TD(λ) predictors on trace patterning.

Methods (all TD(λ), γ = 0.9, λ = 0.99, RMSProp-normalised steps, float32):
  columnar       20 columns, ColoR (the fused ColumnarTD path)
  constructive   "10:1:<steps/10>"  ColoR on a Constructive network (generic path)
  ccn            "20:4:<steps/5>"   ColoR on a Constructive network (generic path)
  snap1-lstm     SnAp-1 on a dense LSTM (hidden 10)
  tbptt-T:H      online T-BPTT(T) on a dense LSTM with H units (compute-matched pairs)

Seeds run as independent streams and models batched with vmap.  The stream is made of
fixed blocks of ``--block`` steps so that the true return G_t = Σ_j γ^j US_{t+1+j} of a
chunk is computed exactly from the next block (a peek that the next chunk regenerates
identically; the sum is cut after ``block`` steps, γ^block ≈ 0).  MSRE is logged per
``--log`` steps; the final number is the mean over the last ``--log`` steps.

    python benchmarks/animal_learning.py --steps 2000000 --seeds 3 \\
        --methods columnar,ccn,constructive,snap1-lstm,tbptt-10:5 --out docs/results/animal_learning.json
    python benchmarks/animal_learning.py --report docs/results/animal_learning.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import rtrlax as rx
from rtrlax.cells.columnar import columnar_network
from rtrlax.estimators.color import ColoR
from rtrlax.learning.td import ColumnarTD, TDLambda, td_rmsprop
from rtrlax.nets.ccn import Constructive
from rtrlax.tasks.animal import discounted_return, trace_patterning

F32 = jnp.float32
TBPTT_PAIRS = ["13:2", "3:10", "5:8", "8:5", "10:5", "15:4", "20:3", "30:2"]


def make_learner(method: str, input_size: int, steps: int, lr: float, gamma: float, lam: float):
    """``(learner, init(key) -> learner state)`` for one method."""
    if method == "columnar":
        fused = ColumnarTD(lr, gamma=gamma, lam=lam)
        return fused, lambda k: fused.init(columnar_network(input_size, 20, key=k, dtype=F32))
    if method in ("constructive", "ccn"):
        spec = (10, 1, max(1, steps // 10)) if method == "constructive" else (20, 4, max(1, steps // 5))
        td = TDLambda(ColoR(), td_rmsprop(lr), gamma=gamma, lam=lam)
        return td, lambda k: td.init(Constructive(input_size, spec, key=k, dtype=F32))
    if method == "snap1-lstm":
        td = TDLambda(rx.SnAp(1), td_rmsprop(lr), gamma=gamma, lam=lam)
        hidden = 10
    elif method.startswith("tbptt-"):
        T, hidden = (int(v) for v in method[len("tbptt-"):].split(":"))
        td = TDLambda(rx.TBPTT(T), td_rmsprop(lr), gamma=gamma, lam=lam)
    else:
        raise ValueError(f"unknown method {method!r}")

    def init(k):
        k1, k2 = jax.random.split(k)
        net = rx.Readout(rx.LSTM(input_size, hidden, key=k1, dtype=F32), 1, key=k2, zero_init=True)
        return td.init(net)

    return td, init


def make_chunk(learner, env, block: int, blocks: int):
    def one_block(es):
        return env.generate(es, block)

    def chunk(ls, es):
        def body(carry, _):
            ls, es = carry
            es, smp = one_block(es)
            ls, ys = learner.run(ls, smp.x, smp.cumulant)
            return (ls, es), (ys, smp.cumulant)

        (ls, es), (ys, cs) = jax.lax.scan(body, (ls, es), None, length=blocks)
        _, peek = one_block(es)  # the next chunk regenerates exactly this block
        n = block * blocks
        g = discounted_return(jnp.concatenate([cs.reshape(-1), peek.cumulant]), env.gamma)[:n]
        err = (g - ys.reshape(-1)) ** 2
        return ls, es, jnp.mean(err), jnp.mean(g**2)

    return jax.jit(jax.vmap(chunk))


def run_method(method, args):
    env = trace_patterning(isi=tuple(args.isi), gamma=args.gamma)
    learner, init = make_learner(method, env.input_size, args.steps, args.lr, args.gamma, args.lam)
    keys = jax.random.split(jax.random.key(args.seed0), args.seeds)
    ls = jax.vmap(init)(keys)
    es = jax.vmap(env.init)(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
    blocks = args.log // args.block
    chunk = make_chunk(learner, env, args.block, blocks)
    curve, zero = [], []
    t0 = time.perf_counter()
    for i in range(args.steps // args.log):
        ls, es, msre, g2 = chunk(ls, es)
        curve.append(np.asarray(msre).tolist())
        zero.append(np.asarray(g2).tolist())
        if i == 0:
            t_first = time.perf_counter() - t0
        print(f"{method} step {(i + 1) * args.log}: MSRE {np.mean(curve[-1]):.5f}", flush=True)
    wall = time.perf_counter() - t0
    return dict(method=method, curve=curve, zero=zero, wall_s=wall, first_chunk_s=t_first,
                steps=args.steps, seeds=args.seeds, log=args.log, lr=args.lr,
                steps_per_s=args.steps * args.seeds / max(wall - t_first, 1e-9) * (1 - 1 / len(curve))
                if len(curve) > 1 else None)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, jax {jax.__version__}"


def report(paths: list[str], md_path: str, png_path: str):
    datas = [json.load(open(p)) for p in paths]
    data = datas[0]
    rows = [r for d in datas for r in d["results"]]
    lines = [
        "# Animal learning: trace patterning, TD(λ) prediction",
        "",
        f"Machine: {data['machine']} — **shared with up to 5 other agents** while this ran, so "
        "wall-clock numbers are noisy.",
        "",
        "Commands: " + "; ".join(f"`{d['command']}`" for d in datas),
        "",
        f"Setting: trace patterning, ISI U{data['args']['isi']}, ITI U[80, 120], γ = {data['args']['gamma']}, "
        f"λ = {data['args']['lam']}, RMSProp-normalised TD(λ) (β₂ = 0.9999) with the step size α "
        "in the table (not tuned per method), float32, "
        f"{data['args']['steps']:,} steps, {data['args']['seeds']} seeds (independent streams and "
        f"networks, batched with vmap). MSRE = mean (G_t − ŷ_t)² over the last "
        f"{data['args']['log']:,} steps; ± is the standard deviation over seeds. "
        "'Predict zero' is the MSRE of ŷ = 0 on the same streams.",
        "",
        "| method | α | final MSRE | ± | predict zero | steps/s (all seeds) | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        final = np.array(r["curve"][-1])
        zero = np.array(r["zero"][-1])
        sps = r.get("steps_per_s")
        lines.append(f"| {r['method']} | {r['lr']:g} | {final.mean():.4f} | {final.std():.4f} | "
                     f"{zero.mean():.4f} | {sps or 0:,.0f} | {r['wall_s']:.0f} |")
    lines += ["", "![MSRE over training](animal_learning.png)", ""]
    open(md_path, "w").write("\n".join(lines) + "\n" + data.get("notes", ""))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        c = np.array(r["curve"])
        x = (np.arange(len(c)) + 1) * r["log"]
        ax.plot(x, c.mean(1), label=f"{r['method']} α={r['lr']:g}")
    zero = np.mean([np.mean(r["zero"]) for r in rows])
    ax.axhline(zero, color="k", ls=":", label="predict zero")
    ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.set_ylabel(f"MSRE (mean over last {rows[0]['log']:,} steps)")
    ax.legend(fontsize=7)
    ax.set_title("Trace patterning, TD(λ)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="columnar,ccn,constructive,snap1-lstm,"
                   + ",".join("tbptt-" + t for t in TBPTT_PAIRS))
    p.add_argument("--steps", type=int, default=2_000_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--lam", type=float, default=0.99)
    p.add_argument("--isi", type=int, nargs=2, default=[14, 26])
    p.add_argument("--block", type=int, default=1000)
    p.add_argument("--log", type=int, default=100_000)
    p.add_argument("--out", default="docs/results/animal_learning.json")
    p.add_argument("--report", nargs="+", default=None,
                   help="only write docs/results/animal_learning.{md,png} from these json files")
    args = p.parse_args(argv)
    if args.report:
        report(args.report, "docs/results/animal_learning.md", "docs/results/animal_learning.png")
        return
    if args.log % args.block or args.steps % args.log:
        sys.exit("--log must be a multiple of --block and --steps a multiple of --log")
    data = dict(machine=machine(), command="python " + " ".join(sys.argv), args=vars(args), results=[])
    if os.path.exists(args.out):
        old = json.load(open(args.out))
        if old.get("args", {}).get("steps") == args.steps:
            data["results"] = [r for r in old["results"]]
    for method in args.methods.split(","):
        data["results"] = [r for r in data["results"] if r["method"] != method]
        data["results"].append(run_method(method, args))
        json.dump(data, open(args.out, "w"))
    base = args.out[: -len(".json")]
    report([args.out], base + ".md", base + ".png")


if __name__ == "__main__":
    main()
