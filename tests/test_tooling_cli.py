"""The researcher commands (issue 14 §3): ``fhe-gpu params``, ``bench`` and ``sweep`` write
their reports, JSON and PNG plots; a missing matplotlib is named with its install line.
``-m slow`` times ``fhe-gpu params --depth 10 --precision 25`` as a fresh process and runs
the N = 2^16 sweep of the acceptance."""
from __future__ import annotations

import builtins
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fhe_gpu.cli import main

SMALL_CHAIN = ["--log-n", "12", "--q-bits", "50", "30", "30", "--p-bits", "60",
               "--scale-bits", "30", "--security", "none"]


def test_params_prints_the_report(capsys, tmp_path):
    out = tmp_path / "p.json"
    assert main(["params", "--depth", "10", "--precision", "25", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for part in ("N = 2^15", "log QP", "<= 881", "relinearization", "after 10 products",
                 "op times", "mul relin"):
        assert part in text, part
    data = json.loads(out.read_text())
    assert data["log_n"] == 15 and data["final_bits"] >= 26 and data["op_ms"]["rotate"] > 0


def test_params_refusals_are_typed_errors(capsys):
    assert main(["params", "--depth", "30", "--precision", "25", "--log-n", "15",
                 "--no-calibrate"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "N=2^15" in err and "over by" in err


def test_bench_writes_json_and_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    assert main(["bench", *SMALL_CHAIN, "--repeat", "2", "--ops", "encrypt", "mul relin",
                 "rotate", "--plot", str(png)]) == 0
    captured = capsys.readouterr()
    assert "mul relin" in captured.out and "bench N12-custom" in captured.err
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["ops"]) == {"encrypt", "mul relin", "rotate"}
    assert len(data["ops"]["rotate"]["runs"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_bench_needs_a_chain(capsys):
    assert main(["bench", "--ops", "add"]) == 2
    assert "--preset" in capsys.readouterr().err


def test_sweep_writes_the_table_json_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sweep.png"
    assert main(["sweep", "--log-n", "12", "13", "--depth", "2", "--scale-bits", "30",
                 "--quiet", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "dnum" in text and "margin" in text and "random key material" in text
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    assert {r["log_n"] for r in rows} == {12, 13}
    assert any(r["key_switch_ms"] for r in rows) and all("rotation_bits" in r for r in rows)
    assert png.stat().st_size > 10000


def test_a_missing_matplotlib_is_named(monkeypatch, tmp_path, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["bench", *SMALL_CHAIN, "--ops", "add", "--plot",
                 str(tmp_path / "x.png")]) == 2
    assert 'pip install "fhe-gpu[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_params_answers_in_under_two_seconds():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fhe_gpu.cli", "params", "--depth", "10",
                          "--precision", "25"], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent)   # the installed package
    seconds = time.perf_counter() - t0
    print(f"\nfhe-gpu params --depth 10 --precision 25: {seconds:.2f} s\n{out.stdout}")
    assert "log QP" in out.stdout and seconds < 2.0


@pytest.mark.slow
def test_the_n16_sweep(tmp_path, capsys):
    assert main(["sweep", "--log-n", "16", "--depth", "27", "--quiet", "--plot",
                 str(tmp_path / "s.png")]) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert {r["dnum"] for r in rows} >= {1, 2, 3, 28}
