"""Registry entries of the sequence-classification tasks (generated and from the user's files).

Imported by the registry on first use once listed in
:data:`rtrlax.experiments.registry.PLUGINS` (or with ``--plugin rtrlax.experiments.sequence_tasks``).
Every constructor imports its task when called, so reading the table imports no JAX.
Each builds a :class:`~rtrlax.tasks.classification.SequenceClassification`: whole
labelled sequences streamed one step at a time, a reset at each sequence's start, the
cross-entropy of the (pooled) prediction at every step, accuracy read at the last step.
"""

from __future__ import annotations

from .registry import register


def _listops(*, n=2000, seed=0, max_length=512, min_length=1, max_depth=10, max_args=10,
             operator_prob=0.25, every_step=True):  # fmt: skip
    from ..tasks.classification import SequenceClassification
    from ..tasks.listops import VOCAB, listops

    tokens, _, labels = listops(n, seed=seed, max_length=max_length, min_length=min_length,
                                max_depth=max_depth, max_args=max_args, operator_prob=operator_prob)  # fmt: skip
    return SequenceClassification(tokens, labels, n_classes=10, vocab_size=VOCAB, every_step=every_step)


def _digits(*, split="train", seed=0, every_step=True):
    from ..tasks.classification import SequenceClassification
    from ..tasks.digits import sequential_digits

    xs, labels = sequential_digits(split, seed=seed)
    return SequenceClassification(xs, labels, n_classes=10, every_step=every_step)


def _scifar(*, path, split="train", grey=False, every_step=True):
    from ..tasks.cifar import sequential_cifar10

    return sequential_cifar10(path, split, grey=grey, every_step=every_step)


def _imdb(*, path, split="train", length=1024, max_reviews=None, every_step=True):
    from ..tasks.imdb import imdb_bytes

    return imdb_bytes(path, split, length=length, max_reviews=max_reviews, every_step=every_step)


def _lra_listops(*, path, split="train", max_length=2000, max_examples=None, every_step=True):
    from ..tasks.lra_listops import lra_listops

    return lra_listops(path, split, max_length=max_length, max_examples=max_examples, every_step=every_step)


register("task", "listops", _listops,
         description="ListOps generated offline (LRA grammar), tokens one-hot, label at the end")
register("task", "digits", _digits,
         description="sequential 8×8 digits (scikit-learn), pixel by pixel (T = 64), 10 classes")
register("task", "scifar", _scifar, aliases=("sequential-cifar10",),
         description="sequential CIFAR-10 from a local cifar-10-batches-py folder (T = 1024; path=...)")
register("task", "imdb", _imdb, aliases=("imdb-bytes",),
         description="byte-level IMDB sentiment from a local aclImdb folder (path=..., length=1024)")
register("task", "lra-listops", _lra_listops,
         description="LRA ListOps from local basic_{train,val,test}.tsv files (path=..., T = 2000)")
