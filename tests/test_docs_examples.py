"""The README and the docs' code blocks run, and CI runs the README's test command."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/getting-started.md", "docs/user-guide.md", "docs/backends.md", "docs/theory.md"]


def blocks(path, lang):
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    code = blocks(page, "python")
    assert code, f"{page} has no python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    # blocks on one page build on each other, like a reader typing them in order
    exec(compile("\n".join(code), page, "exec"), namespace)


def test_ci_runs_the_readme_test_command():
    bash = blocks("README.md", "bash")
    test_cmd = [b.strip() for b in bash if "pytest" in b]
    assert len(test_cmd) == 1, "README must give exactly one test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd[0] in ci.splitlines()


def test_readme_has_two_setup_commands():
    bash = [b.strip() for b in blocks("README.md", "bash")]
    assert any("lowrank-tree demo" in b for b in bash)
    assert any("pytest" in b for b in bash)


def test_readme_performance_table_is_generated_from_bench_json():
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", ROOT / "bench" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    readme = (ROOT / "README.md").read_text()
    assert report.query_table() in readme, "run `python bench/report.py --readme` after bench/query.py"


def test_theory_designer_table_in_docs_is_current(capsys):
    pytest.importorskip("sympy")
    from theory.__main__ import main as theory_main

    doc = (ROOT / "docs" / "theory.md").read_text()
    for library in ("extended", "standard"):
        assert theory_main(["table", "--library", library]) == 0
        out = capsys.readouterr().out
        counts = re.search(r"\d+ constructed, \d+ impossible, \d+ open", out).group(0)
        assert counts in doc, f"docs/theory.md quotes other {library}-library counts than `{counts}`"
        if library == "extended":  # the page shows this table row by row
            rows = [line for line in out.splitlines() if line.startswith("|")]
            missing = [line for line in rows if line not in doc]
            assert not missing, f"docs/theory.md is stale; rerun `python -m theory table`: {missing[:3]}"
