"""Checkpoints that lose nothing (library side): periodic saves with the metrics, the
last k kept, checksums, a fallback past corrupt checkpoints, hyper-parameters compared
on resume, nothing of the user's ever touched, a clean stop on a signal, the model
alone for inference."""

import json
import os
import signal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rtrlax as rx
from rtrlax.learning import checkpoint as ck

# one small set-up for the whole file (shapes shared, so compilations are reused)
TASK = rx.CopyTask(bits=2, pattern_length=3, padding=1)
NET = rx.Readout(rx.GRU(TASK.input_size, 4, key=jax.random.key(0)), TASK.output_size,
                 key=jax.random.key(1))  # fmt: skip


def learner(lr=1e-2):
    return rx.OnlineLearner(NET, rx.SnAp(1), optax.adam(lr), update_every=2)


def fresh(lrn):
    return lrn.init(jax.random.key(3), batch_size=2, task=TASK)


def assert_same(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_periodic_checkpoints_keep_k_and_resume_bit_identically(tmp_path):
    lrn = learner()
    straight, m_straight = lrn.run(fresh(lrn), TASK, 24, chunk=6, save_every=8,
                                   directory=tmp_path / "a", keep=2, hparams={"lr": 1e-2})  # fmt: skip
    # chunks end on the save points: 6, 8, 14, 16, ... (chunks of 6 and 2: two compilations)
    assert list(m_straight["step"]) == [6, 8, 14, 16, 22, 24]
    kept = [p.name for p in ck.list_checkpoints(tmp_path / "a")]
    assert kept == ["step-000000000016", "step-000000000024"]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    # the 16-step checkpoint holds the metrics so far; resuming it ends where `straight` did
    part = ck.load_state(tmp_path / "a" / kept[0], fresh(lrn), with_metrics=True)
    assert list(part.metrics["step"]) == [6, 8, 14, 16]
    assert part.meta["step"] == 16 and part.meta["hparams"]["lr"] == 1e-2
    (tmp_path / "a" / kept[1] / "state.npz").unlink()  # the newest is now partial
    with pytest.warns(UserWarning, match="skipping a bad checkpoint"):
        state, metrics = lrn.resume(tmp_path / "a", batch_size=2, task=TASK, hparams={"lr": 1e-2})
    assert int(state.step) == 16
    resumed, m_resumed = lrn.run(state, TASK, 8, chunk=6, save_every=8, metrics=metrics,
                                 directory=tmp_path / "b", hparams={"lr": 1e-2})  # fmt: skip
    assert_same(straight, resumed)
    for k in m_straight:
        np.testing.assert_array_equal(m_straight[k], m_resumed[k])


def test_corrupt_and_partial_checkpoints_name_the_file(tmp_path):
    lrn = learner()
    state = fresh(lrn)
    lrn.save(state, tmp_path / "c")
    data = (tmp_path / "c" / "state.npz").read_bytes()
    (tmp_path / "c" / "state.npz").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ck.CheckpointError, match=r"state\.npz is corrupt or truncated"):
        lrn.restore(tmp_path / "c", batch_size=2, task=TASK)
    (tmp_path / "c" / "meta.json").write_text("{not json")
    with pytest.raises(ck.CheckpointError, match=r"meta\.json is unreadable or corrupt"):
        lrn.restore(tmp_path / "c", batch_size=2, task=TASK)
    (tmp_path / "c" / "meta.json").unlink()
    with pytest.raises(ck.CheckpointError, match=r"meta\.json is missing"):
        lrn.restore(tmp_path / "c", batch_size=2, task=TASK)
    # without fallback, a bad newest checkpoint is an error naming it
    lrn.run(state, TASK, 4, chunk=2, save_every=2, directory=tmp_path / "r")
    newest = ck.list_checkpoints(tmp_path / "r")[-1]
    (newest / "state.npz").write_bytes(b"garbage")
    with pytest.raises(ck.CheckpointError, match=str(newest.name)):
        lrn.resume(tmp_path / "r", batch_size=2, task=TASK, fallback=False)
    assert int(lrn.resume(tmp_path / "r", batch_size=2, task=TASK)[0].step) == 2
    with pytest.raises(ck.CheckpointError, match="no learner checkpoint"):
        lrn.resume(tmp_path / "empty", batch_size=2, task=TASK)


def test_never_touches_what_is_not_ours(tmp_path):
    lrn = learner()
    state = fresh(lrn)
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    user_dir = tmp_path / "photos"
    user_dir.mkdir()
    (user_dir / "a.jpg").write_text("x")
    for target in (user_file, user_dir):
        with pytest.raises(ck.CheckpointError, match="left untouched"):
            lrn.save(state, target)
    with pytest.raises(ck.CheckpointError, match="left untouched"):  # before any work
        lrn.run(state, TASK, 10**9, save_every=5, directory=user_file)
    with pytest.raises(ck.CheckpointError, match="left untouched"):
        ck.save_model(user_file, NET)
    assert user_file.read_text() == "mine" and (user_dir / "a.jpg").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photos"]
    # a single checkpoint is not a directory of periodic ones
    lrn.save(state, tmp_path / "single")
    with pytest.raises(ck.CheckpointError, match="single checkpoint"):
        lrn.run(state, TASK, 2, save_every=2, directory=tmp_path / "single")
    # an empty directory and our own checkpoint may be (re)written
    (tmp_path / "empty").mkdir()
    lrn.save(state, tmp_path / "empty")
    lrn.save(state, tmp_path / "single")
    assert ck.is_checkpoint(tmp_path / "empty") and ck.is_checkpoint(tmp_path / "single")


def test_resume_with_other_hyperparameters_is_refused_unless_overridden(tmp_path):
    lrn = learner()
    lrn.run(fresh(lrn), TASK, 2, chunk=2, directory=tmp_path / "r", hparams={"lr": 0.01})
    with pytest.raises(ValueError, match=r"lr: checkpoint 0.01, now 0.02"):
        lrn.resume(tmp_path / "r", batch_size=2, task=TASK, hparams={"lr": 0.02})
    other = rx.OnlineLearner(NET, rx.SnAp(1), optax.adam(1e-2), update_every=1)
    with pytest.raises(ValueError, match=r"update_every: checkpoint 2, now 1"):
        other.resume(tmp_path / "r", batch_size=2, task=TASK, hparams={"lr": 0.01})
    with pytest.warns(UserWarning, match="changed hyper-parameters"):
        state, _ = lrn.resume(tmp_path / "r", batch_size=2, task=TASK, hparams={"lr": 0.02},
                              override=True)  # fmt: skip
    assert int(state.step) == 2
    meta = json.loads((ck.list_checkpoints(tmp_path / "r")[-1] / "meta.json").read_text())
    assert meta["hparams"]["estimator"] == "SnAp" and len(meta["sha256"]) == 64


def test_stop_on_signal_finishes_the_chunk_saves_and_returns(tmp_path):
    lrn = learner()
    calls = []

    def progress(done, _):
        calls.append(done)
        if done == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-run

    with ck.StopOnSignal() as stop:
        state, metrics = lrn.run(fresh(lrn), TASK, 100, chunk=2, progress=progress, stop=stop,
                                 directory=tmp_path / "r")  # fmt: skip
    assert stop.signal == signal.SIGTERM and int(state.step) == 4 and calls == [2, 4]
    assert [p.name for p in ck.list_checkpoints(tmp_path / "r")] == ["step-000000000004"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handler is back
    restored, m = lrn.resume(tmp_path / "r", batch_size=2, task=TASK)
    assert_same(state, restored)
    np.testing.assert_array_equal(m["step"], metrics["step"])


def test_model_alone_saves_and_loads_for_inference(tmp_path):
    trained = jax.tree_util.tree_map(lambda a: a + 0.5 if eqx.is_inexact_array(a) else a, NET)
    ck.save_model(tmp_path / "m.eqx", trained)
    ck.save_model(tmp_path / "m.eqx", trained)  # our own file may be overwritten
    loaded = ck.load_model(tmp_path / "m.eqx", NET)
    assert_same(eqx.filter(loaded, eqx.is_array), eqx.filter(trained, eqx.is_array))
    raw = (tmp_path / "m.eqx").read_bytes()
    (tmp_path / "m.eqx").write_bytes(raw[:-5])
    with pytest.raises(ck.CheckpointError, match="corrupt or truncated"):
        ck.load_model(tmp_path / "m.eqx", NET)
    other = rx.Readout(rx.GRU(TASK.input_size, 5, key=jax.random.key(0)), TASK.output_size,
                       key=jax.random.key(1))  # fmt: skip
    ck.save_model(tmp_path / "m.eqx", trained)
    with pytest.raises(ck.CheckpointError, match="does not match"):
        ck.load_model(tmp_path / "m.eqx", other)


# --- the command line: kill, stop, resume ----------------------------------------------------

CLI_RUN = ["run", "copy", "--hidden", "4", "--batch", "2", "--pattern-length", "2",
           "--padding", "1", "--bits", "2", "--chunk", "10", "--save-every", "10", "--quiet"]


def _rtrlax(args, **kw):
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", "import sys; from rtrlax.cli import main; "
                             "sys.exit(main(sys.argv[1:]))", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _wait_for(pred, proc, timeout=600):
    import time

    t0 = time.monotonic()
    while not pred():
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


def _final_arrays(root):
    newest = ck.list_checkpoints(root)[-1]
    with np.load(newest / "state.npz") as z:
        return newest.name, {k: z[k] for k in z.files}


@pytest.mark.slow  # three to four interpreter starts with JAX
def test_cli_sigkill_truncation_and_sigterm_resume_bit_identically(tmp_path):
    steps = 4000  # long enough to be interrupted (the interrupted runs never reach it)
    # the reference: an uninterrupted run of 60 steps
    ref = _rtrlax(CLI_RUN + ["--steps", 60, "--save", tmp_path / "ref", "--out", tmp_path / "o1"])
    assert ref.wait() == 0, ref.communicate()
    # SIGKILL once two checkpoints exist; truncate the newest; resume latest up to 60
    run = _rtrlax(CLI_RUN + ["--steps", steps, "--save", tmp_path / "k", "--out", tmp_path / "o2"])
    _wait_for(lambda: len(list((tmp_path / "k").glob("step-*/meta.json"))) >= 2, run)
    run.kill()
    run.wait()
    kept = ck.list_checkpoints(tmp_path / "k")
    newest = kept[-1] / "state.npz"
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated checkpoint
    resume = _rtrlax(CLI_RUN + ["--steps", 60, "--save", tmp_path / "k", "--resume", "latest",
                                "--out", tmp_path / "o3"])  # fmt: skip
    out, err = resume.communicate()
    assert resume.returncode == 0, err
    assert "skipping a bad checkpoint" in err and newest.parent.name in err
    name_a, a = _final_arrays(tmp_path / "ref")
    name_b, b = _final_arrays(tmp_path / "k")
    assert name_a == name_b == "step-000000000060"
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    m1 = json.loads((tmp_path / "o1" / "metrics.json").read_text())["history"]
    m3 = json.loads((tmp_path / "o3" / "metrics.json").read_text())["history"]
    assert m1 == m3
    # SIGTERM: the chunk finishes, the run saves and exits 0
    run = _rtrlax(CLI_RUN + ["--steps", steps, "--save", tmp_path / "t", "--out", tmp_path / "o4"])
    _wait_for(lambda: any((tmp_path / "t").glob("step-*/meta.json")), run)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "stopped by signal" in out and "Traceback" not in err
    last = ck.list_checkpoints(tmp_path / "t")[-1]
    assert int(last.name.split("-")[1]) < steps and ck.is_checkpoint(last)
