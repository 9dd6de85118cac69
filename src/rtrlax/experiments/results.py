"""What a run leaves behind: metrics files, a learning-curve plot, the resolved config.

``metrics.json`` (config, machine, per-window history), ``metrics.csv`` (the history
as columns), ``curve.png`` and ``config.toml`` (the resolved configuration: rerun it
with ``rtrlax run --config config.toml`` to repeat the run exactly).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from pathlib import Path
from typing import Any


def machine_description() -> str:
    """``"<cpu model>, <n> cores, <backend> backend, jax <version>[, <device>]"``."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import jax

    desc = f"{cpu}, {os.cpu_count()} cores, {jax.default_backend()} backend, jax {jax.__version__}"
    if jax.default_backend() != "cpu":
        desc += f", {jax.devices()[0].device_kind}"
    return desc


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a basic TOML string: JSON escaping is valid TOML


def to_toml(config: dict[str, Any]) -> str:
    """A flat ``key = value`` TOML document (``None`` values are left out: absent keys
    take their defaults when the file is read back)."""
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items() if v is not None)


def write_results(out: Path, config: dict, history: dict, *, title: str,
                  label: str | None = None, measures: dict | None = None) -> None:
    """``metrics.json`` (``config`` with ``measures`` such as the wall-clock time merged
    in), ``metrics.csv``, ``curve.png`` and ``config.toml`` (``config`` alone) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    hist = {k: [float(x) for x in v] for k, v in history.items()}
    record = {**config, **(measures or {})}
    (out / "metrics.json").write_text(
        json.dumps({"config": record, "machine": machine_description(), "history": hist}, indent=2)
    )
    keys = list(hist)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        w.writerows(zip(*(hist[k] for k in keys)))
    (out / "config.toml").write_text(
        "# the resolved configuration of this run: rtrlax run --config config.toml repeats it\n"
        + to_toml(config)
    )
    plot_curves(out / "curve.png", {label or str(config.get("estimator", "run")): hist}, title=title)


def plot_curves(path: Path, runs: dict[str, dict], *, title: str, keys=None) -> None:
    """One panel per metric (``keys``, default all but ``step``), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(runs.values()))
    keys = keys or [k for k in first if k != "step"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for name, hist in runs.items():
            if k in hist:
                ax.plot(hist["step"], hist[k], label=name)
        ax.set_xlabel("steps per stream")
        ax.set_ylabel(k.replace("_", " "))
        ax.set_title(k)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
