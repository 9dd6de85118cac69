"""What every benchmark script shares: timing, the machine, its measured peak, results files, plots.

The scripts run with this folder on ``sys.path`` (``python benchmarks/<script>.py``)
and import from here; none imports ``rtrlax.cli``.

* :func:`time_call` — median wall-clock and process-CPU seconds of a call, compiled
  and warmed up first, every call waited for with ``block_until_ready``.
* :func:`machine_description` — CPU model, cores, JAX backend and version (the
  library's ``rtrlax.experiments.results.machine_description``, re-exported).
* :func:`matmul_peak` / :func:`copy_peak` — this machine's matrix-product GFLOP/s and
  memory-copy GB/s, measured in the calling process, for roofline fractions.
* :func:`compiled_memory` — XLA's own memory analysis of a jitted call.
* :func:`write_results` — a markdown file that starts with the machine and the exact
  command that regenerates it.
* :func:`figure` / :func:`save_figure` — matplotlib axes that refuse to be saved
  without axis labels.
"""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

# the machine: the library's one description (CPU model, cores, backend, jax version)
from rtrlax.experiments.results import machine_description  # noqa: F401

SHARED_NOTE = (
    "The machine was shared with other jobs while this ran: absolute times are noisy; "
    "ratios measured in the same run are the figures to read."
)


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores were busy (all processes) over the next ``seconds``, from
    ``/proc/stat``; the 1-minute load average where there is none.  Read it before a run's
    own work: unlike the load average it does not remember the job that just ended."""
    def sample():
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return os.getloadavg()[0]
    return (1 - (i1 - i0) / max(t1 - t0, 1e-9)) * (os.cpu_count() or 1)


def load_note(busy: float, measure: str = "{:.1f} cores busy in the second before it started") -> str:
    """One sentence on whether the machine was shared, from :func:`busy_cores` (or a load
    average, with ``measure`` saying which) read before the run's own work."""
    said = measure.format(busy)
    if busy > 0.5:
        return (f"shared with other jobs while this ran ({said}): absolute times are noisy; read "
                "the ratios, each measured in the same run")
    return f"nothing else was running ({said}); ratios are measured in the same run"


# --- timing ------------------------------------------------------------------------------


class Timing(NamedTuple):
    wall: float  #: median wall-clock seconds per call
    cpu: float  #: median CPU seconds of this process (all threads) per call


def time_call(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> Timing:
    """Median seconds of ``fn(*args)`` over ``repeats`` calls, after ``warmup`` calls
    (the first compiles; pass 0 when ``fn`` is already compiled); every call is waited for with ``jax.block_until_ready``."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(statistics.median(wall), statistics.median(cpu))


def time_alternating(fns: dict[str, tuple[Callable, tuple]], repeats: int = 5) -> dict[str, Timing]:
    """:func:`time_call` for several ``name -> (fn, args)`` with their repeats interleaved
    (a, b, c, a, b, c, …), so that a load change on a shared machine hits all alike."""
    for fn, args in fns.values():
        jax.block_until_ready(fn(*args))
    wall = {n: [] for n in fns}
    cpu = {n: [] for n in fns}
    for _ in range(repeats):
        for name, (fn, args) in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {n: Timing(statistics.median(wall[n]), statistics.median(cpu[n])) for n in fns}


def tree_bytes(tree) -> int:
    """Bytes of every array in ``tree``."""
    return sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(tree) if hasattr(a, "size"))


class Memory(NamedTuple):
    temp: int  #: XLA's temporary buffers (working memory beyond arguments and outputs)
    argument: int
    output: int
    alias: int  #: output bytes that reuse (donated) argument buffers


def compiled_memory(jitted, *args) -> Memory | None:
    """XLA's memory analysis of ``jitted`` (a ``jax.jit`` function) compiled for ``args``;
    ``None`` where the backend gives none."""
    try:
        a = jitted.lower(*args).compile().memory_analysis()
        return Memory(
            int(a.temp_size_in_bytes), int(a.argument_size_in_bytes),
            int(a.output_size_in_bytes), int(a.alias_size_in_bytes),
        )
    except Exception:  # memory analysis is backend-dependent
        return None


# --- the machine's peak, measured in this process ------------------------------------------


class Peak(NamedTuple):
    gflops: float  #: float32 matrix product, GFLOP/s
    gbs: float  #: memory copy, GB/s (bytes read + bytes written per second)

    def describe(self) -> str:
        return (f"peak measured in the same process: float32 matmul {self.gflops:.1f} GFLOP/s, "
                f"memory copy {self.gbs:.1f} GB/s (read + write); each the fastest of 7 calls")


def _fastest(fn: Callable, *args, repeats: int) -> float:
    """Fewest wall-clock seconds of ``repeats`` calls (compiled and warmed up first): a
    peak is the best the machine does, and one slow call (a thread pool waking up, another
    process) must not lower it."""
    for _ in range(2):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_peak(n: int = 1024, repeats: int = 7, dtype=jnp.float32) -> float:
    """GFLOP/s of an ``n×n @ n×n`` product (``2n³`` flops), fastest of ``repeats``."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    return 2 * n**3 / _fastest(jax.jit(jnp.matmul), a, b, repeats=repeats) / 1e9


def copy_peak(mib: int = 128, passes: int = 8, repeats: int = 7) -> float:
    """GB/s (read + write) of streaming over a ``mib`` MiB float32 array: ``passes`` times
    ``x ← x + 1`` in a jitted loop, updated in place (one read and one write per element
    and pass, no fresh buffer to fault in); fastest of ``repeats``."""
    x = jnp.zeros(mib * 2**20 // 4, jnp.float32)
    run = jax.jit(lambda x: jax.lax.fori_loop(0, passes, lambda _, x: x + 1.0, x))
    return 2 * passes * x.size * 4 / _fastest(run, x, repeats=repeats) / 1e9


def measure_peak(*, matmul_n: int = 1024, copy_mib: int = 128, repeats: int = 7) -> Peak:
    """This machine's :class:`Peak`, measured now (about a second on a CPU)."""
    return Peak(matmul_peak(matmul_n, repeats), copy_peak(copy_mib, repeats))


# --- results files -----------------------------------------------------------------------


def command_line(script: str, argv: list[str] | None = None) -> str:
    """``python benchmarks/<script> <args>``: the command that produced a result
    (``argv`` defaults to this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{Path(script).name}", *map(shlex.quote, args)])


def write_results(path: Path | str, title: str, command: str, body: list[str], *,
                  shared: bool = True, note: str = "") -> Path:
    """Write ``# title``, the machine, the command (and whether the machine was shared)
    and then ``body`` (markdown lines) to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [f"# {title}", "", f"Machine: {machine_description()}.", f"Command: `{command}`{note}."]
    if shared:
        head.append(SHARED_NOTE)
    path.write_text("\n".join(head + [""] + list(body)).rstrip() + "\n")
    print(f"wrote {path}")
    return path


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """Markdown lines of a table (cells converted with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# --- plots -------------------------------------------------------------------------------


def figure(ncols: int = 1, nrows: int = 1, *, size=(6.0, 4.0), **kw):
    """``(fig, axes)`` from matplotlib (Agg backend, imported only when a plot is made);
    ``axes`` is a flat list.  Save with :func:`save_figure`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def save_figure(fig, path: Path | str, *, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path``; a ValueError if any plot with data lacks an x or y label."""
    for ax in fig.axes:
        if ax.has_data() and not (ax.get_xlabel() and ax.get_ylabel()):
            raise ValueError(f"plot {ax.get_title()!r} in {path} needs both axis labels (x and y).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"wrote {path}")
    return path


class ResultParts:
    """A results JSON whose top-level keys are the parts a script measures separately
    (``python script.py <part>``), so that one part can be re-run without the others."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def load(self) -> dict:
        import json

        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self, part: str, value) -> None:
        import json

        data = self.load()
        data[part] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=1))
