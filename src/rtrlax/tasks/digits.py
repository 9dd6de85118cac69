"""Sequential digits: scikit-learn's bundled 8×8 digits, pixel by pixel (T = 64).

An offline stand-in for sequential MNIST/CIFAR (no download: the 1,797 images ship
inside scikit-learn).  Each image is read row by row, one pixel per step, scaled to
``[0, 1]`` (input size 1); the label (0–9) is to be predicted at the end.

Sequence classification online (the online-LRU paper's choice): the model pools its
features with a running mean whose gradient flows only to the current step
(``rx.LRUNet(..., pool=True)``), and the loss is the cross-entropy of the pooled
prediction at *every* step (``ClassTarget.weight`` = 1 everywhere; set it to 1 only at
the last step to score the end alone).  Accuracy is read at the last step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class ClassTarget(NamedTuple):
    label: Int[Array, ""]  #: the class of the sequence
    weight: Float[Array, ""]  #: weight of this step's loss (0: not scored)


def class_loss(logits: Float[Array, " classes"], target: ClassTarget) -> Float[Array, ""]:
    """``weight ·`` cross-entropy (nats) of ``logits`` against ``target.label``."""
    logp = jax.nn.log_softmax(logits)
    return -target.weight * jnp.take(logp, target.label)


def class_targets(labels: Int[Array, " n"], T: int, *, every_step: bool = True) -> ClassTarget:
    """Per-step targets ``[n, T]`` for sequence labels: scored at every step or the last."""
    labels = jnp.asarray(labels)
    weight = jnp.ones(T) if every_step else jnp.zeros(T).at[-1].set(1.0)
    return ClassTarget(
        jnp.broadcast_to(labels[:, None], (labels.shape[0], T)),
        jnp.broadcast_to(weight, (labels.shape[0], T)),
    )


def sequential_digits(
    split: str = "train", *, test_fraction: float = 0.2, seed: int = 0, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """``(xs, labels)``: ``xs`` of shape ``[n, 64, 1]`` in ``[0, 1]``, ``labels [n]``.

    The split is a fixed permutation from ``seed``: ``test_fraction`` of the images
    are the test set, the rest train.  ``split`` is ``"train"``, ``"test"`` or ``"all"``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.asarray(data.images, dtype) / 16.0  # [1797, 8, 8], pixel values 0..16
    labels = np.asarray(data.target, np.int32)
    order = np.random.RandomState(seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    pick = {"test": order[:n_test], "train": order[n_test:], "all": np.arange(len(labels))}[split]
    return images[pick].reshape(len(pick), 64, 1), labels[pick]
