"""The library's own registry entries: estimators, cells, networks and tasks.

Every constructor imports its class when called, so reading this table (``rtrlax
list``, ``--help``, argument checks) imports no JAX.  The descriptions are what
``rtrlax list`` prints.
"""

from __future__ import annotations

from .registry import Arg, register

_ONE = 1.0  # the "no mask" density


# --- estimators ---------------------------------------------------------------------------


def _rtrl():
    from ..estimators.rtrl import RTRL

    return RTRL()


def _snap(n):
    from ..estimators.snap import SnAp

    return SnAp(n)


def _color():
    from ..estimators.color import ColoR

    return ColoR()


def _online_lru(horizon):
    from ..estimators.online_lru import OnlineLRU

    return OnlineLRU(horizon)


def _capacity(text: str) -> int | float:
    """``0.25`` (a fraction of the units, in (0, 1]) or ``16`` (a number of units)."""
    value = float(text) if "." in text else int(text)
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(text)
    return value


def _sparse_rtrl(capacity):
    from ..estimators.sparse_rtrl import SparseRTRL

    return SparseRTRL(capacity)


def _uoro():
    from ..estimators.uoro import UORO

    return UORO()


def _kfrtrl():
    from ..estimators.kfrtrl import KFRTRL

    return KFRTRL()


def _rflo(tau):
    from ..estimators.rflo import RFLO

    return RFLO() if tau is None else RFLO(tau)


def _tbptt(T):
    from ..estimators.tbptt import TBPTT

    return TBPTT(T)


def _bptt():
    from ..estimators.bptt import BPTT

    return BPTT()


register("estimator", "rtrl", _rtrl, description="exact RTRL: the dense influence matrix (S × P)")
register("estimator", "snap", _snap, arg=Arg("n", int, 1, low=1, help="steps of reach"),
         requires="gated", aliases=("snap1",),
         description="SnAp-n: influence entries reachable within n steps (exact for n large; "
                     "n = 1 on element-wise recurrence)")
register("estimator", "color", _color, requires="columnar",
         description="ColoR: each column's own traces (SnAp-1 on a columnar network)")
register("estimator", "onlinelru", _online_lru, requires="lru",
         arg=Arg("horizon", int, None, low=0, high=1,
                 help="1: 1-truncated, 0: spatial only; none: full traces"),
         description="the online LRU: per-layer diagonal traces + spatial backprop "
                     "(onlinelru:1 1-truncated, onlinelru:0 spatial only)")
register("estimator", "sparsertrl", _sparse_rtrl, requires="gated",
         arg=Arg("capacity", _capacity, 0.25, low=1e-9,
                 help="units tracked: a fraction in (0, 1] or a count"),
         description="sparse exact RTRL: skips masked parameters and silent units (EGRU)")
register("estimator", "uoro", _uoro, description="UORO: an unbiased random rank-one estimate")
register("estimator", "kfrtrl", _kfrtrl, requires="vanilla",
         description="KF-RTRL: an unbiased random Kronecker-factored estimate (vanilla RNN)")
register("estimator", "rflo", _rflo, requires="vanilla",
         arg=Arg("tau", float, None, low=1.0, help="the leak time constant"),
         description="RFLO: random-feedback local online learning, diagonal and leaky (biased)")
register("estimator", "tbptt", _tbptt, arg=Arg("T", int, 16, low=1, help="window length"),
         description="truncated BPTT over a sliding window of T steps")
register("estimator", "bptt", _bptt, online=False,
         description="full BPTT through the whole sequence (offline reference: "
                     "rx.accumulate_grads only)")


# --- cells ----------------------------------------------------------------------------------


def _masked(cls_path: str):
    """A constructor for a cell with recurrent / input masks (default: dense)."""
    module, name = cls_path.rsplit(".", 1)

    def build(input_size, hidden_size, *, key, density=None, input_density=None):
        import importlib

        cls = getattr(importlib.import_module(module, __package__), name)
        return cls(input_size, hidden_size, key=key,
                   density=_ONE if density is None else density,
                   input_density=_ONE if input_density is None else input_density)

    return build


def _no_masks(cell: str, density, input_density) -> None:
    for flag, v in (("density", density), ("input_density", input_density)):
        if v is not None and v != _ONE:
            raise ValueError(f"the {cell} cell has no {flag.replace('_', ' ')} mask: leave "
                             f"--{flag.replace('_', '-')} unset (got {v}).")


def _lru(input_size, hidden_size, *, key, density=None, input_density=None):
    from ..cells.lru import LRUCore

    _no_masks("lru", density, input_density)
    return LRUCore(input_size, hidden_size, key=key, r_min=0.9, r_max=0.999)


def _columnar(input_size, hidden_size, *, key, density=None, input_density=None):
    from ..cells.columnar import Columnar

    _no_masks("columnar", None, input_density)
    return Columnar(input_size, hidden_size, key=key, density=0.0 if density is None else density)


register("cell", "vanilla", _masked("..cells.vanilla.VanillaRNN"), tags=("gated", "vanilla"),
         description="tanh RNN (masks: --density, --input-density)")
register("cell", "gru", _masked("..cells.gru.GRU"), tags=("gated",),
         description="GRU (masks: --density, --input-density)")
register("cell", "lstm", _masked("..cells.lstm.LSTM"), tags=("gated",),
         description="LSTM (masks: --density, --input-density)")
register("cell", "egru", _masked("..cells.egru.EGRU"), tags=("gated", "egru"),
         description="event-based GRU: units emit only above a threshold (sparse activity)")
register("cell", "lru", _lru, tags=("gated", "lru", "elementwise"),
         description="LRU core: complex-diagonal linear recurrence, |λ| in [0.9, 0.999]")
register("cell", "columnar", _columnar, tags=("gated", "columnar"),
         description="columnar network: hidden = columns of one LSTM unit each; --density "
                     "is the cross-column density ρ (default 0)")


# --- networks ---------------------------------------------------------------------------------


def _readout(cell_factory, input_size, output_size, hidden_size, *, key, layers=1):
    import jax

    from ..nets.readout import Readout

    if layers != 1:
        raise ValueError(f"the readout network has one recurrent layer; got --layers {layers} "
                         "(use --network lrunet for a stack).")
    k_cell, k_out = jax.random.split(key)
    return Readout(cell_factory(input_size, hidden_size, k_cell), output_size, key=k_out)


def _lrunet(cell_factory, input_size, output_size, hidden_size, *, key, layers=1):
    from ..nets.lru_net import LRUNet

    return LRUNet(input_size, output_size, d_model=hidden_size,
                  d_hidden=max(1, hidden_size // 2), n_layers=layers, key=key)


register("network", "readout", _readout,
         description="one recurrent cell with a linear readout (rx.Readout)")
register("network", "lrunet", _lrunet, requires="lru",
         description="a stack of LRU blocks (norm → LRU → GLU → residual) with linear "
                     "encoder/decoder; hidden = d_model, d_hidden = hidden/2 (rx.LRUNet)")


# --- tasks --------------------------------------------------------------------------------


def _copy(*, bits=7, pattern_length=20, padding=7):
    from ..tasks.copy import CopyTask

    return CopyTask(bits, pattern_length, padding)


def _curriculum(*, max_length=64):
    from ..tasks.copy import CopyCurriculum

    return CopyCurriculum(max_length=max_length)


def _charlm(*, text, byte_level=False):
    from ..tasks.charlm import CharLM

    return CharLM.from_file(text, byte_level=byte_level)


def _animal(variant: str):
    def build(**options):
        from ..tasks import animal

        return getattr(animal, variant)(**options)

    return build


register("task", "copy", _copy, description="copy task: 7 bits × 20 steps, 7 blanks, recall (T = 48)")
register("task", "copy-curriculum", _curriculum,
         description="the SnAp paper's 1-bit copy curriculum (L grows at < 0.15 bits/step)")
register("task", "charlm", _charlm,
         description="next-character prediction on a local text file (bits per character)")
register("task", "trace-patterning", _animal("trace_patterning"),
         description="animal-learning stream: 3-of-6 CS patterns, US after ISI (TD prediction)")
register("task", "trace-conditioning", _animal("trace_conditioning"),
         description="animal-learning stream: one CS, US after ISI (TD prediction)")
register("task", "noisy-patterning", _animal("noisy_patterning"),
         description="trace patterning with a 0.9 / 0.1 chance of the US (TD prediction)")
