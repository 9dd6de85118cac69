import json

import pytest

from rtrlax.cli import build_parser, main, make_estimator

SMALL_COPY = ["run", "copy", "--steps", "40", "--chunk", "20", "--hidden", "4", "--batch", "2",
              "--pattern-length", "2", "--padding", "1", "--bits", "2", "--quiet"]


def test_run_copy_writes_results_and_checkpoint(tmp_path, capsys):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert main(SMALL_COPY + ["--estimator", "snap:1", "--out", str(out), "--save", str(ckpt)]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["config"]["estimator"] == "snap:1"
    assert len(data["history"]["loss"]) == 2 and data["history"]["step"] == [20, 40]
    assert (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert (out / "curve.png").stat().st_size > 1000
    # resume continues the step count
    out2 = tmp_path / "out2"
    main(SMALL_COPY + ["--estimator", "snap:1", "--out", str(out2), "--resume", str(ckpt)])
    assert json.loads((out2 / "metrics.json").read_text())["history"]["step"] == [60, 80]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--estimator", "nope"], "unknown estimator 'nope'"),
        (["--estimator", "tbptt:x"], "integer argument"),
        (["--cell", "transformer"], "unknown cell 'transformer'"),
        (["--density", "1.5"], r"\(0, 1\]"),
    ],
)
def test_cli_errors_are_clear(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(SMALL_COPY + args)
    assert e.value.code == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_help_everywhere(capsys):
    for argv in (["--help"], ["run", "--help"], ["run", "copy", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0
    assert "--estimator" in capsys.readouterr().out


def test_estimator_specs():
    import rtrlax as rx

    assert make_estimator("snap:2") == rx.SnAp(2)
    assert make_estimator("SnAp-1") == rx.SnAp(1)
    assert make_estimator("tbptt:8").truncation == 8
    assert isinstance(make_estimator("rtrl"), rx.RTRL)


def test_demo_runs_small(tmp_path, capsys):
    main(["demo", "--steps", "100", "--batch", "2", "--hidden", "4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "RTRL (exact)" in out and "trace-free" in out
    assert (tmp_path / "demo.png").stat().st_size > 1000
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert len(rows) == 4 and all(r[1] > 0 for r in rows)
