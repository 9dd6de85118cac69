"""Registry entries of the element-wise cells and of deep stacks of any cell.

Cells (all ``gated`` and ``elementwise``: SnAp-1 is exact RTRL on them; the ``linear``
ones also evaluate whole sequences with a parallel scan): ``rtu``, ``nonlinear-rtu``,
``elstm``, ``mingru``, ``minlstm``, ``rglru``.  They have no recurrent weight matrix,
so no ``--density``; ``--input-density`` masks their input weights.

Network: ``deep`` — ``rx.DeepRNN``, encoder → N × [LayerNorm → cell → GELU → GLU →
residual] → decoder around any registered cell (``hidden`` = d_model = d_hidden).

Imported by the registry on first use when listed in ``registry.PLUGINS``; importing
this module registers the entries (no JAX import until an entry is built).
"""

from __future__ import annotations

from .registry import register

_CELLS = {
    "rtu": ("..cells.rtu", "RTU", ("gated", "elementwise", "linear"),
            "recurrent trace unit (linear): complex-diagonal rotation, ReLU on the output; "
            "output 2 × hidden"),
    "nonlinear-rtu": ("..cells.rtu", "NonlinearRTU", ("gated", "elementwise"),
                      "recurrent trace unit with ReLU inside the recurrence; output 2 × hidden"),
    "elstm": ("..cells.elstm", "ELSTM", ("gated", "elementwise"),
              "element-wise LSTM: recurrent weights are vectors (exact RTRL = SnAp-1)"),
    "mingru": ("..cells.mingru", "MinGRU", ("gated", "elementwise", "linear"),
               "minGRU: gates read the input only; linear in the state"),
    "minlstm": ("..cells.minlstm", "MinLSTM", ("gated", "elementwise", "linear"),
                "minLSTM: normalised forget/input gates from the input; linear in the state"),
    "rglru": ("..cells.rglru", "RGLRU", ("gated", "elementwise", "linear"),
              "RG-LRU (Hawk/Griffin): input-gated diagonal linear recurrence, c = 8"),
}  # fmt: skip


def _elementwise(module: str, name: str, cell: str):
    def build(input_size, hidden_size, *, key, density=None, input_density=None):
        import importlib

        if density is not None and density != 1.0:
            raise ValueError(f"the {cell} cell has no recurrent weight matrix to mask: leave "
                             f"--density unset (got {density}); --input-density masks its "
                             "input weights.")  # fmt: skip
        cls = getattr(importlib.import_module(module, __package__), name)
        return cls(input_size, hidden_size, key=key,
                   input_density=1.0 if input_density is None else input_density)  # fmt: skip

    return build


for _name, (_module, _cls, _tags, _description) in _CELLS.items():
    register("cell", _name, _elementwise(_module, _cls, _name), tags=_tags,
             description=_description)  # fmt: skip


def _deep(cell_factory, input_size, output_size, hidden_size, *, key, layers=1):
    from ..nets.deep import DeepRNN

    return DeepRNN(input_size, output_size, cell=lambda i, h, *, key: cell_factory(i, h, key),
                   d_model=hidden_size, d_hidden=hidden_size, n_layers=layers, key=key)  # fmt: skip


register("network", "deep", _deep,
         description="a deep stack of any cell: encoder → N × [norm → cell → GELU → GLU → "
                     "residual] → decoder; hidden = d_model = d_hidden (rx.DeepRNN); "
                     "rx.SnAp(1) learns it with per-layer traces")  # fmt: skip
