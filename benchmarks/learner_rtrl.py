"""The online learner's per-step cost with dense RTRL, and what its two copy-avoiding
choices are worth: the scan's two steps per iteration (``RTRL.scan_unroll``) and the
episode-reset ``cond`` holding the whole step for large carries.

Four learners on the same model and data (GRU with readout, one or more streams, SGD,
an update every step, no episode resets), timed alternately in one process with
``OnlineLearner.learn`` over ``--steps`` steps per call (compiled first):

* ``as shipped`` — both choices on;
* ``one step per iteration`` — ``scan_unroll`` forced to 1;
* ``reset cond passes the carry through`` — the size threshold for holding the step in
  the reset branch raised above the carry (the do-nothing branch then copies it);
* ``neither`` — both off (the learner before the change).

Beside them, the batched ``D·M`` product alone (``[B, S, S] @ [B, S, P_r]``): the floor.

    python benchmarks/learner_rtrl.py --hidden 128 --batch 1 --out docs/results/learner_rtrl.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import rtrlax as rx
from harness import busy_cores, command_line, load_note, time_alternating, write_results
from rtrlax.learning import learner as learner_module
from step_cost import INPUT_SIZE, OUTPUT_SIZE, gru_model, loss_fn


class _OneStep(rx.RTRL):
    """``rx.RTRL`` with one step per scan iteration."""

    def scan_unroll(self, model) -> int:
        return 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=16, help="steps per timed learn() call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("docs/results/learner_rtrl.md"))
    args = p.parse_args(argv)
    busy = busy_cores()
    key = jax.random.key(0)
    model = gru_model(args.hidden, key)
    b, n = args.batch, args.steps
    xs = jax.random.normal(key, (b, n, INPUT_SIZE), jnp.float32)
    ts = jax.random.normal(jax.random.fold_in(key, 1), (b, n, OUTPUT_SIZE), jnp.float32)
    large = learner_module._LARGE_CARRY
    variants = {
        "as shipped": (rx.RTRL(), large),
        "one step per iteration": (_OneStep(), large),
        "reset cond passes the carry through": (rx.RTRL(), 1 << 62),
        "neither": (_OneStep(), 1 << 62),
    }
    fns = {}
    for name, (est, threshold) in variants.items():
        learner_module._LARGE_CARRY = threshold  # read when the learner's chunk is traced
        learner = rx.OnlineLearner(model, est, optax.sgd(1e-4), loss_fn)
        state = learner.init(key, batch_size=b)
        fn = lambda s, learner=learner: learner.learn(s, xs, ts)[1]  # noqa: E731
        jax.block_until_ready(fn(state))  # compiled now, with this threshold
        fns[name] = (fn, (state,))
    learner_module._LARGE_CARRY = large
    carry = jax.vmap(lambda _: rx.RTRL().init(model))(jnp.arange(b))
    s, p_r = carry.influence[0].shape[1] - 1, sum(m.shape[2] for m in carry.influence)
    d = jax.random.normal(key, (b, s, s), jnp.float32) / s
    m = jax.random.normal(key, (b, s, p_r), jnp.float32)
    fns["D·M alone (one product)"] = (jax.jit(jnp.matmul), (d, m))
    t = time_alternating(fns, args.repeats)
    floor = t["D·M alone (one product)"]
    rows = [
        "| learner | wall ms/step | × D·M | CPU ms/step | × D·M (CPU) |",
        "|---|---|---|---|---|",
    ]
    for name, v in t.items():
        k = 1 if name.startswith("D·M") else n
        rows.append(f"| {name} | {v.wall / k * 1e3:.2f} | {v.wall / k / floor.wall:.2f}× "
                    f"| {v.cpu / k * 1e3:.2f} | {v.cpu / k / floor.cpu:.2f}× |")
        print(rows[-1], flush=True)
    body = [
        f"GRU-{args.hidden} with a readout of {OUTPUT_SIZE} (input {INPUT_SIZE}, float32), "
        f"{b} stream(s), `rx.OnlineLearner(model, rx.RTRL(), optax.sgd(...))`, an update every "
        f"step, `learn()` over {n} steps per call; medians of {args.repeats} calls, alternated "
        f"in one process; {load_note(busy)}. Time per step = call / {n}.",
        "",
        *rows,
        "",
        "`one step per iteration`: `scan_unroll` forced to 1 — the product's output is copied "
        "back into the loop's buffer every step. `reset cond passes the carry through`: the "
        "learner's episode-reset `cond` with a do-nothing branch, which copies every carry at "
        "every step (`_LARGE_CARRY` raised above this carry). `neither`: the learner before "
        "both changes (the new RTRL step in the learner's loop as it was).",
    ]
    write_results(args.out, "The online learner with dense RTRL: copies avoided",
                  command_line(__file__, argv), body, shared=False)


if __name__ == "__main__":
    main()
