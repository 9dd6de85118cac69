"""Saving and restoring a learner's whole state, atomically.

The state's leaves are written with numpy into a temporary directory beside the
target, which then replaces the target by ``os.replace`` — a reader sees either the
old checkpoint or the new one, never a half-written one.  Typed PRNG keys are stored
as their raw key data and rewrapped on load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

_ARRAYS = "state.npz"
_META = "meta.json"


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save_state(directory, state) -> None:
    directory = Path(directory)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    arrays = {}
    for i, leaf in enumerate(leaves):
        arrays[f"a{i}"] = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
    meta = {"n_leaves": len(leaves), "treedef": str(treedef), "format": 1}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        with open(tmp / _ARRAYS, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        (tmp / _META).write_text(json.dumps(meta))
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_state(directory, template):
    directory = Path(directory)
    if not (directory / _ARRAYS).exists():
        raise ValueError(f"no learner checkpoint in {directory} (expected {_ARRAYS} there).")
    leaves, treedef = jax.tree_util.tree_flatten(template)
    meta = json.loads((directory / _META).read_text())
    if meta["n_leaves"] != len(leaves) or meta["treedef"] != str(treedef):
        raise ValueError(
            f"the checkpoint in {directory} does not match this learner (different model, "
            "estimator, optimizer, batch size or task); restore it with the same set-up."
        )
    with np.load(directory / _ARRAYS) as data:
        out = []
        for i, like in enumerate(leaves):
            arr = data[f"a{i}"]
            if _is_key(like):
                out.append(jax.random.wrap_key_data(jnp.asarray(arr), impl=jax.random.key_impl(like)))
            else:
                if arr.shape != jnp.shape(like) or arr.dtype != jnp.result_type(like):
                    raise ValueError(
                        f"the checkpoint in {directory} does not match this learner: leaf {i} "
                        f"has shape {arr.shape} / {arr.dtype}, expected {jnp.shape(like)} / "
                        f"{jnp.result_type(like)} (different model, batch size or task?)."
                    )
                out.append(jnp.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, out)
