"""TD(λ) prediction on animal-learning streams: what ``rtrlax run trace-patterning`` does.

The methods of the ColoR / CCN papers by name (:func:`make_td_learner`): the fused
columnar network, CCN and constructive networks (ColoR traces), a SnAp-1 LSTM, and
compute-matched online T-BPTT LSTMs; the experiment (:func:`run_prediction`) runs
several seeds as one vmapped batch and reports the MSRE per window.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import registry
from .online import progress_bar
from .results import write_results

#: ``--variant`` -> the registry's task name
VARIANTS = {"patterning": "trace-patterning", "conditioning": "trace-conditioning",
            "noisy": "noisy-patterning"}

#: the T-BPTT (truncation : hidden) pairs of the CCN paper, compute-matched to its CCN
TBPTT_PAIRS = ("13:2", "3:10", "5:8", "8:5", "10:5", "15:4", "20:3", "30:2")


def check_method(method: str) -> None:
    """A ValueError unless ``method`` names one of :func:`make_td_learner`'s methods
    (checked without building anything)."""
    if method in ("columnar", "ccn", "constructive", "snap1-lstm"):
        return
    if method.startswith("tbptt-"):
        parts = method[len("tbptt-"):].split(":")
        if len(parts) == 2 and all(p.isdigit() and int(p) >= 1 for p in parts):
            return
        raise ValueError(f"write T-BPTT as tbptt-T:H with positive integers (e.g. tbptt-10:5), "
                         f"got {method!r}.")
    raise ValueError(f"unknown method {method!r}: use columnar, ccn, constructive, snap1-lstm or "
                     "tbptt-T:H.")


def make_td_learner(method: str, input_size: int, steps: int, lr: float, *, gamma=0.9, lam=0.99,
                    dtype="float32"):
    """``(learner, init(key) -> learner state)`` for a named method:
    ``columnar`` (20 columns, fused ColoR + TD), ``ccn`` (``20:4:steps/5``),
    ``constructive`` (``10:1:steps/10``), ``snap1-lstm`` (SnAp-1, dense LSTM-10),
    ``tbptt-T:H`` (online T-BPTT(T), dense LSTM-H)."""
    import jax

    from ..cells.lstm import LSTM
    from ..estimators.color import ColoR
    from ..estimators.snap import SnAp
    from ..estimators.tbptt import TBPTT
    from ..learning.td import ColumnarTD, TDLambda, td_rmsprop
    from ..nets.ccn import Constructive
    from ..nets.columnar import columnar_network
    from ..nets.readout import Readout

    if method == "columnar":
        fused = ColumnarTD(lr, gamma=gamma, lam=lam)
        return fused, lambda k: fused.init(columnar_network(input_size, 20, key=k, dtype=dtype))
    if method in ("constructive", "ccn"):
        spec = (10, 1, max(1, steps // 10)) if method == "constructive" else (20, 4, max(1, steps // 5))
        td = TDLambda(ColoR(), td_rmsprop(lr), gamma=gamma, lam=lam)
        return td, lambda k: td.init(Constructive(input_size, spec, key=k, dtype=dtype))
    if method == "snap1-lstm":
        td, hidden = TDLambda(SnAp(1), td_rmsprop(lr), gamma=gamma, lam=lam), 10
    elif method.startswith("tbptt-"):
        try:
            T, hidden = (int(v) for v in method[len("tbptt-"):].split(":"))
        except ValueError:
            raise ValueError(f"write T-BPTT as tbptt-T:H (e.g. tbptt-10:5), got {method!r}.") from None
        td = TDLambda(TBPTT(T), td_rmsprop(lr), gamma=gamma, lam=lam)
    else:
        raise ValueError(
            f"unknown method {method!r}: use columnar, ccn, constructive, snap1-lstm or tbptt-T:H."
        )

    def init(k):
        k1, k2 = jax.random.split(k)
        net = Readout(LSTM(input_size, hidden, key=k1, dtype=dtype), 1, key=k2, zero_init=True)
        return td.init(net)

    return td, init


def run_prediction(*, method: str = "columnar", variant: str = "patterning", isi=(14, 26),
                   steps: int = 200_000, seeds: int = 2, seed: int = 0, lr: float = 1e-3,
                   gamma: float = 0.9, lam: float = 0.99, log: int = 20_000,
                   out: Path | None = None, quiet: bool = False, config: dict | None = None) -> dict:
    """TD(λ) prediction of the discounted US on an animal-learning stream: ``seeds``
    independent streams and networks (a vmapped batch), MSRE per window of ``log``
    steps; writes the usual results to ``out``.  Returns ``{"history", "seconds"}``."""
    import jax

    from ..learning.td import msre_chunk

    block = 1000
    if log % block or log <= 0 or steps % log or steps <= 0:
        raise ValueError(f"--log must be a positive multiple of {block} and --steps a multiple of --log.")
    if seeds < 1:
        raise ValueError("--seeds must be at least 1.")
    env = registry.make_task(VARIANTS[variant], isi=tuple(isi), gamma=gamma)
    learner, init = make_td_learner(method, env.input_size, steps, lr,
                                    gamma=gamma, lam=lam)
    keys = jax.random.split(jax.random.key(seed), seeds)
    ls = jax.vmap(init)(keys)
    es = jax.vmap(env.init)(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
    chunk = jax.jit(jax.vmap(msre_chunk(learner, env, block=block, blocks=log // block)))
    history = {"step": [], "msre": [], "msre_zero": []}
    t0 = time.perf_counter()
    with progress_bar(steps, f"trace-{variant} {method}", disable=quiet) as bar:
        for i in range(steps // log):
            ls, es, msre, g2 = chunk(ls, es)
            history["step"].append((i + 1) * log)
            history["msre"].append(float(msre.mean()))
            history["msre_zero"].append(float(g2.mean()))
            bar.update(log)
            bar.set_postfix(msre=f"{history['msre'][-1]:.4g}")
    seconds = time.perf_counter() - t0
    out = out or Path("runs") / f"trace-{variant}-{method.replace(':', '_')}"
    write_results(out, config or {}, history, title=f"trace {variant}: {method}", label=method,
                  measures={"seconds": seconds, "steps_per_second": steps * seeds / seconds})
    print(f"wrote {out}/metrics.json, metrics.csv, curve.png  ({seconds:.1f} s)")
    print(f"final MSRE {history['msre'][-1]:.5f} (predicting zero: {history['msre_zero'][-1]:.5f})")
    return {"history": history, "seconds": seconds}
