"""python -m theory: table output and exit status."""

import subprocess
import sys

import theory.cli as cli
from theory._claims import ClaimResult


def test_main_runs_every_check_and_passes(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "claim" in out and "instances" in out and "result" in out and "time" in out
    for label in ("engine", "C1 ", "C1'", "C2 ", "C3a", "C3b"):
        assert label in out
    assert "FAIL" not in out


def test_main_exits_nonzero_on_failure(monkeypatch, capsys):
    bad = ClaimResult("bogus claim")
    bad.record(False, "counterexample")
    monkeypatch.setattr(cli, "run_checks", lambda seed=0: [bad])
    assert cli.main(["--verbose"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: bogus claim" in out and "FAIL counterexample" in out


def test_table_command(capsys):
    assert cli.main(["table", "--K", "3", "--library", "standard"]) == 0
    out = capsys.readouterr().out
    assert "| (1, 3, 2) | impossible | C2 bound: r_1 = 3 > 2*r_0 = 2 |" in out
    assert "| (1, 2, 3) | constructed | H_2 |" in out


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "theory", "table", "--K", "2"], capture_output=True, text=True)
    assert r.returncode == 0 and "| (2, 1) | constructed |" in r.stdout
