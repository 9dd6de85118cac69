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
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rtrlax.nets.columnar import columnar_network
from harness import command_line, machine_description as machine, markdown_table, save_figure, time_alternating, write_results
from rtrlax.estimators.color import ColoR
from rtrlax.experiments.prediction import TBPTT_PAIRS, make_td_learner
from rtrlax.learning.ccn_td import CCNTD
from rtrlax.learning.td import ColumnarTD, TDLambda, msre_chunk, td_rmsprop
from rtrlax.nets.ccn import Constructive
from rtrlax.tasks.animal import trace_patterning

F32 = jnp.float32
TP_JSON = "docs/results/animal_throughput.json"


def _throughput_section(path):
    if not os.path.exists(path):
        return []
    d = json.load(open(path))
    res = d["results"]
    lines = [
        "## Throughput and memory: 20 columns, fused ColoR + TD(λ), trace patterning (float32)",
        "",
        f"Command: `{d['command']}`. Machine: {d['machine']}; "
        + (f"load average {d['load']} (1, 5, 15 min) when the file was last written. " if "load" in d else
           "shared with up to 5 other agents (load average 8–17 on 2 cores while this ran). ")
        + "Each repeat is one jitted `lax.scan` of `--tp-chunk` steps (environment + learner "
        "inside the scan), after a compile run; median of the repeats. Reported: the "
        "wall-clock rate, and *steps per CPU-second* (process CPU time, all threads), which "
        "is below the wall rate when XLA spreads a step over both cores.",
        "",
        "One stream runs the single-stream state. A batch of streams runs ColumnarTD's "
        "streams-last state (`init(model, streams=n)`: the stream axis innermost)"
        + (f", split over {d['devices']} CPU devices (`jax_num_cpu_devices`, one per core, "
           "`jax.shard_map` over the stream axis): each core runs its half of the streams as its "
           "own loop instead of XLA splitting — and re-joining — every small kernel of the step "
           "across both cores." if d.get("devices", 1) > 1 else "."),
        "",
        "| streams | steps/s (wall, all streams) | steps per CPU-second (all streams) | CPU µs per stream-step |",
        "|---|---|---|---|",
    ]
    for k, v in res.items():
        if k == "long":
            continue
        lines.append(f"| {k} | {v['steps_per_s']:,.0f} | {v['steps_per_cpu_s']:,.0f} | "
                     f"{1e6 / v['steps_per_cpu_s']:.1f} |")
    if "long" in res:
        long = res["long"]
        rss = long["rss"]
        first, last = rss[0], rss[-1]
        mx = max(r[1] for r in rss)
        lines += ["", f"Memory over a long single-stream run: {long['steps']:,} steps"
                  + (" (run still in progress when this file was written)" if long.get("partial") else "")
                  + f"; RSS after {first[0]:,} steps {first[1]:.1f} MiB, after {last[0]:,} steps "
                  f"{last[1]:.1f} MiB, maximum {mx:.1f} MiB.", ""]
    return lines


#: discussion appended to the generated tables (numbers quoted from the runs above)
NOTES = """
## Discussion

**Ordering.** Measured here (ISI U[14, 26], 2M steps, **5 seeds** — two from the first
runs, `--seed0 0 --seeds 2`, three from `seeds3.json`, `--seed0 1 --seeds 3`, pooled —
one untuned step size α = 1e-3 for all methods, the same streams for every method),
final MSRE mean ± std over seeds: T-BPTT(15) LSTM-4 0.0041 ± 0.0017 ≈ columnar-20 / ColoR
0.0043 ± 0.0006 ≈ T-BPTT(8) LSTM-5 0.0047 ± 0.0018 ≈ SnAp-1 on a dense LSTM-10
0.0048 ± 0.0021 < CCN 20:4 0.0077 ± 0.0031 ≈ T-BPTT(20) LSTM-3 0.0081 ≈ T-BPTT(30)
LSTM-2 0.0086 ≈ T-BPTT(13) LSTM-2 0.0093 < T-BPTT(10) LSTM-5 0.0114 < T-BPTT(3) LSTM-10
0.0129 < constructive 10:1 0.0140 ± 0.0022 ≈ T-BPTT(5) LSTM-8 0.0143; predicting zero
gives 0.0224.  The papers report CCN ≤ columnar/constructive < T-BPTT at equal compute.
**Ours agrees only in part**: columnar is as good as the best compute-matched T-BPTT
pairs (15:4, 8:5 — within one standard deviation, with a third of their seed spread) and
clearly better than the other six; CCN beats three pairs, ties four and loses to the best
two and to columnar; constructive ties the weakest pair — in our runs each of its ten
one-column stages gets only 200k steps before it is frozen (the papers give stages
millions of steps).  SnAp-1 on a dense LSTM — not in the papers' comparison in this
form — is with the best group.  The T-BPTT results are not monotone in the truncation
(8:5 and 15:4 good, 10:5 and 5:8 poor), and α was not tuned per method.

**Throughput targets** (table above). Single stream: 140k environment steps/s with fused
ColoR + TD(λ) on 20 columns (135k–212k over this session's runs; target ≥ 100k: met).
Summed over a batch of streams split over the two cores: 527k/s at 32, 548k/s at 64,
498k/s at 128 streams (target ≥ 500k: met at 32 and 64 streams, just under at 128; the
machine is shared and these figures move by ±10 % between runs).  Two changes got
there from 279k/s: ColumnarTD's streams-last state (the stream axis innermost, so every
element-wise loop runs over a long contiguous axis; ≈ 400k/s on its own) and one CPU
device per core (`jax_num_cpu_devices` + `jax.shard_map` over streams), so each core
runs its own loop instead of XLA splitting and re-joining every one of the step's ≈ 90
small kernels across both.  8 streams split in two are slower than one stream (too
little work per kernel per core).
Memory is flat: RSS 640.83 → 640.83 MiB over 10M single-stream steps.

**What is missing.** 5 seeds at 2M steps (2 for the 0.5M/1M constructive and 1M CCN runs); no per-method step-size search.  ISI U[24, 36] (the CCN paper's harder setting, which the
ANCHORS reference numbers use) was run for three methods only, 2M steps, 2 seeds
(`python benchmarks/animal_learning.py --seeds 2 --steps 2000000 --isi 24 36 --methods
columnar,tbptt-10:5,ccn`, raw results in `docs/results/animal_isi24.json`): columnar
0.0058 ± 0.0016, T-BPTT(10, 5) 0.0169 ± 0.0002, CCN 20:4 0.0186 ± 0.0006, predicting zero
0.0201.  The reference C++ code (5 seeds) gives columnar 0.0092 ± 0.0063, CCN
0.0113 ± 0.0048, T-BPTT(10, 5) 0.0115 ± 0.0048, zero 0.0205: our columnar/ColoR is at
least as good, our CCN and T-BPTT are clearly worse there (close to predicting zero) —
with α = 1e-3 untuned for them, this is not yet a like-for-like comparison.  The raw
per-run JSON files are in
`docs/results/animal_runs/`; regenerate this page with
`python benchmarks/animal_learning.py --report docs/results/animal_runs/*.json`.
"""


def make_learner(method, input_size, steps, lr, gamma, lam):
    return make_td_learner(method, input_size, steps, lr, gamma=gamma, lam=lam)


def make_chunk(learner, env, block, blocks):
    return jax.jit(jax.vmap(msre_chunk(learner, env, block=block, blocks=blocks)))


def streams_chunk(env, fused, n: int):
    """``(fused_state, env_states) -> (fused_state, env_states, last outputs)``: ``n`` steps
    of a batch of streams in ``ColumnarTD``'s streams-last layout (faster on CPU than
    vmap), the uniforms drawn once per chunk (also the "existing split" of scaling.py)."""

    def chunk_streams(fs, es):
        keys, subs = jnp.moveaxis(jax.vmap(jax.random.split)(es.key), 1, 0)
        us = jax.vmap(lambda k: jax.random.uniform(k, (n, env.n_uniforms)), out_axes=1)(subs)

        def body(c, u):
            fs, es = c
            es, smp = jax.vmap(env.step_with)(es, u)
            fs, y = fused.step(fs, smp.x.T, smp.cumulant)
            return (fs, es), y

        (fs, es), ys = jax.lax.scan(body, (fs, es._replace(key=keys)), us)
        return fs, es, ys[-1]

    return chunk_streams


def throughput(args):
    """Steps/s of the fused ColoR + TD(λ) step (20 columns, trace patterning, float32),
    single stream and a batch of streams, and the RSS over a long run."""
    import resource

    env = trace_patterning(gamma=args.gamma)
    fused = ColumnarTD(args.lr, gamma=args.gamma, lam=args.lam)
    net = columnar_network(env.input_size, 20, key=jax.random.key(0), dtype=F32)
    n = args.tp_chunk

    def chunk(fs, es):
        key, sub = jax.random.split(es.key)
        us = jax.random.uniform(sub, (n, env.n_uniforms))

        def body(c, u):
            fs, es = c
            es, smp = env.step_with(es, u)
            fs, y = fused.step(fs, smp.x, smp.cumulant)
            return (fs, es), y

        (fs, es), ys = jax.lax.scan(body, (fs, es._replace(key=key)), us)
        return fs, es, ys[-1]

    chunk_streams = streams_chunk(env, fused, n)

    out = {}
    for batch in [1] + [int(b) for b in args.tp_batches.split(",")]:
        if batch == 1:
            fs, es, run = fused.init(net), env.init(jax.random.key(1)), jax.jit(chunk)
        else:
            fs = fused.init(net, streams=batch)
            es = jax.vmap(env.init)(jax.random.split(jax.random.key(1), batch))
            fs, es, run = _over_devices(chunk_streams, fs, es, args.tp_devices)
        fs, es, y = run(fs, es)
        y.block_until_ready()
        walls, cpus = [], []
        for _ in range(args.tp_repeats):
            t, c = time.perf_counter(), time.process_time()
            fs, es, y = run(fs, es)
            y.block_until_ready()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out[batch] = dict(wall=float(np.median(walls)), cpu=float(np.median(cpus)),
                          steps_per_s=n * batch / float(np.median(walls)),
                          steps_per_cpu_s=n * batch / float(np.median(cpus)),
                          all_steps_per_s=[n * batch / w for w in walls])
        print(batch, out[batch], flush=True)
        _dump(args, out)
    # memory over a long single-stream run
    fs, es, run = fused.init(net), env.init(jax.random.key(2)), jax.jit(chunk)
    rss = []
    done = 0
    t0 = time.perf_counter()
    while done < args.tp_long:
        fs, es, y = run(fs, es)
        y.block_until_ready()
        done += n
        rss.append((done, _rss_mib()))
        if len(rss) % 10 == 0:
            out["long"] = dict(steps=done, wall=time.perf_counter() - t0, rss=rss, partial=True)
            _dump(args, out)
    out["long"] = dict(steps=done, wall=time.perf_counter() - t0, rss=rss,
                       peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       finite=bool(np.all(np.isfinite(np.asarray(y)))))
    print("long", out["long"]["steps"], out["long"]["wall"], rss[0], rss[-1], flush=True)
    _dump(args, out)


def ccn_throughput(args):
    """Single-stream steps/s on trace patterning (float32), timed alternately in one
    process: the fused columnar step (7 and 20 columns), CCN 20:4 through the generic
    ``TDLambda(ColoR(), td_rmsprop)`` and through the fused :class:`CCNTD` — in its
    first stage (every stage still traced) and in its last (4 of 5 stages frozen)."""
    env = trace_patterning(gamma=args.gamma)
    n = args.tp_chunk

    def runner(step):
        def chunk(ls, es):
            key, sub = jax.random.split(es.key)
            us = jax.random.uniform(sub, (n, env.n_uniforms))

            def body(c, u):
                ls, es = c
                es, smp = env.step_with(es, u)
                ls, y = step(ls, smp.x, smp.cumulant)
                return (ls, es), y

            (ls, es), ys = jax.lax.scan(body, (ls, es._replace(key=key)), us)
            return ls, es._replace(key=key), ys[-1]  # same stream every call
        return jax.jit(chunk)

    def ccn_runner(td, net):
        """The same stream, drawn in the chunk by a scan of the environment, then
        ``CCNTD.run`` (which splits its steps at stage boundaries)."""
        def chunk(ls, es):
            key, sub = jax.random.split(es.key)
            us = jax.random.uniform(sub, (n, env.n_uniforms))
            es2, smp = jax.lax.scan(env.step_with, es._replace(key=key), us)
            ls, ys = td.run(net, ls, smp.x, smp.cumulant)
            return ls, es2._replace(key=key), ys[-1]
        return jax.jit(chunk)

    kw = dict(gamma=args.gamma, lam=args.lam)
    es = env.init(jax.random.key(1))
    fns = {}
    for cols in (7, 20):
        fused = ColumnarTD(args.lr, **kw)
        net = columnar_network(env.input_size, cols, key=jax.random.key(0), dtype=F32)
        fns[f"columnar {cols} (ColumnarTD)"] = (runner(fused.step), (fused.init(net), es))
    generic = TDLambda(ColoR(), td_rmsprop(args.lr), **kw)
    ccn_td = CCNTD(args.lr, **kw)
    for stage in range(5):
        net = Constructive(env.input_size, "20:4:10M", key=jax.random.key(0), start_stage=stage, dtype=F32)
        if stage in (0, 4):
            fns[f"CCN 20:4, stage {stage + 1}/5, generic TDLambda(ColoR())"] = (runner(generic.step), (generic.init(net), es))
        fns[f"CCN 20:4, stage {stage + 1}/5, fused CCNTD"] = (ccn_runner(ccn_td, net), (ccn_td.init(net), es))
    load0 = os.getloadavg()
    times = time_alternating(fns, args.tp_repeats)
    load1 = os.getloadavg()
    rows = [[name, f"{n / t.wall:,.0f}", f"{n / t.cpu:,.0f}", f"{t.wall / n * 1e6:.2f}"] for name, t in times.items()]
    # a whole CCN 20:4 run spends equal steps in each stage: its rate is 5 n / Σ_stage time
    fused = [t for name, t in times.items() if name.endswith("fused CCNTD")]
    wall, cpu = sum(t.wall for t in fused), sum(t.cpu for t in fused)
    rows.append(["CCN 20:4, whole run (equal steps per stage), fused CCNTD", f"{5 * n / wall:,.0f}",
                 f"{5 * n / cpu:,.0f}", f"{wall / (5 * n) * 1e6:.2f}"])
    for r in rows:
        print(r, flush=True)
    write_results(
        args.ccn_out, "CCN and columnar TD(λ): single-stream throughput", command_line(__file__),
        [f"Trace patterning (γ = {args.gamma}, λ = {args.lam}), float32, one stream, chunks of {n:,} "
         f"steps (environment included) in one jitted call; medians of {args.tp_repeats} "
         "repeats, the variants interleaved. Columnar and generic rows: the environment and the "
         "learner step in one `lax.scan`; fused CCN rows: the chunk's stream drawn by a scan of the "
         "environment, then `CCNTD.run`, which runs each stage's steps in a loop compiled for that "
         "stage (see `rtrlax.learning.ccn_td`). CCN 20:4 = 5 stages of 4 columns; in stage s the "
         "fused step runs the forward pass of all 5 stages and the traces of stages s…5 (the "
         "unbuilt stages are traced as the generic path does), so stage 1 is the dearest. "
         f"Load average (1 min) {load0[0]:.1f} before and {load1[0]:.1f} after the timed loop. "
         + ("This process was pinned to one core (`--one-core`): XLA's thread pool cannot spread "
            "the tiny per-step kernels over both cores. " if args.one_core else "")
         + "A CPU-time rate above the wall rate means other jobs held the cores; below it, that "
         "XLA ran parts of the step on both cores (the wall rate is the throughput). The "
         "columnar/CCN paper's C++ code did 65–143k steps/s for CCN 20:4 on this kind of "
         "machine (research/ANCHORS.md).", "",
         *markdown_table(["variant", "steps/s (wall)", "steps/s (CPU time)", "µs/step (wall)"], rows)],
        shared=max(load0[0], load1[0]) > 2.0,
    )


def _over_devices(chunk_streams, fs, es, devices):
    """Split the streams over ``devices`` CPU devices (one per core: each runs its share
    of the streams as its own loop, with no per-step synchronisation between cores —
    XLA's own intra-op threading splits every small kernel and joins after each)."""
    n = fs.count.shape[0]
    if devices <= 1 or n % devices:
        return fs, es, jax.jit(chunk_streams)
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((devices,), ("streams",))
    spec_fs = jax.tree_util.tree_map(lambda a: P(*([None] * (a.ndim - 1)), "streams"), fs)  # streams-last
    spec_es = jax.tree_util.tree_map(lambda a: P("streams"), es)  # vmapped: streams-first
    put = lambda tree, spec: jax.device_put(  # noqa: E731
        tree, jax.tree_util.tree_map(lambda sp: NamedSharding(mesh, sp), spec))
    run = jax.jit(jax.shard_map(chunk_streams, mesh=mesh, in_specs=(spec_fs, spec_es),
                                out_specs=(spec_fs, spec_es, P("streams"))))
    return put(fs, spec_fs), put(es, spec_es), run


def _dump(args, out):
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    json.dump(dict(machine=machine(), command="python " + " ".join(sys.argv), load=load,
                   devices=args.tp_devices, results=out), open(args.tp_out, "w"))


def _rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def _pool_seeds(rows: list[dict]) -> list[dict]:
    """One row per (method, steps, α): runs of the same method over different seeds (e.g.
    ``--seed0 0 --seeds 2`` and ``--seed0 1 --seeds 3``: independent streams) are pooled."""
    pooled: dict = {}
    for r in rows:
        key = (r["method"], r["steps"], r["lr"])
        if key not in pooled:
            pooled[key] = dict(r, curve=[list(c) for c in r["curve"]], zero=[list(z) for z in r["zero"]],
                               seed_steps_per_s=[r.get("steps_per_s") or 0.0])
            continue
        p = pooled[key]
        p["curve"] = [a + list(b) for a, b in zip(p["curve"], r["curve"])]
        p["zero"] = [a + list(b) for a, b in zip(p["zero"], r["zero"])]
        p["seeds"] += r["seeds"]
        p["wall_s"] += r["wall_s"]
        p["seed_steps_per_s"].append(r.get("steps_per_s") or 0.0)
    return list(pooled.values())


def report(paths: list[str], md_path: str, png_path: str):
    datas = [json.load(open(p)) for p in paths]
    data = datas[0]
    rows = _pool_seeds([r for d in datas for r in d["results"]])
    lines = [
        "# Animal learning: trace patterning, TD(λ) prediction",
        "",
        f"Machine: {data['machine']} — the learning runs **shared the machine with other jobs** "
        "(up to 5 agents for the first files, one other job for `tbptt_rest.json` and "
        "`seeds3.json`), so their "
        "wall-clock columns are noisy; the MSREs do not depend on it.",
        "",
        "Commands: " + "; ".join(f"`{d['command']}`" for d in datas),
        "",
        f"Setting: trace patterning, ISI U{data['args']['isi']}, ITI U[80, 120], γ = {data['args']['gamma']}, "
        f"λ = {data['args']['lam']}, RMSProp-normalised TD(λ) (β₂ = 0.9999) with the step size α "
        "in the table (not tuned per method), float32, the number of steps in the table, "
        "the number of seeds in the table (independent streams and "
        f"networks, batched with vmap; runs of the same method over different seeds are pooled). MSRE = mean (G_t − ŷ_t)² over the last "
        f"{data['args']['log']:,} steps; ± is the standard deviation over seeds. "
        "'Predict zero' is the MSRE of ŷ = 0 on the same streams.",
        "",
        "| method | α | steps | seeds | MSRE at 500k | MSRE at 1M | final MSRE ± std | predict zero (final window) "
        "| steps/s (all seeds of a run, wall) | wall (s, all runs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def at(r, step):
        i = step // r["log"] - 1
        return f"{np.mean(r['curve'][i]):.4f}" if i < len(r["curve"]) else "—"

    for r in sorted(rows, key=lambda r: (r["method"], r["steps"])):
        final = np.array(r["curve"][-1])
        zero = np.array(r["zero"][-1])
        sps = " / ".join(f"{v:,.0f}" for v in r["seed_steps_per_s"])
        lines.append(f"| {r['method']} | {r['lr']:g} | {r['steps']:,} | {final.size} | {at(r, 500_000)} | "
                     f"{at(r, 1_000_000)} | {final.mean():.4f} ± {final.std():.4f} | "
                     f"{zero.mean():.4f} | {sps} | {r['wall_s']:.0f} |")
    lines += ["", "![MSRE over training](animal_learning.png)", ""]
    lines += _throughput_section(TP_JSON)
    open(md_path, "w").write("\n".join(lines) + "\n" + NOTES)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the longest run of each method only; T-BPTT pairs dashed, the papers' methods solid
    longest = {}
    for r in rows:
        if r["steps"] >= longest.get(r["method"], {"steps": -1})["steps"]:
            longest[r["method"]] = r
    runs = sorted(longest.values(), key=lambda r: (r["method"].startswith("tbptt"), r["method"]))
    colors = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for n, r in enumerate(runs):
        c = np.array(r["curve"])
        x = (np.arange(len(c)) + 1) * r["log"]
        tb = r["method"].startswith("tbptt")
        ax.plot(x, c.mean(1), color=colors[(2 * n) % 20 + (n * 2 >= 20)], ls="--" if tb else "-",
                lw=1.2 if tb else 2.0, label=f"{r['method']} ({c.shape[1]} seeds)")
    zero = np.mean([np.mean(r["zero"]) for r in runs])
    ax.axhline(zero, color="k", ls=":", label="predict zero")
    ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.set_ylabel(f"MSRE (mean over seeds and the last {rows[0]['log']:,} steps)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Trace patterning, TD(λ)")
    save_figure(fig, png_path, dpi=120)


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
    p.add_argument("--throughput", action="store_true", help="measure steps/s and RSS instead")
    p.add_argument("--tp-chunk", type=int, default=100_000)
    p.add_argument("--tp-batches", default="8,32")
    p.add_argument("--tp-repeats", type=int, default=5)
    p.add_argument("--tp-long", type=int, default=10_000_000)
    p.add_argument("--tp-out", default="docs/results/animal_throughput.json")
    p.add_argument("--ccn-throughput", action="store_true",
                   help="single-stream steps/s: columnar 7/20 and CCN 20:4, generic vs fused")
    p.add_argument("--ccn-out", default="docs/results/ccn_throughput.md")
    p.add_argument("--one-core", action="store_true",
                   help="pin this process (and so XLA's threads) to one CPU core before JAX starts")
    p.add_argument("--tp-devices", type=int, default=os.cpu_count() or 1,
                   help="CPU devices (one per core) to split a batch of streams over (default: all cores)")
    p.add_argument("--report", nargs="+", default=None,
                   help="only write docs/results/animal_learning.{md,png} from these json files")
    args = p.parse_args(argv)
    if args.one_core:  # before JAX creates its CPU backend and thread pool
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.throughput:
        if args.tp_devices > 1:  # before JAX creates its CPU backend
            jax.config.update("jax_num_cpu_devices", args.tp_devices)
        throughput(args)
        return
    if args.ccn_throughput:
        ccn_throughput(args)
        return
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
