"""Character-level LM task: vocabulary, split, stream order, loss in bits, evaluation,
and a short online run through the learner and the CLI."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rtrlax as rx
from rtrlax.tasks.charlm import CharLM, evaluate_bpc

TEXT = "the cat sat on the mat. " * 10 + "zq!"  # the held-out tail has unseen characters


def test_vocabulary_and_split():
    task = CharLM(TEXT)
    n_train = int(len(TEXT) * 0.9)
    assert task.n_train == n_train
    assert set(task.vocabulary[:-1]) == set(TEXT[:n_train])
    assert task.vocabulary[-1] == "<unk>" and task.unknown == len(task.vocabulary) - 1
    assert task.input_size == task.output_size == len(task.vocabulary)
    decoded = "".join(task.vocabulary[i] for i in np.asarray(task.train_tokens()))
    assert decoded == TEXT[:n_train]
    assert int(task.test_tokens()[-1]) == task.unknown  # '!' never seen in training
    bytes_task = CharLM(TEXT, byte_level=True)
    assert bytes_task.input_size == 256
    assert bytes(np.asarray(bytes_task.tokens, np.uint8)) == TEXT.encode()


def test_stream_reads_text_in_order_and_wraps():
    task = CharLM(TEXT)
    state = task.init(jax.random.key(0))
    sample = eqx.filter_jit(lambda s: task.sample(s))
    toks = np.asarray(task.tokens)
    for step in range(task.n_train + 3):
        pos = int(state.position)
        state, s = sample(state)
        assert int(jnp.argmax(s.x)) == toks[pos] and float(s.x.sum()) == 1.0
        assert int(s.target) == toks[pos + 1]
        assert bool(s.reset) == (pos == 0)
        assert pos + 1 < task.n_train  # never reads the held-out part


def test_loss_is_bits_and_uniform_model_scores_log2_vocab():
    task = CharLM(TEXT)
    v = task.output_size
    y = jnp.zeros(v)
    assert jnp.allclose(task.loss(y, 3), jnp.log2(v))
    y = jnp.full(v, -50.0).at[2].set(50.0)
    assert float(task.loss(y, 2)) < 1e-10
    model = rx.Readout(rx.GRU(v, 4, key=jax.random.key(0)), v, key=jax.random.key(1), zero_init=True)
    assert jnp.allclose(evaluate_bpc(model, task), jnp.log2(v))


def test_online_learning_lowers_bpc(tmp_path):
    task = CharLM(TEXT)
    model = rx.Readout(rx.EGRU(task.input_size, 12, key=jax.random.key(0)), task.output_size, key=jax.random.key(1))
    before = float(evaluate_bpc(model, task))
    learner = rx.OnlineLearner(model, rx.SparseRTRL(0.5), optax.adam(2e-2))
    state = learner.init(jax.random.key(2), batch_size=2, task=task)
    state, metrics = learner.run(state, task, 300, chunk=150)
    assert metrics["bpc"][-1] < metrics["bpc"][0]
    after = float(evaluate_bpc(learner.model(state), task))
    assert after < before - 0.5


def test_from_file_and_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    assert CharLM.from_file(path).vocabulary == CharLM(TEXT).vocabulary
    with pytest.raises(ValueError, match="no text file"):
        CharLM.from_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="too short"):
        CharLM("abc")
    with pytest.raises(ValueError, match="train_fraction"):
        CharLM(TEXT, train_fraction=1.0)


@pytest.mark.slow
def test_cli_runs_charlm(tmp_path, capsys):
    from rtrlax.cli import main

    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    out = tmp_path / "run"
    main(["run", "charlm", "--text", str(path), "--cell", "egru", "--estimator", "sparsertrl:0.5",
          "--hidden", "8", "--steps", "40", "--chunk", "20", "--batch", "1", "--quiet",
          "--out", str(out), "--eval-chars", "20"])
    assert (out / "metrics.json").is_file()
    assert "held-out bpc" in capsys.readouterr().out
