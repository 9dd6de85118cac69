"""IMDB sentiment, byte level (LRA's "Text" task), from the user's local ``aclImdb`` folder.

Reads the extracted "Large Movie Review Dataset" (Maas et al. 2011): ``aclImdb/train``
and ``aclImdb/test``, each with ``pos/`` and ``neg/`` folders of ``*.txt`` reviews
(label 1 and 0).  Each review is its UTF-8 bytes (ids 0–255), cut to ``length`` bytes
or padded after its end with ``PAD = 256`` (``VOCAB = 257``); LRA uses ``length = 4096``
(the default here is 1024: about a review's median length, shorter to stream).
Files are read in sorted order, so the data set is the same on every machine.
:func:`imdb_bytes` streams it as a :class:`~rtrlax.tasks.classification.SequenceClassification`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classification import SequenceClassification

PAD = 256
VOCAB = 257
LAYOUT = (
    "the extracted 'aclImdb' folder of the Large Movie Review Dataset "
    "(https://ai.stanford.edu/~amaas/data/sentiment/): aclImdb/<split>/pos/*.txt and "
    "aclImdb/<split>/neg/*.txt; pass the aclImdb folder or the one containing it"
)


def _split_folder(path, split: str) -> Path:
    path = Path(path)
    for root in (path, path / "aclImdb"):
        folder = root / split
        if (folder / "pos").is_dir() and (folder / "neg").is_dir():
            return folder
    raise ValueError(f"{path} has no {split}/pos and {split}/neg folders; expected {LAYOUT}.")


def load_imdb(path, split: str = "train", *, length: int = 1024, max_reviews: int | None = None):
    """``(tokens, lengths, labels)``: ``tokens [n, length]`` int32 byte ids padded with
    ``PAD``, ``lengths [n]`` (bytes kept), ``labels [n]`` (1 positive, 0 negative).

    ``max_reviews``: keep at most this many reviews of each label (the first in sorted
    file order), for a quick run."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length (bytes per review after cutting/padding) must be a positive integer, got {length!r}.")
    folder = _split_folder(path, split)
    rows, lengths, labels = [], [], []
    for label, name in ((0, "neg"), (1, "pos")):
        files = sorted((folder / name).glob("*.txt"))
        if not files:
            raise ValueError(f"{folder / name} holds no *.txt reviews; expected {LAYOUT}.")
        for f in files[:max_reviews]:
            data = np.frombuffer(f.read_bytes()[:length], np.uint8)
            row = np.full(length, PAD, np.int32)
            row[: len(data)] = data
            rows.append(row)
            lengths.append(len(data))
            labels.append(label)
    return np.stack(rows), np.asarray(lengths, np.int32), np.asarray(labels, np.int32)


def imdb_bytes(path, split: str = "train", *, length: int = 1024, max_reviews: int | None = None,
               every_step: bool = True) -> SequenceClassification:  # fmt: skip
    """Byte-level IMDB as a stream task (one-hot bytes + padding, 2 classes)."""
    tokens, _, labels = load_imdb(path, split, length=length, max_reviews=max_reviews)
    return SequenceClassification(tokens, labels, n_classes=2, vocab_size=VOCAB, every_step=every_step)
