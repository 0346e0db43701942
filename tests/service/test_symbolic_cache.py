"""A request on a cached expression does no SymPy work: the derivatives are printed once."""

from __future__ import annotations

import httpx
import pytest
import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from service.main import create_app
from service.settings import Settings

EXPRESSION = "(1-x)^2 + 105*(y-x^2)^2 + sin(x*y)/7"


def _refuse(*_args, **_kwargs):
    raise AssertionError("SymPy was asked to print or simplify during a cached request")


@pytest.fixture
async def in_process_client(tmp_path):
    """The symbolic stage in this process, so the patches below reach every SymPy call."""
    app = create_app(Settings(symbolic_isolation=False, jobs_db_path=str(tmp_path / "j.db")))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize("path, body", [
    ("/v1/optimize", {"start": [0.5, 0.5], "max_steps": 3, "optimizer": {"name": "adam"}}),
    ("/v1/compare", {"start": [0.5, 0.5], "max_steps": 3,
                     "optimizers": [{"name": "sgd"}, {"name": "newton"}]}),
    ("/v1/analyze", {"points": [[0.5, 0.5]]}),
    ("/v1/sweep", {"optimizer": {"name": "sgd"}, "grid": {"lr": [0.001, 0.002]},
                   "start": [0.5, 0.5], "max_steps": 3}),
    ("/v1/landscape", {"bounds": [[-1, 1], [-1, 1]], "resolution": [3, 3]}),
], ids=["optimize", "compare", "analyze", "sweep", "landscape"])
async def test_a_cached_expression_answers_with_sympy_printers_refusing(
        in_process_client, monkeypatch, path, body):
    body = {"loss": {"kind": "expression", "expression": EXPRESSION}, **body}
    first = await in_process_client.post(path, json=body)
    assert first.status_code == 200, first.text
    for target in (StrPrinter, LatexPrinter):
        monkeypatch.setattr(target, "doprint", _refuse)
    monkeypatch.setattr(sympy.Expr, "as_ordered_terms", _refuse)
    monkeypatch.setattr(sympy, "diff", _refuse)
    monkeypatch.setattr(sympy, "latex", _refuse)
    second = await in_process_client.post(path, json=body)
    assert second.status_code == 200, second.text
    first_loss, second_loss = first.json()["loss"], second.json()["loss"]
    assert second_loss == first_loss
    assert "cos(x*y)/7" in second_loss["gradient"][1]
    assert len(second_loss["hessian"]) == 2 and second_loss["latex"]["hessian"][1][1]


def test_a_new_expression_still_prints(monkeypatch):
    """The patches above are real: a new expression does go through the printers."""
    from optim_core.losses.expression import expression_loss

    monkeypatch.setattr(StrPrinter, "doprint", _refuse)
    with pytest.raises(AssertionError, match="SymPy was asked"):
        expression_loss("x^3 + 17*y^2 - x*y/3")
