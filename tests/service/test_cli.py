"""The `optim` console script, run as a real subprocess: in-process and against a server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

OPTIM = shutil.which("optim", path=str(Path(sys.executable).parent)) or "optim"
EXAMPLES = ROOT / "examples"


def optim(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([OPTIM, *args], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env=os.environ | {"COLUMNS": "200"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def server(module_server):
    return module_server


def test_run_in_process_prints_runs_and_findings():
    result = optim("run", str(EXAMPLES / "ravine.json"))
    assert "zigzag" in result.stdout and "ranking" in result.stdout
    assert "momentum did best" in result.stdout.replace("\n", " ")


def test_json_in_process_equals_json_from_the_server(server):
    local = json.loads(optim("compare", str(EXAMPLES / "ravine.json"), "--json").stdout)
    remote = json.loads(optim("compare", str(EXAMPLES / "ravine.json"), "--json",
                              "--server", server).stdout)
    for answer in (local, remote):
        answer["meta"].pop("elapsed_ms")
    assert local == remote
    assert [s["label"] for s in local["summary"]] == ["momentum", "adam", "sgd"]


def test_sweep_plot_and_catalogs(server, tmp_path):
    sweep = json.loads(optim("sweep", str(EXAMPLES / "sweep.json"), "--json").stdout)
    assert sweep["best"]["hyperparameters"] == {"lr": 0.005, "momentum": 0.9}
    table = optim("sweep", str(EXAMPLES / "sweep.json"), "--server", server).stdout
    assert "best: {'lr': 0.005, 'momentum': 0.9}" in table
    for where in ([], ["--server", server]):
        out = tmp_path / f"ravine{len(where)}.svg"
        optim("plot", str(EXAMPLES / "ravine.json"), "-o", str(out), *where)
        assert out.read_bytes().startswith(b"<?xml") and b"run-2" in out.read_bytes()
    png = tmp_path / "ravine.png"
    optim("plot", str(EXAMPLES / "ravine.json"), "-o", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    functions = json.loads(optim("functions", "--json").stdout)["functions"]
    assert any(f["name"] == "himmelblau" for f in functions)
    assert "adamw" in optim("optimizers").stdout
    assert json.loads(optim("optimizers", "--json", "--server", server).stdout)["optimizers"]


def test_errors_exit_non_zero_with_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"loss": {"kind": "expression", "expression": "x^2 + foo(y)"},
                               "start": [1, 1]}))
    result = optim("run", str(bad), check=False)
    assert result.returncode == 1 and "Unknown function 'foo'" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert optim("run", str(broken), check=False).returncode == 2


def test_serve_starts_the_service(tmp_path):
    port = free_port()
    proc = subprocess.Popen([OPTIM, "serve", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ | {"OPTIM_JOBS_DB_PATH": str(tmp_path / "j.db")})
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                import time

                time.sleep(0.1)
        else:
            pytest.fail("optim serve did not answer")
    finally:
        proc.terminate()
        proc.wait(10)


def test_no_server_is_one_line_and_an_exit_code(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    optim = shutil.which("optim", path=str(Path(sys.executable).parent))
    body = tmp_path / "ravine.json"
    body.write_text('{"loss": {"kind": "builtin", "name": "booth"}}')
    for args in (["functions"], ["run", str(body)]):
        result = subprocess.run([optim, *args, "--server", "http://127.0.0.1:9"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 3
        assert "cannot reach the service" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3


def optim_in(stdin: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([OPTIM, *args], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, input=stdin, env=os.environ | {"COLUMNS": "200"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_version_short_help_and_a_body_from_stdin():
    from importlib.metadata import version

    assert optim("--version").stdout.strip() == f"optim {version('optim-service')}"
    assert "submit" in optim("job", "-h").stdout and "Usage" in optim("-h").stdout
    body = (EXAMPLES / "ravine.json").read_text()
    from_stdin = json.loads(optim_in(body, "compare", "-", "--json").stdout)
    from_file = json.loads(optim("compare", str(EXAMPLES / "ravine.json"), "--json").stdout)
    for answer in (from_stdin, from_file):
        answer["meta"].pop("elapsed_ms")
    assert from_stdin == from_file


def test_in_process_schema_errors_read_as_the_services_problem():
    bad = json.dumps({"loss": {"kind": "builtin", "name": "booth"},
                      "optimizer": {"name": "adam", "beta1": 1.5}})
    result = optim_in(bad, "run", "-", check=False)
    assert result.returncode == 1
    assert "422 Request does not match the schema" in result.stderr
    assert "at body.optimizer.beta1: Input should be less than 1" in result.stderr
    assert "/problems/validation-error" in result.stderr and "Traceback" not in result.stderr


def test_job_commands_submit_watch_result_cancel_list_delete(server):
    quick = (EXAMPLES / "ravine.json").read_text()
    job_id = optim_in(quick, "job", "submit", "-", "--server", server).stdout.strip()
    assert len(job_id) == 32
    watched = optim("job", "watch", job_id, "--server", server)
    assert "succeeded" in watched.stderr
    result = json.loads(optim("job", "result", job_id, "--server", server, "--json").stdout)
    assert [s["label"] for s in result["summary"]] == ["momentum", "adam", "sgd"]
    assert "momentum did best" in optim("job", "result", job_id, "--server", server
                                        ).stdout.replace("\n", " ")
    slow = json.dumps({"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 400_000,
                       "start": {"random": {"n": 64, "seed": 1}},
                       "optimizer": {"name": "sgd", "lr": 1e-9}, "stop": {"grad_tol": 0},
                       "record": {"max_points": 5}})
    env_server = os.environ | {"OPTIM_SERVER": server, "COLUMNS": "200"}
    slow_id = subprocess.run([OPTIM, "job", "submit", "-"], input=slow, capture_output=True,
                             text=True, env=env_server, timeout=60).stdout.strip()
    cancelled = subprocess.run([OPTIM, "job", "cancel", slow_id], capture_output=True,
                               text=True, env=env_server, timeout=60)
    assert cancelled.returncode == 0 and slow_id in cancelled.stdout
    listed = json.loads(optim("job", "list", "--server", server, "--json").stdout)
    assert {job_id, slow_id} <= {job["id"] for job in listed}
    optim("job", "watch", slow_id, "--server", server)
    partial = optim("job", "result", slow_id, "--server", server)
    assert "partial result (cancelled)" in partial.stderr
    assert optim("job", "delete", slow_id, "--server", server).stdout.strip().endswith("deleted")
    gone = optim("job", "result", slow_id, "--server", server, check=False)
    assert gone.returncode == 1 and "404" in gone.stderr


def test_studies_from_the_command_line(server, tmp_path):
    """optim tune | basins | benchmark, in process and against a server: the same JSON."""
    result = optim("tune", str(EXAMPLES / "tune.json"))
    assert "adam" in result.stdout and "sgd" in result.stdout and "diverged" in result.stdout
    local = json.loads(optim("tune", str(EXAMPLES / "tune.json"), "--json").stdout)
    remote = json.loads(optim("tune", str(EXAMPLES / "tune.json"), "--json",
                              "--server", server).stdout)
    assert local["trials"] == remote["trials"] and local["best"] == remote["best"]
    basins = tmp_path / "basins.json"
    basins.write_text(json.dumps({"loss": {"kind": "builtin", "name": "himmelblau"},
                                  "optimizer": {"name": "sgd", "lr": 0.01},
                                  "resolution": [10, 10]}))
    lines = optim("basins", str(basins)).stdout.strip().splitlines()
    assert len(lines) == 4 and all("%" in line for line in lines)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"suite": "smooth-2d", "starts_per_loss": 2, "max_steps": 100,
                                 "optimizers": [{"name": "lbfgs"}]}))
    assert "lbfgs" in optim("benchmark", str(bench)).stdout
