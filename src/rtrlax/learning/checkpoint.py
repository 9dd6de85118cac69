"""Checkpoints that lose nothing: atomic, checksummed, kept k deep, refusing to touch
anything that is not theirs.

A *checkpoint* is a directory holding ``state.npz`` (the learner state's leaves, plus
the metrics so far under ``metric/<name>``) and ``meta.json`` (format, tree structure,
step, the SHA-256 of ``state.npz``, the run's hyper-parameters).  It is written into
a temporary directory beside the target, which then replaces the target by
``os.replace``: a reader sees the old checkpoint or the new one, never a half-written
one.  Typed PRNG keys are stored as their raw key data and rewrapped on load.

A *checkpoint root* (``OnlineLearner.run(..., save_every=N, directory=root)``) holds
numbered checkpoints ``step-<12 digits>``; after each save only the newest ``keep``
are kept.  :func:`load_latest` reads the newest one whose checksum holds and, when
asked (``fallback=True``), steps back past corrupt or partial ones with a warning.

Nothing that is not a checkpoint of ours is ever moved, overwritten or deleted: an
existing file, or a non-empty directory without our ``meta.json``, at a target path
is a :class:`CheckpointError` raised before anything is written.

:func:`save_model` / :func:`load_model` store a trained model alone (Equinox
serialisation of its leaves, behind a header with a checksum) for inference.
:class:`StopOnSignal` turns SIGINT/SIGTERM into a request that ``OnlineLearner.run``
honours at the end of the current chunk (it saves, then returns).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_ARRAYS = "state.npz"
_META = "meta.json"
_FORMAT = 2
_STEP_DIR = re.compile(r"^step-(\d{12})$")
_MODEL_MAGIC = b"RTRLAX-MODEL 1 "


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, partial, corrupt, another set-up) or a
    path that must not be written (not a checkpoint of ours)."""


class Checkpoint(NamedTuple):
    """What :func:`load_state` / :func:`load_latest` read back."""

    state: Any  #: the learner state
    metrics: dict[str, np.ndarray]  #: per-chunk metrics up to the saved step
    meta: dict  #: step, hparams, checksum, format
    path: Path  #: the checkpoint directory read


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- what is ours --------------------------------------------------------------------------


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a directory holding a ``meta.json`` written by rtrlax (complete
    or not: the checksum is checked on load)."""
    meta = Path(path) / _META
    if not meta.is_file():
        return False
    try:
        return "n_leaves" in json.loads(meta.read_text())
    except (OSError, ValueError):
        return False


def check_target(path) -> Path:
    """Raise a :class:`CheckpointError` unless a checkpoint may be written at ``path``:
    absent, an empty directory, or a checkpoint of ours (which is then replaced)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise CheckpointError(
            f"{path} exists and is not an rtrlax checkpoint (it is a file); it was left "
            "untouched. Choose another path for the checkpoint."
        )
    if path.is_dir() and any(path.iterdir()) and not is_checkpoint(path):
        raise CheckpointError(
            f"{path} is a non-empty directory that is not an rtrlax checkpoint (no {_META} "
            "of ours); it was left untouched. Choose another path for the checkpoint."
        )
    return path


def check_root(root) -> Path:
    """Raise a :class:`CheckpointError` unless ``root`` can hold numbered checkpoints: absent
    or a directory that is not itself a single checkpoint."""
    root = Path(root)
    if root.is_symlink() and not root.is_dir() or (root.exists() and not root.is_dir()):
        raise CheckpointError(
            f"{root} exists and is a file, not a checkpoint directory; it was left untouched. "
            "Choose another directory for the checkpoints."
        )
    if is_checkpoint(root):
        raise CheckpointError(
            f"{root} is a single checkpoint (written by save), not a directory of periodic "
            "checkpoints; choose another directory for save_every."
        )
    return root


# --- one checkpoint ------------------------------------------------------------------------


def save_state(directory, state, *, metrics=None, hparams=None) -> Path:
    """Write ``state`` (and the ``metrics`` so far, the run's ``hparams``) to ``directory``
    atomically; refuse (before writing anything) if ``directory`` is not ours."""
    directory = check_target(directory)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    arrays = {}
    for i, leaf in enumerate(leaves):
        arrays[f"a{i}"] = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
    for name, value in (metrics or {}).items():
        arrays[f"metric/{name}"] = np.asarray(value)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    step = getattr(state, "step", None)
    meta = {
        "format": _FORMAT,
        "n_leaves": len(leaves),
        "treedef": str(treedef),
        "step": int(step) if step is not None and np.size(step) == 1 else None,
        "sha256": _sha256(data),
        "metrics": sorted(metrics or {}),
        "hparams": _jsonable(hparams or {}),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp.", dir=directory.parent))
    old = None
    try:
        with open(tmp / _ARRAYS, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / _META, "w") as f:
            f.write(json.dumps(meta, indent=1))
            f.flush()
            os.fsync(f.fileno())
        if directory.exists():  # ours (check_target): set it aside under a fresh name
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not directory.exists():
            os.replace(old, directory)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def read_meta(directory) -> dict:
    """The ``meta.json`` of a checkpoint, or a :class:`CheckpointError` naming the file."""
    directory = Path(directory)
    if not directory.is_dir() or not (directory / _ARRAYS).exists() and not (directory / _META).exists():
        raise CheckpointError(f"no learner checkpoint in {directory} (expected {_ARRAYS} there).")
    path = directory / _META
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing: the checkpoint in {directory} is partial or not an rtrlax "
            "checkpoint."
        ) from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is unreadable or corrupt ({e}).") from None
    if not isinstance(meta, dict) or "n_leaves" not in meta or "treedef" not in meta:
        raise CheckpointError(f"{path} is not the metadata of an rtrlax checkpoint.")
    return meta


def load_state(directory, template, *, with_metrics: bool = False):
    """Read a checkpoint into the structure of ``template`` (a state of the same set-up).

    Returns the state, or a :class:`Checkpoint` with ``with_metrics=True``.  A missing,
    partial or corrupt checkpoint, or one of another set-up, is a
    :class:`CheckpointError` (a ``ValueError``) naming the file.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    if meta["n_leaves"] != len(leaves) or meta["treedef"] != str(treedef):
        raise CheckpointError(
            f"the checkpoint in {directory} does not match this learner (different model, "
            "estimator, optimizer, batch size or task); restore it with the same set-up."
        )
    path = directory / _ARRAYS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the checkpoint is partial.") from None
    if "sha256" in meta and _sha256(data) != meta["sha256"]:
        raise CheckpointError(
            f"{path} is corrupt or truncated (its SHA-256 differs from the one in {_META})."
        )
    try:
        with np.load(io.BytesIO(data)) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is corrupt or truncated ({e}).") from None
    out = []
    for i, like in enumerate(leaves):
        arr = arrays.get(f"a{i}")
        if arr is None:
            raise CheckpointError(f"{path} lacks leaf {i}: the checkpoint is partial.")
        if _is_key(like):
            out.append(jax.random.wrap_key_data(jnp.asarray(arr), impl=jax.random.key_impl(like)))
        else:
            if arr.shape != jnp.shape(like) or arr.dtype != jnp.result_type(like):
                raise CheckpointError(
                    f"the checkpoint in {directory} does not match this learner: leaf {i} "
                    f"has shape {arr.shape} / {arr.dtype}, expected {jnp.shape(like)} / "
                    f"{jnp.result_type(like)} (different model, batch size or task?)."
                )
            out.append(jnp.asarray(arr))
    state = jax.tree_util.tree_unflatten(treedef, out)
    if not with_metrics:
        return state
    metrics = {k[len("metric/"):]: v for k, v in arrays.items() if k.startswith("metric/")}
    return Checkpoint(state, metrics, meta, directory)


# --- a directory of periodic checkpoints ---------------------------------------------------


def list_checkpoints(root) -> list[Path]:
    """The numbered checkpoints under ``root``, oldest first (by step)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def save_checkpoint(root, state, *, keep: int = 3, metrics=None, hparams=None) -> Path:
    """Write ``state`` as ``root/step-<step>`` (atomically) and delete all but the newest
    ``keep`` numbered checkpoints of ours under ``root``."""
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ValueError(f"keep must be a positive integer, got {keep!r}.")
    root = check_root(root)
    path = save_state(root / f"step-{int(state.step):012d}", state, metrics=metrics, hparams=hparams)
    for old in list_checkpoints(root)[:-keep]:
        if is_checkpoint(old) or not any(old.iterdir()):
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_latest(root, template, *, fallback: bool = True) -> Checkpoint:
    """The newest readable checkpoint under ``root`` (or ``root`` itself when it is a
    single checkpoint).

    A corrupt or partial newest checkpoint is a :class:`CheckpointError` naming its file
    unless ``fallback=True``, which warns and tries the previous one, and so on.
    """
    root = Path(root)
    if is_checkpoint(root) or (root / _ARRAYS).exists():
        return load_state(root, template, with_metrics=True)
    candidates = list_checkpoints(root)
    if not candidates:
        raise CheckpointError(f"no learner checkpoint in {root} (no step-* directories there).")
    problems = []
    for path in reversed(candidates):
        try:
            return load_state(path, template, with_metrics=True)
        except CheckpointError as e:
            if not fallback or "does not match this learner" in str(e):
                raise
            problems.append(str(e))
            warnings.warn(f"skipping a bad checkpoint: {e}", stacklevel=2)
    raise CheckpointError(f"no readable checkpoint in {root}: " + " ".join(problems))


# --- hyper-parameters ----------------------------------------------------------------------


def _jsonable(value):
    """``value`` as plain JSON data (tuples → lists, Paths and unknowns → str)."""
    return json.loads(json.dumps(value, default=str))


def hparam_differences(saved: dict, current: dict) -> list[str]:
    """Human-readable differences between two hyper-parameter dicts (empty: the same)."""
    saved, current = _jsonable(saved), _jsonable(current)
    diffs = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k, "<absent>"), current.get(k, "<absent>")
        if a != b:
            diffs.append(f"{k}: checkpoint {a!r}, now {b!r}")
    return diffs


def check_hparams(saved: dict, current: dict, *, override: bool = False) -> list[str]:
    """Refuse (``ValueError`` listing the differences) to resume a run whose
    hyper-parameters differ from the checkpoint's, unless ``override``; return them."""
    diffs = hparam_differences(saved, current)
    if diffs and not override:
        raise ValueError(
            "the checkpoint was written with other hyper-parameters: " + "; ".join(diffs)
            + ". Resume with the same ones, or override to accept the new ones."
        )
    if diffs:
        warnings.warn("resuming with changed hyper-parameters: " + "; ".join(diffs), stacklevel=2)
    return diffs


# --- the model alone, for inference ---------------------------------------------------------


def save_model(path, model: eqx.Module) -> Path:
    """Write ``model``'s arrays (Equinox serialisation) to the file ``path`` atomically;
    refuse to overwrite a file that is not a model saved by rtrlax."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; save_model writes a file.")
    if path.exists():
        with open(path, "rb") as f:
            if not f.read(len(_MODEL_MAGIC)) == _MODEL_MAGIC:
                raise CheckpointError(
                    f"{path} exists and is not a model saved by rtrlax; it was left untouched."
                )
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    payload = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MODEL_MAGIC + _sha256(payload).encode() + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path, like: eqx.Module) -> eqx.Module:
    """Read a model written by :func:`save_model` into the structure of ``like`` (a model
    built with the same constructor arguments)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no saved model at {path}.") from None
    head, _, payload = raw.partition(b"\n")
    if not head.startswith(_MODEL_MAGIC):
        raise CheckpointError(f"{path} is not a model saved by rtrlax.save_model.")
    if _sha256(payload) != head[len(_MODEL_MAGIC):].decode(errors="replace"):
        raise CheckpointError(f"{path} is corrupt or truncated (checksum mismatch).")
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:  # equinox raises assorted errors for a structure mismatch
        raise CheckpointError(
            f"{path} does not match the model given as `like` ({type(e).__name__}: {e}); "
            "build `like` with the same constructor arguments."
        ) from None


# --- stopping cleanly on a signal ----------------------------------------------------------


class StopOnSignal:
    """A context manager that turns SIGINT/SIGTERM into a polite request.

    Inside ``with StopOnSignal() as stop:``, the first signal only sets
    ``stop.signal`` (and ``stop()`` becomes true); ``OnlineLearner.run(..., stop=stop)``
    then finishes its current chunk, saves, and returns.  A second signal restores the
    previous handler and re-raises it (a second Ctrl-C interrupts at once).  Outside the
    main thread, where Python cannot install handlers, it does nothing.
    """

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        self.signals = tuple(signals)
        self.signal: int | None = None
        self._previous: dict = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:  # the second one: give it back to its old owner
            self._restore()
            signal.raise_signal(signum)
            return
        self.signal = signum

    def _restore(self):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        self._restore()
        return False
