"""Streams split over devices and hosts with JAX's own engine (``jax.sharding``).

Online learning over ``B`` independent streams is data-parallel: every stream's
state (model state, traces, task state, keys) lives on one device, and only what the
streams share — the parameters and the optimizer state of an :class:`OnlineLearner` —
is replicated.  The learners in :mod:`rtrlax.learning` take a one-axis device mesh
(:func:`stream_mesh`); their jitted chunks then run under ``jax.shard_map`` over the
mesh's stream axis, each device stepping its ``B / D`` streams as its own loop, and the
gradient averaged over all streams is one ``jax.lax.pmean`` (an all-reduce of a
parameter-sized vector per update) compiled into the chunk:

.. math::

    g = \\frac1D \\sum_{d=1}^{D} \\frac{D}{B} \\sum_{b \\in \\text{device } d} g_b
      = \\frac1B \\sum_{b=1}^{B} g_b .

The body of the chunk is the same code with one device and with many; with several
processes (``jax.distributed.initialize()``, one per host) the mesh spans every
host's devices and nothing else changes (``docs/distributed.md``).

This module holds the mechanics: building and checking the mesh, the stream
``PartitionSpec`` of a state, placing a host tree onto the mesh (also across
processes, and onto a different number of devices than the one that wrote a
checkpoint), and gathering a sharded tree back to the host for saving.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: the name of the stream (data) axis of the meshes built by :func:`stream_mesh`
STREAMS = "streams"


def stream_mesh(devices: int | Sequence[Any] | None = None, *, axis: str = STREAMS) -> Mesh:
    """A one-axis mesh over ``devices`` for splitting streams.

    ``devices``: ``None`` for every device JAX sees (``jax.devices()``: under
    ``jax.distributed`` the devices of every process), an ``int`` for the first that
    many of them, or a sequence of devices.
    """
    all_devices = jax.devices()
    if devices is None:
        devices = all_devices
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise ValueError(
                f"asked for a mesh of {devices} devices but JAX sees {len(all_devices)} "
                f"({all_devices[0].platform}); on CPU, set XLA_FLAGS="
                f"--xla_force_host_platform_device_count={devices} (or jax.config.update("
                f"'jax_num_cpu_devices', {devices})) before JAX starts."
            )
        devices = all_devices[:devices]
    devices = list(devices)
    if not devices:
        raise ValueError("stream_mesh needs at least one device.")
    return Mesh(np.array(devices, dtype=object), (axis,))


def stream_axis(mesh: Mesh) -> str:
    """The mesh axis streams are split over: the axis named ``"streams"``, or the only
    axis of a one-axis mesh."""
    if not isinstance(mesh, Mesh):
        raise ValueError(
            f"mesh must be a jax.sharding.Mesh (e.g. rx.stream_mesh()), got {type(mesh).__name__}."
        )
    if STREAMS in mesh.axis_names:
        return STREAMS
    if len(mesh.axis_names) == 1:
        return mesh.axis_names[0]
    raise ValueError(
        f"the mesh has axes {mesh.axis_names}; name the one streams are split over "
        f"{STREAMS!r} (or pass a one-axis mesh, e.g. rx.stream_mesh())."
    )


def n_shards(mesh: Mesh | None) -> int:
    """How many ways the streams are split (1 without a mesh)."""
    return 1 if mesh is None else int(mesh.shape[stream_axis(mesh)])


def check_streams(n_streams: int, mesh: Mesh | None) -> None:
    """A ``ValueError`` unless ``n_streams`` divides evenly over the mesh's stream axis."""
    d = n_shards(mesh)
    if n_streams % d:
        lo, hi = n_streams - n_streams % d, n_streams + d - n_streams % d
        raise ValueError(
            f"{n_streams} streams do not divide over the mesh's {d} devices: use a number "
            f"of streams that is a multiple of {d} (e.g. {lo or hi} or {hi}), or a mesh of "
            f"a number of devices that divides {n_streams}."
        )


def stream_spec(mesh: Mesh, ndim: int, where: int = 0) -> PartitionSpec:
    """The ``PartitionSpec`` of an array of rank ``ndim`` whose axis ``where`` (``0``:
    streams first, ``-1``: streams last) is the stream axis."""
    axis = stream_axis(mesh)
    if ndim == 0:
        return PartitionSpec()
    where = where % ndim
    return PartitionSpec(*([None] * where), axis)


def stream_specs(tree, mesh: Mesh, where: int = 0):
    """:func:`stream_spec` for every leaf of ``tree``."""
    return jax.tree_util.tree_map(lambda a: stream_spec(mesh, jnp.ndim(a), where), tree)


def shard_streams(
    fn: Callable, mesh: Mesh, in_specs, out_specs
) -> Callable:
    """``fn`` (written for one device's streams) run on every device of ``mesh`` under
    ``jax.shard_map``; ``in_specs`` / ``out_specs`` are pytree prefixes of
    ``PartitionSpec`` (``PartitionSpec()`` = replicated).  Inside ``fn``, collectives
    over the stream axis (:func:`stream_mean`, :func:`stream_sum`) combine the devices."""
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def stream_mean(tree, mesh: Mesh | None):
    """The mean over the mesh's devices of a per-device ``tree`` (identity without a
    mesh): with the same number of streams per device, the mean of per-device stream
    means is the mean over all streams."""
    if mesh is None:
        return tree
    return jax.lax.pmean(tree, stream_axis(mesh))


def stream_sum(tree, mesh: Mesh | None):
    """The sum over the mesh's devices (identity without a mesh)."""
    if mesh is None:
        return tree
    return jax.lax.psum(tree, stream_axis(mesh))


def local_slice(global_keys, mesh: Mesh | None):
    """This device's block of an array with one row per stream (all ``B`` rows computed
    the same way on every device), inside a :func:`shard_streams` body: the same rows the
    unsplit learner would give these streams."""
    if mesh is None:
        return global_keys
    d = n_shards(mesh)
    b = global_keys.shape[0] // d
    i = jax.lax.axis_index(stream_axis(mesh))
    return jax.lax.dynamic_slice_in_dim(global_keys, i * b, b)


# --- placing and gathering ------------------------------------------------------------------


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _host(leaf) -> np.ndarray:
    """A full host copy of one array, also of one sharded over several processes."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)


def to_host(tree):
    """Every leaf as a full numpy array (typed PRNG keys as their raw key data): what a
    checkpoint stores.  Under ``jax.distributed`` every process must call it (the
    stream-sharded leaves are gathered across processes)."""

    def get(leaf):
        if leaf is None:
            return None
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        return _host(leaf)

    return jax.tree_util.tree_map(get, tree)


def place(tree, shardings):
    """Put a tree of host-side values (numpy, single-device arrays, or typed keys) onto
    ``shardings`` (a matching tree of ``jax.sharding.Sharding``), each process keeping
    only its devices' blocks (``jax.make_array_from_callback``): the same call on one
    device, on many, and on many hosts (where every process passes the same full
    values)."""

    def put(leaf, sharding):
        if _is_key(leaf):
            data = put(jax.random.key_data(leaf), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        arr = _host(leaf)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree_util.tree_map(put, tree, shardings)


def shardings_for(specs, mesh: Mesh):
    """``NamedSharding`` for every ``PartitionSpec`` of ``specs``."""
    return jax.tree_util.tree_map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda s: isinstance(s, PartitionSpec)
    )


def put_streams(tree, mesh: Mesh | None, where: int = 0):
    """A tree of per-stream arrays (stream axis ``where`` of every leaf: ``0`` first,
    ``-1`` last) split over ``mesh`` — e.g. environment states made with
    ``jax.vmap(env.init)(keys)`` before they enter a sharded learner's jitted call (which
    would otherwise compile once for the unsplit input and again for the split output).
    Without a mesh, ``tree`` itself."""
    if mesh is None:
        return tree
    check_streams(jax.tree_util.tree_leaves(tree)[0].shape[where], mesh)
    return place(tree, shardings_for(stream_specs(tree, mesh, where), mesh))


def place_like(tree, template):
    """``tree`` (host values, e.g. a restored checkpoint) placed with the shardings of
    ``template``'s leaves — how a checkpoint written on one number of devices is read
    onto another (each leaf was stored whole)."""
    return place(tree, jax.tree_util.tree_map(lambda t: t.sharding, template))


def is_main_process() -> bool:
    """Whether this process writes files shared by all (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
