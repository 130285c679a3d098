"""python -m theory: table output and exit status."""

import subprocess
import sys

import theory.cli as cli
from theory._claims import ClaimResult

CLAIM_LABELS = ("engine", "C1 ", "C1'", "C2 ", "C3a", "C3b")


def test_every_claim_passes(theory_claim_results):
    claims = [r.claim for r in theory_claim_results]
    for label in CLAIM_LABELS:
        assert any(c.startswith(label) for c in claims), label
    for r in theory_claim_results:
        assert r.passed and r.instances == len(r.details) > 0, (r.claim, r.details)
        assert all(line.startswith("ok ") for line in r.details), r.details


def test_main_prints_the_table_of_every_check(theory_claim_results, monkeypatch, capsys):
    seeds = []
    monkeypatch.setattr(cli, "run_checks", lambda seed=0: seeds.append(seed) or theory_claim_results)
    assert cli.main([]) == 0 and seeds == [0]
    out = capsys.readouterr().out
    assert "claim" in out and "instances" in out and "result" in out and "time" in out
    rows = [line for line in out.splitlines() if line.count("|") == 3][2:]  # after header and rule
    assert [row.split("|")[0].strip() for row in rows] == [r.claim for r in theory_claim_results]
    assert all(row.split("|")[2].strip() == "pass" for row in rows)
    assert f"{len(rows)}/{len(rows)} claims pass" in out and "FAIL" not in out


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
    # ``python -m theory`` reaches theory.cli.main and returns its exit status (argparse's,
    # here: nothing heavier runs, the commands themselves are tested in-process above)
    r = subprocess.run([sys.executable, "-m", "theory", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m theory")
    assert "{check,table,search,dropsearch,jets}" in r.stdout
    r = subprocess.run([sys.executable, "-m", "theory", "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'bogus'" in r.stderr
