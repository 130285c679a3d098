"""LaTeX output: _repr_latex_ of certificates, profiles and designer results; table --format latex."""

import pytest
import sympy as sp

import theory.cli as cli
from theory import design_profile, generic_rank, rank_profile
from theory.designer import format_table, permutation_table

t = sp.Symbol("t")


def test_repr_latex_states_what_is_proved():
    A = sp.Matrix([[1, t], [t, t**2]])
    c = generic_rank(A, seed=0)
    s = c._repr_latex_()
    assert s.startswith(r"$\operatorname{rank}_{\mathbb{Q}(t)} A = 1$") and "certified" in s
    assert f"t_0 = {c.point}" in s and f"p = {c.prime}" in s
    assert "uncertified" in generic_rank(sp.Matrix([[sp.exp(t)]]), numeric=True)._repr_latex_()
    assert "Monte-Carlo" in generic_rank(A, certify=False)._repr_latex_()
    assert rank_profile(A, 3)._repr_latex_() == r"$\rho = (1, 2, 1, 0)$ (derivatives, certified)"
    r = design_profile((1, 3, 2))._repr_latex_()
    assert r.startswith(r"$(1, 3, 2)$: \textbf{impossible}") and r"r\_1 = 3" in r


def test_latex_table_matches_markdown_rows(capsys):
    rows = permutation_table(3)
    tex = format_table(rows, fmt="latex").splitlines()
    md = format_table(rows).splitlines()
    assert tex[0].startswith(r"\begin{longtable}") and tex[-1] == r"\end{longtable}"
    assert len(tex) - 4 == len(md) - 2 == len(rows)  # one line per target
    assert r"$(1, 3, 2)$ & impossible & C2 bound: r\_1 = 3 > 2*r\_0 = 2 \\" in tex
    with pytest.raises(ValueError, match="fmt must be"):
        format_table(rows, fmt="html")
    assert cli.main(["table", "--K", "2", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert r"$(2, 1)$ & constructed & ∫\^{}1 H\_1 &" in out
