"""LRA ListOps from the user's local TSV files (``listops-1000`` of the LRA release).

The Long Range Arena release holds ``basic_train.tsv``, ``basic_val.tsv`` and
``basic_test.tsv``: a header line ``Source<TAB>Target``, then one expression per line,
e.g. ``( ( [MAX 2 ) 9 ) ]<TAB>9``.  Parentheses only group the generator's tree and
are dropped (as LRA's own input pipeline does); the remaining tokens — digits,
``[MAX``, ``[MIN``, ``[MED``, ``[SM``, ``]`` — get the ids of the generated ListOps
(``tasks/listops.py``), padded with its ``PAD`` to ``max_length`` (LRA: 2000).
:func:`lra_listops` streams them as a
:class:`~rtrlax.tasks.classification.SequenceClassification`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classification import SequenceClassification
from .listops import PAD, TOKENS, VOCAB

_ID = {t: i for i, t in enumerate(TOKENS)}
SPLITS = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
LAYOUT = (
    "the LRA ListOps folder (lra_release/listops-1000) holding basic_train.tsv, basic_val.tsv and "
    "basic_test.tsv, each a header 'Source<TAB>Target' then one '<expression><TAB><label 0-9>' per line; "
    "pass that folder or the file itself"
)


def _file(path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}.")
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path, path / "listops-1000", path / "lra_release" / "listops-1000"):
        if (folder / SPLITS[split]).is_file():
            return folder / SPLITS[split]
    raise ValueError(f"no {SPLITS[split]} under {path}; expected {LAYOUT}.")


def load_lra_listops(path, split: str = "train", *, max_length: int = 2000, max_examples: int | None = None):
    """``(tokens, lengths, labels)`` like :func:`rtrlax.tasks.listops.listops`; expressions
    longer than ``max_length`` tokens are cut (counted in the returned lengths as cut)."""
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}.")
    f = _file(path, split)
    lines = f.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip().split("\t") != ["Source", "Target"]:
        raise ValueError(f"{f} does not start with the header 'Source<TAB>Target'; expected {LAYOUT}.")
    rows, lengths, labels = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if max_examples is not None and len(rows) >= max_examples:
            break
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit() or not 0 <= int(parts[1]) <= 9:
            raise ValueError(f"{f}, line {number}: expected '<expression><TAB><label 0-9>', got {line[:80]!r}; expected {LAYOUT}.")
        toks = [t for t in parts[0].split() if t not in ("(", ")")]
        unknown = [t for t in toks if t not in _ID]
        if unknown:
            raise ValueError(f"{f}, line {number}: unknown token {unknown[0]!r} (expected digits, {', '.join(TOKENS[10:])}).")
        ids = [_ID[t] for t in toks][:max_length]
        row = np.full(max_length, PAD, np.int32)
        row[: len(ids)] = ids
        rows.append(row)
        lengths.append(len(ids))
        labels.append(int(parts[1]))
    if not rows:
        raise ValueError(f"{f} holds no examples; expected {LAYOUT}.")
    return np.stack(rows), np.asarray(lengths, np.int32), np.asarray(labels, np.int32)


def lra_listops(path, split: str = "train", *, max_length: int = 2000, max_examples: int | None = None,
                every_step: bool = True) -> SequenceClassification:  # fmt: skip
    """LRA ListOps as a stream task (one-hot tokens, 10 classes)."""
    tokens, _, labels = load_lra_listops(path, split, max_length=max_length, max_examples=max_examples)
    return SequenceClassification(tokens, labels, n_classes=10, vocab_size=VOCAB, every_step=every_step)
