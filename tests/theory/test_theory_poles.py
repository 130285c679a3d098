"""The pole construction (theory.poles): a rational counterexample to the drop bound."""

import pytest
import sympy as sp
from sympy.polys.matrices import DomainMatrix

from theory.dcd import dcd_matrix
from theory.dcd_search import drop_bound_holds
from theory.poles import drop_bound_counterexample, schur_completion

t = sp.Symbol("t")


def _rank_over_Qt(M):
    """Rank over Q(t) with SymPy's DomainMatrix (independent of the package's engine)."""
    K = sp.QQ.frac_field(t)
    return DomainMatrix.from_list_sympy(M.rows, M.cols, M.tolist()).convert_to(K).rank()


def test_the_counterexample_has_profile_2341_by_an_independent_rank():
    A = drop_bound_counterexample()
    ranks = tuple(_rank_over_Qt(A.diff(t, k).applyfunc(sp.cancel)) for k in range(4))
    assert ranks == (2, 3, 4, 1)
    assert not drop_bound_holds(ranks)  # rho(2) = 4 > rho(3) + rho(0) = 3


def test_the_counterexample_closed_forms():
    A = drop_bound_counterexample()
    assert sp.cancel(A.diff(t, 2).det(method="berkowitz") - 1 / (60 * t**8)) == 0
    e = sp.Matrix([1, t, 0, 0])
    assert (A.diff(t, 3) + e * e.T / t**6).applyfunc(sp.cancel) == sp.zeros(4, 4)
    assert sp.cancel(A.diff(t).det(method="berkowitz")) == 0


def test_the_counterexample_is_a_dcd_matrix_rescaled():
    """diag(1, 2, 1, 1) A diag(60, 72, 1, 2) = D_a C D_b with an integer C (the form the table once shipped)."""
    a, b = (0, 1, 2, 3), (-3, -2, 0, -1)
    C = [[1, 3, 1, 0], [5, 24, -4, -18], [0, -1, 1, 2], [-1, -4, 0, 2]]
    B = sp.Matrix(dcd_matrix(a, b, C, t))
    half = sp.Rational(1, 2)
    scaled = sp.diag(1, half, 1, 1) * B * sp.diag(sp.Rational(1, 60), sp.Rational(1, 72), 1, half)
    assert (scaled - drop_bound_counterexample()).applyfunc(sp.cancel) == sp.zeros(4, 4)


def test_the_counterexample_has_a_pole_and_a_residue():
    """Unlike the polynomial (2, 3, 4, 1) the designer uses, this one has no rational antiderivative."""
    A = drop_bound_counterexample()
    assert sp.residue(A[1, 1], t, 0) == sp.Rational(1, 6)


def test_schur_completion_has_the_rank_of_its_corner_block():
    Q12 = sp.Matrix([[1, t], [t**2, 2], [0, 3]])
    Q21 = sp.Matrix([[t, 1, 1], [2, 0, t]])
    Q22 = sp.Matrix([[t, 1], [1, t**2]])
    A = schur_completion(Q12, Q21, Q22)
    assert A.shape == (5, 5)
    assert _rank_over_Qt(A) == 2
    assert A[3:, 3:] == Q22 and A[:3, 3:] == Q12 and A[3:, :3] == Q21
    assert (A[:3, :3] - Q12 * Q22.inv() * Q21).applyfunc(sp.cancel) == sp.zeros(3, 3)


def test_schur_completion_refuses_bad_blocks():
    with pytest.raises(ValueError, match="shapes"):
        schur_completion(sp.Matrix([[1, 2]]), sp.Matrix([[1]]), sp.Matrix([[t]]))
    with pytest.raises(ValueError, match="invertible"):
        schur_completion(sp.Matrix([[1]]), sp.Matrix([[1]]), sp.Matrix([[0]]))


def test_search_out_keeps_rows_from_another_source(monkeypatch, capsys):
    """`python -m theory search --out` rewrites the data: rows with a source survive a search that misses them."""
    import json

    import theory._constructions
    import theory.designer
    from theory.cli import main

    row = {
        "target": [2, 3, 4, 1],
        "source": "the pole construction of theory.poles",
        "blocks": [
            {
                "kind": "dcd",
                "a": [0, 1, 2, 3],
                "b": [-3, -2, 0, -1],
                "C": [[1, 3, 1, 0], [5, 24, -4, -18], [0, -1, 1, 2], [-1, -4, 0, 2]],
            }
        ],
    }
    monkeypatch.setattr(theory._constructions, "DATA", {"constructions": [row], "open": []})
    monkeypatch.setattr(
        theory.designer,
        "search_constructions",
        lambda *a, **k: {"constructions": [], "open": [[2, 3, 4, 1], [2, 4, 1]]},
    )
    assert main(["search", "--K", "4"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[: out.rindex("}") + 1])
    assert [r["target"] for r in data["constructions"]] == [[2, 3, 4, 1]]
    assert data["open"] == [[2, 4, 1]]
