"""Sequential CIFAR-10 from the user's local files (the python-pickle batches).

Reads the folder ``cifar-10-batches-py`` of the "CIFAR-10 python version" download
(``data_batch_1`` … ``data_batch_5`` for training, ``test_batch`` for testing; each a
pickled dict with ``b"data"``, ``uint8 [10000, 3072]`` with the red, green and blue
32×32 planes one after another, and ``b"labels"``).  Each image becomes a sequence of
1024 pixels in row-major order, scaled to ``[0, 1]``: 3 inputs per step (RGB), or 1
with ``grey=True`` (luminance ``0.299 R + 0.587 G + 0.114 B``, as LRA's "Image" task).
Nothing is downloaded; :func:`sequential_cifar10` streams it as a
:class:`~rtrlax.tasks.classification.SequenceClassification`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .classification import SequenceClassification

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
LAYOUT = (
    "a folder 'cifar-10-batches-py' holding the pickled batches data_batch_1 … data_batch_5 and "
    "test_batch (the 'CIFAR-10 python version' from https://www.cs.toronto.edu/~kriz/cifar.html, "
    "extracted); pass that folder or the one containing it"
)
GREY = np.array([0.299, 0.587, 0.114])


def find_folder(path, names, folder_name: str, layout: str) -> Path:
    """The folder holding every file in ``names``: ``path`` itself or ``path/folder_name``."""
    path = Path(path)
    for folder in (path, path / folder_name):
        if folder.is_dir() and all((folder / n).is_file() for n in names):
            return folder
    missing = [n for n in names if not (path / n).is_file() and not (path / folder_name / n).is_file()]
    raise ValueError(f"{path} does not hold the expected files (missing: {', '.join(missing)}); expected {layout}.")


def load_cifar10(path, split: str = "train", *, grey: bool = False, dtype=np.float32):
    """``(xs, labels)``: ``xs [n, 1024, 3]`` (or ``[n, 1024, 1]`` grey) in ``[0, 1]``,
    ``labels [n]`` (0–9), read from ``cifar-10-batches-py`` (see the module docstring)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    names = TRAIN_FILES if split == "train" else TEST_FILES
    folder = find_folder(path, names, "cifar-10-batches-py", LAYOUT)
    data, labels = [], []
    for n in names:
        try:
            with open(folder / n, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            x = np.asarray(batch[b"data"], np.uint8)
            y = np.asarray(batch[b"labels"], np.int64)
        except Exception as err:  # noqa: BLE001 - any unreadable batch is a layout error
            raise ValueError(f"{folder / n} is not a CIFAR-10 python batch ({err!r}); expected {LAYOUT}.") from None
        if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (x.shape[0],):
            raise ValueError(
                f"{folder / n}: b'data' must be uint8 [n, 3072] and b'labels' n labels, got {x.shape} and "
                f"{y.shape}; expected {LAYOUT}."
            )
        data.append(x)
        labels.append(y)
    x = np.concatenate(data).reshape(-1, 3, 1024).transpose(0, 2, 1).astype(np.float64) / 255.0
    if grey:
        x = x @ GREY[:, None]
    return x.astype(dtype), np.concatenate(labels).astype(np.int32)


def sequential_cifar10(path, split: str = "train", *, grey: bool = False, every_step: bool = True,
                       dtype=np.float32) -> SequenceClassification:  # fmt: skip
    """Sequential CIFAR-10 (T = 1024 pixels) as a stream task (10 classes)."""
    xs, labels = load_cifar10(path, split, grey=grey, dtype=dtype)
    return SequenceClassification(xs, labels, n_classes=10, every_step=every_step)
