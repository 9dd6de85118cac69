"""Where dense RTRL's step time goes beyond the D·M product (GRU-128 / RNN-128, batch 1).

Times, alternately in one process (``harness.time_alternating``): the scanned
``RTRL.batch_step`` (per step), the batched ``D·M`` alone (as ``step_cost.py``'s floor
table), the per-leaf ``[D; g]·M`` products, the same plus a dense immediate term added to
each block and the gradient row sliced off (what the step does with M), the immediate
term alone (S vector-Jacobian products) and ``D_t`` alone (``jacfwd``).  Prints wall and
process-CPU milliseconds and their ratio to ``D·M`` alone.

This is the analysis that found the dense add's pass over M (seventh session); the step
now adds unit-local immediate terms in place instead (``rtrlax.estimators.rtrl``), so
the "step" line shows the current cost and the other lines the old step's parts.

    PYTHONPATH=src STEPS=2 R=3 python benchmarks/rtrl_profile.py
"""

import os
import sys

sys.path.insert(0, "benchmarks")
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import step_cost as sc
from harness import time_alternating
import rtrlax as rx
from rtrlax.estimators.base import split_params
from rtrlax.estimators.rtrl import recurrent_leaves

steps, repeats = int(os.environ.get("STEPS", 4)), int(os.environ.get("R", 3))
out = {}
for name, mk in (("GRU", sc.gru_model), ("RNN", sc.vanilla_model)):
    key = jax.random.key(0)
    model = mk(128, key)
    est = rx.RTRL()
    run, args = sc._scan_fn(model, est, (steps, 1), est.batch_step, key)
    carry = args[1]
    blocks = [b[0, :-1] for b in carry.influence]  # unbatched [S, p_l] (the spare row dropped)
    S = blocks[0].shape[0]
    P = sum(b.shape[1] for b in blocks)
    d = jax.random.normal(key, (1, S, S), jnp.float32) / S
    m = jax.random.normal(jax.random.fold_in(key, 1), (1, S, P), jnp.float32)
    dm = jax.jit(jnp.matmul)
    # [D; g] M per leaf + a dense immediate term added per leaf (what the step does with M)
    daug = jax.random.normal(key, (S + 1, S), jnp.float32) / S
    imms = [jax.random.normal(jax.random.fold_in(key, 7), b.shape, jnp.float32) for b in blocks]
    ms = [jax.random.normal(jax.random.fold_in(key, 9), b.shape, jnp.float32) for b in blocks]

    @jax.jit
    def m_work(daug, ms, imms):
        new, gr = [], []
        for mp, i in zip(ms, imms):
            p = daug @ mp
            new.append(p[:S] + i)
            gr.append(p[S])
        return new, gr

    @jax.jit
    def dm_leaves(daug, ms):
        return [daug[:S] @ mp for mp in ms]

    # the immediate term alone: S vector-Jacobian products of the step per recurrent leaf
    params, static = split_params(model)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rec = [i for i, r in enumerate(recurrent_leaves(model)) if r]
    s_flat, unravel = ravel_pytree(model.initial_state())
    x = jax.random.normal(key, (sc.INPUT_SIZE,), jnp.float32)

    @jax.jit
    def immediate(leaves, s_flat, x):
        def state_of(rl):
            full = list(leaves)
            for i, a in zip(rec, rl):
                full[i] = a
            mm = eqx.combine(jax.tree_util.tree_unflatten(treedef, full), static)
            return ravel_pytree(mm(unravel(s_flat), x)[0])[0]
        _, vjp = jax.vjp(state_of, [leaves[i] for i in rec])
        (imm,) = jax.vmap(vjp)(jnp.eye(S, dtype=s_flat.dtype))
        return imm

    @jax.jit
    def jac_d(leaves, s_flat, x):
        def f(s):
            mm = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
            return ravel_pytree(mm(unravel(s), x)[0])[0]
        return jax.jacfwd(f)(s_flat)

    t = time_alternating({
        "step (scan of batch_step, per step x steps)": (run, args),
        "D·M alone (batched matmul)": (dm, (d, m)),
        "[D;g]·M per leaf": (dm_leaves, (daug, ms)),
        "[D;g]·M per leaf + dense Ī add + grad row": (m_work, (daug, ms, imms)),
        "Ī alone (S VJPs, dense blocks)": (immediate, (leaves, s_flat, x)),
        "D_t alone (jacfwd)": (jac_d, (leaves, s_flat, x)),
    }, repeats)
    base = t["D·M alone (batched matmul)"]
    print(f"== {name}-128 batch 1: S={S}, P_r={P}, load {os.getloadavg()}")
    for k, v in t.items():
        w, c = (v.wall / steps, v.cpu / steps) if k.startswith("step") else (v.wall, v.cpu)
        print(f"  {k:48s} wall {w*1e3:8.2f} ms ({w/base.wall:5.2f}x)  cpu {c*1e3:8.2f} ms ({c/base.cpu:5.2f}x)")
