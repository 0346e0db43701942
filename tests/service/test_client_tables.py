"""The client in a notebook: DataFrames equal to the service's CSV, NumPy arrays, HTML
summaries, a progress bar, a figure, and the client as a distribution of its own."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pytest

from optim_client import OptimClient
from tests.conftest import ROOT

pd = pytest.importorskip("pandas")

RAVINE = {"loss": {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"},
          "start": [[-8, 1], [3, -2]], "max_steps": 60,
          "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "adam", "lr": 0.1}]}


@pytest.fixture(scope="module")
def client(module_server):
    with OptimClient(module_server) as c:
        yield c


def test_the_trajectories_frame_is_the_services_csv(client, module_server):
    import httpx

    result = client.compare(RAVINE)
    frame = result.trajectories_frame()
    csv = pd.read_csv(io.StringIO(httpx.post(f"{module_server}/v1/compare", json=RAVINE,
                                             headers={"Accept": "text/csv"}).text))
    assert list(frame.columns) == list(csv.columns)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), csv, check_dtype=False)
    runs = result.runs_frame()
    assert len(runs) == 4 and list(runs["label"]) == ["sgd", "sgd", "adam", "adam"]
    assert runs.loc[0, "oscillation"] == pytest.approx(result.runs[0].diagnostics.oscillation)
    arrays = result.trajectory_arrays(1)
    assert arrays["params"].shape == (len(result.runs[1].trajectory.step), 2)
    assert arrays["loss"][-1] == result.runs[1].trajectory.loss[-1]
    html = result._repr_html_()
    assert html.startswith("<table>") and "zigzag" in html


def test_sweep_rows_and_tune_trials_as_frames(client):
    sweep = client.sweep({"loss": RAVINE["loss"], "start": [-8, 1], "max_steps": 100,
                          "optimizer": {"name": "momentum"},
                          "grid": {"lr": [0.005, 0.02], "momentum": [0.0, 0.9]}})
    rows = sweep.rows_frame()
    assert list(rows.columns[:3]) == ["index", "lr", "momentum"] and len(rows) == 4
    assert rows["success_rate"].tolist() == [r.success_rate for r in sweep.rows]
    tune = client.tune({"loss": RAVINE["loss"], "start": [-8, 1], "max_steps": 100,
                        "trials": 4, "optimizers": [{"name": "adam", "search": {
                            "lr": {"low": 0.01, "high": 0.5}}}]})
    trials = tune.trials_frame()
    assert len(trials) == 4 and trials["lr"].tolist() == [t.hyperparameters["lr"]
                                                          for t in tune.trials]
    assert "<table>" in tune._repr_html_()


def test_run_job_draws_a_progress_bar(client, capsys):
    result = client.run_job("compare", RAVINE, progress=True, timeout=60)
    assert result.summary[0].label in ("sgd", "adam")
    err = capsys.readouterr().err
    assert "[" in err and "100.0%" in err and err.endswith("\n")


def test_a_figure_is_the_services_png(client):
    pytest.importorskip("matplotlib")
    figure = client.figure(RAVINE, size=[500, 300], panels=["loss"])
    assert tuple(figure.get_size_inches() * figure.dpi) == (500, 300)


def test_the_client_builds_as_its_own_distribution(tmp_path):
    """`pip install ./optim_client` (httpx and pydantic only, extras pandas and plot)."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path), "./optim_client"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("optim_client-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {"optim_client/client.py", "optim_client/models.py",
            "optim_client/tables.py"} <= set(names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split(":")[1].split(">")[0].strip() for r in plain) == ["httpx",
                                                                            "pydantic"]
    assert any("pandas" in r and "extra == \"pandas\"" in r for r in requires)
    for leftover in ("build", "optim_client.egg-info"):
        subprocess.run(["rm", "-rf", str(ROOT / "optim_client" / leftover)], check=False)


def test_the_tour_notebook_runs_against_a_live_server(module_server):
    """examples/tour.ipynb, its code cells run in order in one interpreter (as a kernel would
    run them), against a real server; each cell's last expression is evaluated too."""
    import json

    notebook = json.loads((ROOT / "examples" / "tour.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    program = ("import ast, os\nos.environ['OPTIM_SERVER'] = " + repr(module_server) + "\n"
               "scope = {}\n"
               "for source in " + repr(cells) + ":\n"
               "    tree = ast.parse(source)\n"
               "    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr)"
               " else None\n"
               "    exec(compile(tree, 'cell', 'exec'), scope)\n"
               "    if last is not None:\n"
               "        value = eval(compile(ast.Expression(last.value), 'cell', 'eval'), scope)\n"
               "        print(type(value).__name__)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**__import__("os").environ,
                                                     "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "zigzag" in out.stdout and "DataFrame" in out.stdout and "Figure" in out.stdout


def test_an_answer_draws_itself_locally(client):
    pytest.importorskip("matplotlib")
    result = client.compare(RAVINE)
    figure = result.plot()
    paths, losses = figure.axes
    assert len(paths.get_lines()) == 4 and len(losses.get_lines()) == 4
    assert [t.get_text() for t in paths.get_legend().get_texts()] == ["sgd", "adam"]
    x, y = paths.get_lines()[0].get_data()
    assert [x[0], y[0]] == result.runs[0].trajectory.params[0]
    assert losses.get_yscale() == "log"
