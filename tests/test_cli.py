"""The ``rtrlax`` command: runs, results, config files, and arguments checked first."""

import json
import re
import subprocess
import sys

import pytest

from rtrlax.cli import build_parser, main
from rtrlax.experiments import registry

SMALL_COPY = ["run", "copy", "--steps", "40", "--chunk", "20", "--hidden", "4", "--batch", "2",
              "--pattern-length", "2", "--padding", "1", "--bits", "2", "--quiet"]
TINY_COPY = ["run", "copy", "--steps", "4", "--chunk", "2", "--hidden", "3", "--batch", "2",
             "--pattern-length", "1", "--padding", "0", "--bits", "1", "--quiet"]


def _pairs():
    """Every (estimator, cell) pair the registry claims works online."""
    return [(e.name, c) for e in registry.entries("estimator") if e.online
            for c in registry.supported_cells(e.name)]


def _one_pair_per_estimator():
    first = {}
    for est, cell in _pairs():
        first.setdefault(est, cell)
    return sorted(first.items())


def test_run_copy_writes_results_checkpoint_and_config(tmp_path):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert main(SMALL_COPY + ["--estimator", "snap:1", "--out", str(out), "--save", str(ckpt)]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["config"]["estimator"] == "snap:1" and data["config"]["task"] == "copy"
    assert len(data["history"]["loss"]) == 2 and data["history"]["step"] == [20, 40]
    assert (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert (out / "curve.png").stat().st_size > 1000
    # resume continues the run up to --steps (in total), its history the checkpoint's + new
    out2 = tmp_path / "out2"
    main(SMALL_COPY[:2] + ["--steps", "80"] + SMALL_COPY[4:]
         + ["--estimator", "snap:1", "--out", str(out2), "--resume", str(ckpt)])
    assert json.loads((out2 / "metrics.json").read_text())["history"]["step"] == [20, 40, 60, 80]
    # the resolved config repeats the first run bit for bit (flags override the file)
    out3 = tmp_path / "out3"
    assert main(["run", "--config", str(out / "config.toml"), "--out", str(out3)]) == 0
    again = json.loads((out3 / "metrics.json").read_text())
    assert again["history"] == data["history"]
    assert (out3 / "config.toml").read_text() == (out / "config.toml").read_text()


@pytest.mark.parametrize("estimator, cell", _one_pair_per_estimator())
def test_every_estimator_runs_from_the_command_line(estimator, cell, tmp_path):
    assert main(TINY_COPY + ["--estimator", estimator, "--cell", cell, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["history"]["step"] == [2, 4]


@pytest.mark.slow
@pytest.mark.parametrize("estimator, cell", _pairs())
def test_every_claimed_pair_runs(estimator, cell, tmp_path):
    assert main(TINY_COPY + ["--estimator", estimator, "--cell", cell, "--out", str(tmp_path)]) == 0


def test_claimed_pairs_agree_with_the_estimators_own_checks():
    """The registry's support table says exactly what each estimator's check_model accepts."""
    import jax

    cells = {c: registry.make_cell(c, 2, 3, key=jax.random.key(0)) for c in registry.names("cell")}
    for e in registry.entries("estimator"):
        if not e.online:
            continue
        est = registry.make_estimator(e.name)
        claimed = set(registry.supported_cells(e.name))
        for name, cell in cells.items():
            try:
                est.init(cell, key=jax.random.key(1))
                accepted = True
            except ValueError:
                accepted = False
            assert accepted == (name in claimed), (e.name, name)


def _refused_pairs():
    """One refused cell per estimator that refuses any (and the offline BPTT)."""
    pairs = {}
    for e in registry.entries("estimator"):
        for c in registry.names("cell"):
            if not e.online or c not in registry.supported_cells(e.name):
                pairs.setdefault(e.name, c)
    return sorted(pairs.items())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--estimator", "nope"], "unknown estimator 'nope'"),
        (["--estimator", "tbptt:x"], "takes an integer T"),
        (["--estimator", "onlinelru:5"], r"horizon must lie in \[0, 1\]"),
        (["--cell", "transformer"], "unknown cell 'transformer'"),
        (["--density", "1.5"], r"\(0, 1\]"),
        (["--lr", "nan"], "finite number > 0"),
        (["--lr", "0"], "finite number > 0"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--estimator", "bptt"], "not an online estimator"),
        (["--network", "lrunet"], "network 'lrunet' needs a lru cell"),
        (["--resume", "/nonexistent/ckpt"], "not a checkpoint"),
        (["--save-every", "10"], "--save-every needs --save"),
        (["--resume", "latest"], "--resume latest needs --save"),
        (["--save-every", "0", "--save", "/tmp/x"], "--save-every must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(SMALL_COPY + args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("estimator, cell", _refused_pairs())
def test_refused_pairs_name_the_pairs_that_work(estimator, cell, capsys):
    with pytest.raises(SystemExit) as e:
        main(TINY_COPY + ["--estimator", estimator, "--cell", cell])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "does not support" in err or "not an online estimator" in err


def test_existing_file_is_refused_as_out_or_save_and_left_alone(tmp_path, capsys):
    f = tmp_path / "precious.txt"
    f.write_text("keep me")
    for flag in ("--out", "--save"):
        with pytest.raises(SystemExit) as e:
            main(SMALL_COPY + [flag, str(f)])
        assert e.value.code == 2 and "existing file" in capsys.readouterr().err
    assert f.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_config_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    for text, message in [
        ('task = "copy"\nhiden = 3\n', "unknown key 'hiden'"),
        ('task = "copy"\nhidden = "3"\n', "'hidden' must be an integer"),
        ('hidden = 3\n', "names no task"),
        ('task = "poker"\n', "unknown task 'poker'"),
        ('task = [\n', "not valid TOML"),
    ]:
        bad.write_text(text)
        with pytest.raises(SystemExit) as e:
            main(["run", "--config", str(bad)])
        assert e.value.code == 2 and re.search(message, capsys.readouterr().err), text


def test_charlm_text_must_decode(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(SystemExit):
        main(["run", "charlm", "--text", str(path), "--steps", "4"])
    assert "--byte-level" in capsys.readouterr().err


def test_help_and_list_answer_without_importing_jax():
    code = (
        "import sys\n"
        "from rtrlax.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['run', 'copy', '--help'], ['demo', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "main(['list'])\n"
        "try:\n"
        "    main(['run', 'copy', '--estimator', 'nope'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 2\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "color" in out.stdout and "cells: columnar" in out.stdout and out.stdout.endswith("ok\n")


def test_help_everywhere(capsys):
    parser, tasks = build_parser()
    for argv in (["--help"], ["run", "--help"], ["demo", "--help"], ["list", "--help"],
                 *(["run", t, "--help"] for t in tasks)):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 0
    assert "--estimator" in capsys.readouterr().out


def test_estimator_specs():
    import rtrlax as rx

    assert registry.make_estimator("snap:2") == rx.SnAp(2)
    assert registry.make_estimator("SnAp-1") == rx.SnAp(1)
    assert registry.make_estimator("tbptt:8").truncation == 8
    assert registry.make_estimator("sparsertrl:3") == rx.SparseRTRL(3)
    assert registry.make_estimator("sparsertrl:0.5") == rx.SparseRTRL(0.5)
    assert isinstance(registry.make_estimator("rtrl"), rx.RTRL)


def test_user_registered_estimator_runs_from_the_same_machinery(tmp_path):
    import rtrlax as rx

    rx.registry.register("estimator", "my-snap", lambda n: rx.SnAp(n), requires="gated",
                         arg=rx.registry.Arg("n", int, 1, low=1), description="test entry")
    try:
        assert rx.registry.make_estimator("my-snap:2") == rx.SnAp(2)
        assert main(TINY_COPY + ["--estimator", "my-snap", "--out", str(tmp_path)]) == 0
    finally:  # leave the registry as it was for other tests
        table = rx.registry.REGISTRY._entries["estimator"]
        del table["mysnap"]


def test_demo_runs_small(tmp_path, capsys):
    main(["demo", "--steps", "500", "--batch", "2", "--hidden", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "RTRL (exact)" in out and "trace-free" in out
    assert (tmp_path / "demo.png").stat().st_size > 1000
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert len(rows) == 4 and all(r[1] > 0 for r in rows)


def test_trace_patterning_runs_and_checks_its_method(tmp_path, capsys):
    out = tmp_path / "trace"
    assert main(["run", "trace-patterning", "--steps", "2000", "--log", "1000", "--seeds", "1",
                 "--quiet", "--out", str(out)]) == 0
    hist = json.loads((out / "metrics.json").read_text())["history"]
    assert hist["step"] == [1000, 2000] and all(m >= 0 for m in hist["msre"])
    assert 'method = "columnar"' in (out / "config.toml").read_text()
    with pytest.raises(SystemExit) as e:
        main(["run", "trace-patterning", "--method", "tbptt-10"])
    assert e.value.code == 2 and "tbptt-T:H" in capsys.readouterr().err


def test_sequence_classification_runs_and_needs_data_for_file_tasks(tmp_path, capsys):
    out = tmp_path / "seq"
    assert main(["run", "sequence", "--seq-task", "digits", "--steps", "8", "--chunk", "4",
                 "--hidden", "4", "--layers", "1", "--batch", "2", "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["history"]["step"] == [4, 8]
    with pytest.raises(SystemExit) as e:
        main(["run", "sequence", "--seq-task", "scifar"])
    assert e.value.code == 2 and "--data" in capsys.readouterr().err


def test_devices_flag_gives_the_same_run(tmp_path):
    """--devices 1 goes through the sharded learner (a one-device mesh): same numbers."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(TINY_COPY + ["--out", str(a)]) == 0
    assert main(TINY_COPY + ["--devices", "1", "--out", str(b)]) == 0
    hist = [json.loads((d / "metrics.json").read_text())["history"] for d in (a, b)]
    assert hist[0] == hist[1]


def test_list_into_a_closed_pipe_stops_quietly():
    """`rtrlax list | head -1`: no BrokenPipeError traceback when the reader leaves."""
    code = ("import sys\nfrom rtrlax.cli import main\nsys.exit(main(['list']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0)
    p.stdout.read(5)
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
