"""Loaders of the user's files (sequential CIFAR-10, byte-level IMDB, LRA ListOps) on tiny
files of each format written here, and the stream task they feed."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrlax.tasks.cifar import load_cifar10, sequential_cifar10
from rtrlax.tasks.classification import SequenceClassification
from rtrlax.tasks.imdb import PAD as IMDB_PAD
from rtrlax.tasks.imdb import imdb_bytes, load_imdb
from rtrlax.tasks.listops import PAD, decode, evaluate, parse
from rtrlax.tasks.lra_listops import load_lra_listops, lra_listops


def write_cifar(root, per_batch=2, seed=0):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.randint(0, 256, (per_batch, 3072)).astype(np.uint8),
                 b"labels": rng.randint(0, 10, per_batch).tolist(), b"batch_label": name.encode()}  # fmt: skip
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        batches[name] = batch
    return folder, batches


def test_cifar_pixels_are_read_row_major_with_channels_per_step(tmp_path):
    folder, batches = write_cifar(tmp_path)
    xs, labels = load_cifar10(tmp_path, "train")  # the parent folder is accepted too
    assert xs.shape == (10, 1024, 3) and labels.shape == (10,)
    raw = batches["data_batch_2"][b"data"][1]  # the 4th image: batch 2, row 1
    r, c = 3, 17  # pixel (row 3, column 17) is step 3 * 32 + 17
    want = np.array([raw[ch * 1024 + r * 32 + c] for ch in range(3)]) / 255.0
    np.testing.assert_allclose(xs[3, r * 32 + c], want, rtol=1e-6)
    assert labels[3] == batches["data_batch_2"][b"labels"][1]
    grey, _ = load_cifar10(folder, "test", grey=True)
    test, _ = load_cifar10(folder, "test")
    assert grey.shape == (2, 1024, 1)
    np.testing.assert_allclose(grey[..., 0], test @ np.array([0.299, 0.587, 0.114]), rtol=1e-5)
    task = sequential_cifar10(folder, "test", grey=True)
    assert (task.input_size, task.output_size, task.sequence_length) == (1, 10, 1024)


def test_cifar_wrong_layout_names_the_expected_folder(tmp_path):
    with pytest.raises(ValueError, match="cifar-10-batches-py.*data_batch_1"):
        load_cifar10(tmp_path)
    folder, _ = write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        load_cifar10(folder, "test")


def write_imdb(root):
    reviews = {"train": {"pos": ["Great film!", "Loved it, " * 20], "neg": ["Bad.", "Dull \u00e9\u00e9."]},
               "test": {"pos": ["Fine."], "neg": ["Awful."]}}  # fmt: skip
    for split, by_label in reviews.items():
        for label, texts in by_label.items():
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i, text in enumerate(texts):
                (d / f"{i}_7.txt").write_text(text, encoding="utf-8")
    return reviews


def test_imdb_bytes_are_cut_and_padded_to_the_stated_length(tmp_path):
    reviews = write_imdb(tmp_path)
    tokens, lengths, labels = load_imdb(tmp_path, "train", length=16)
    assert tokens.shape == (4, 16) and labels.tolist() == [0, 0, 1, 1]  # neg first, sorted files
    dull = "Dull \u00e9\u00e9.".encode()
    assert lengths[1] == len(dull) and tokens[1, : len(dull)].tolist() == list(dull)
    assert np.all(tokens[1, len(dull) :] == IMDB_PAD)
    assert lengths[3] == 16 and bytes(tokens[3].astype(np.uint8)) == reviews["train"]["pos"][1].encode()[:16]
    task = imdb_bytes(tmp_path / "aclImdb", "test", length=8)
    assert (task.input_size, task.output_size, task.sequence_length) == (257, 2, 8)


def test_imdb_wrong_layout_names_the_expected_folders(tmp_path):
    with pytest.raises(ValueError, match="aclImdb.*pos"):
        load_imdb(tmp_path)
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (tmp_path / "aclImdb" / "train" / "neg").mkdir(parents=True)
    with pytest.raises(ValueError, match="no \\*.txt reviews"):
        load_imdb(tmp_path)


LRA_LINES = [
    ("( ( ( [MAX 2 ) 9 ) ]", 9),
    ("( ( ( ( [SM 3 ) ( ( [MIN 4 ) 7 ) ] ) 8 ) ]", 5),
    ("( ( ( [MED 1 ) 5 ) 8 ) ]", 5),
]


def write_lra(root, lines=LRA_LINES, header="Source\tTarget"):
    folder = root / "listops-1000"
    folder.mkdir()
    text = "\n".join([header] + [f"{s}\t{y}" for s, y in lines]) + "\n"
    for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
        (folder / name).write_text(text)
    return folder


def test_lra_listops_tokens_match_the_generator_and_their_labels(tmp_path):
    write_lra(tmp_path)
    tokens, lengths, labels = load_lra_listops(tmp_path, "val", max_length=12)
    assert tokens.shape == (3, 12) and labels.tolist() == [9, 5, 5]
    assert lengths.tolist() == [4, 8, 5]
    for row, y in zip(tokens, labels):
        assert evaluate(parse(decode(row))) == y  # same ids and grammar as tasks/listops.py
    assert np.all(tokens[0, 4:] == PAD)
    task = lra_listops(tmp_path / "listops-1000" / "basic_test.tsv", max_length=12)
    assert (task.input_size, task.output_size) == (16, 10)


def test_lra_listops_wrong_layout_names_the_expected_files(tmp_path):
    with pytest.raises(ValueError, match="basic_train.tsv"):
        load_lra_listops(tmp_path)
    write_lra(tmp_path, header="Input\tOutput")
    with pytest.raises(ValueError, match="Source<TAB>Target"):
        load_lra_listops(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("Source\tTarget\n( [MAX 2 ] )\tnine\n")
    with pytest.raises(ValueError, match="line 2"):
        load_lra_listops(bad)


def test_sequence_task_streams_whole_sequences_with_resets_and_last_step_accuracy():
    seqs = np.array([[1, 2, 3], [4, 0, 1]])
    task = SequenceClassification(seqs, np.array([0, 1]), vocab_size=5)

    def body(s, _):
        s, smp = task.sample(s)
        return s, (smp, task.metrics(jnp.array([1.0, 0.0]), smp.target))

    _, (smp, met) = jax.lax.scan(body, task.init(jax.random.key(0)), None, length=12)
    assert smp.reset.tolist() == [True, False, False] * 4
    ids = jnp.argmax(smp.x, -1).reshape(4, 3)
    labels = smp.target.label.reshape(4, 3)
    for r in range(4):  # each block of 3 steps is one whole sequence with its label
        k = int(labels[r, 0])
        assert ids[r].tolist() == seqs[k].tolist() and labels[r].tolist() == [k] * 3
    value, count = met["accuracy"]
    assert count.tolist() == [0, 0, 1] * 4  # read at the last step only
    assert value.sum() == jnp.sum(labels[:, -1] == 0)  # the prediction is class 0
    assert jnp.all(smp.target.weight == 1.0)


def test_sequence_task_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="vocab_size"):
        SequenceClassification(np.zeros((2, 3), np.int32), np.zeros(2))
    with pytest.raises(ValueError, match="labels must have shape"):
        SequenceClassification(np.zeros((2, 3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="token ids must lie"):
        SequenceClassification(np.full((2, 3), 7), np.zeros(2), vocab_size=5)


def test_registry_entries_build_the_file_tasks(tmp_path):
    from rtrlax.experiments import registry

    write_cifar(tmp_path)
    write_imdb(tmp_path)
    write_lra(tmp_path)
    scifar = registry.make_task("scifar", path=tmp_path, split="test", grey=True)
    imdb = registry.make_task("imdb", path=tmp_path, length=8)
    lra = registry.make_task("lra-listops", path=tmp_path, max_length=12)
    listops = registry.make_task("listops", n=4, max_length=20)
    assert [t.sequence_length for t in (scifar, imdb, lra, listops)] == [1024, 8, 12, 20]
    assert all(isinstance(t, SequenceClassification) for t in (scifar, imdb, lra, listops))
