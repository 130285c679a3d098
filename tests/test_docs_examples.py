"""The README and the docs' code blocks run and print what the pages show; CI runs the README's test command.

Convention for examples: a ```python block that prints is followed directly
(nothing but blank lines between) by a ```text block holding its exact output;
``...`` in that output matches anything (doctest's ELLIPSIS), for values that
depend on the machine.  A block that prints without such an output block, or
prints something else, fails the test.
"""

import contextlib
import doctest
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/getting-started.md", "docs/user-guide.md", "docs/backends.md", "docs/theory.md"]


def blocks(path, lang):
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", flags=re.S | re.M)


def examples(text):
    """``(code, expected output or None, line)`` of every ```python block of a page's text."""
    fences = [(m.group(1).strip(), m.group(2), m.start(), m.end()) for m in _FENCE.finditer(text)]
    out = []
    for i, (lang, body, start, end) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(fences) and fences[i + 1][0] == "text" and not text[end : fences[i + 1][2]].strip():
            expected = fences[i + 1][1]
        out.append((body, expected, text.count("\n", 0, start) + 1))
    return out


def run_examples(text, name):
    """Run a page's python blocks in order in one namespace; check each block's printed output."""
    found = examples(text)
    assert found, f"{name} has no python example"
    namespace, checker = {}, doctest.OutputChecker()
    for code, expected, line in found:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            # blocks on one page build on each other, like a reader typing them in order;
            # the leading newlines make tracebacks give the line in the page
            exec(compile("\n" * line + code, name, "exec"), namespace)
        got = printed.getvalue()
        if expected is None:
            assert not got, f"{name}:{line}: the example prints {got!r} but no ```text output block follows it"
        elif not checker.check_output(expected, got, doctest.ELLIPSIS):
            diff = checker.output_difference(doctest.Example("", expected), got, doctest.ELLIPSIS)
            raise AssertionError(f"{name}:{line}: the example's output differs from the page\n{diff}")


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_examples((ROOT / page).read_text(), page)


def test_wrong_or_missing_output_fails():
    good = "```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n"
    run_examples(good, "good.md")
    run_examples("```python\nprint('at', 3)\n```\n```text\nat ...\n```\n", "ellipsis.md")
    with pytest.raises(AssertionError, match="differs from the page"):
        run_examples(good.replace("\n2\n", "\n3\n"), "wrong.md")
    with pytest.raises(AssertionError, match="no ```text output block"):
        run_examples("```python\nprint(2)\n```\nSome prose.\n\n```text\n2\n```\n", "missing.md")


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
    from theory.cli import main as theory_main

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
