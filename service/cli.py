"""`optim`: the service at a terminal.

    optim serve --port 8000
    optim run request.json                # in-process through optim_core, no server needed
    optim compare request.json --server http://127.0.0.1:8000 --json
    optim sweep grid.json
    cat request.json | optim run -        # `-`: the body from standard input
    optim plot request.json -o paths.svg
    optim functions | optim optimizers
    optim job submit big.json             # long work on a server (OPTIM_SERVER or --server)
    optim job watch ID | optim job result ID | optim job cancel ID | optim job delete ID
    optim job list
    optim keys create --name ci --scopes compute,jobs --expires 30d --rate 50/s --json
    optim keys list | optim keys revoke ID   # on the store OPTIM_JOBS_DB_PATH/_URL names

`run` takes an optimize or a compare body (one with `optimizers`). Human output is a table of
runs with their key findings; --json prints the service's exact answer. Errors are the
service's problem documents, in-process too. It lives with the service, not in optim_client:
its in-process mode runs the engine, and the client package must stay importable with httpx
and pydantic alone.
"""

from __future__ import annotations

import json
import os
import sys
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from optim_client.client import OptimClient

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(help="Run optimizers on losses and read why they behaved as they did.",
                  no_args_is_help=True, add_completion=False, context_settings=HELP)
jobs = typer.Typer(help="Long work on a server: submit, watch, fetch, cancel, list.",
                   no_args_is_help=True, context_settings=HELP)
app.add_typer(jobs, name="job")
keys = typer.Typer(help="API keys (OPTIM_AUTH=api_key), made and revoked on the job store "
                        "that OPTIM_JOBS_DB_PATH or OPTIM_JOBS_DB_URL names.",
                   no_args_is_help=True, context_settings=HELP)
app.add_typer(keys, name="keys")
out = Console()
err = Console(stderr=True)
ServerOption = Annotated[str | None, typer.Option(
    "--server", help="a running service, e.g. http://127.0.0.1:8000 (default: in-process)")]
JobServerOption = Annotated[str, typer.Option(
    "--server", envvar="OPTIM_SERVER", help="the service that runs the job")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the JSON answer")]
ApiKeyOption = Annotated[str | None, typer.Option(
    "--api-key", envvar="OPTIM_API_KEY", help="the key a server with OPTIM_AUTH=api_key wants")]
FileArgument = Annotated[str, typer.Argument(
    metavar="FILE", help="a JSON request body, or - to read it from standard input")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"optim {version('optim-service')}")
        raise typer.Exit()


_API_KEY: dict[str, str | None] = {}  # the global --api-key, for every command that calls


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version")] = False,
          api_key: ApiKeyOption = None) -> None:
    """Run optimizers on losses and read why they behaved as they did."""
    _API_KEY["key"] = api_key


def _load(source: str) -> dict[str, Any]:
    """The body from a file, or from standard input for `-`."""
    if source == "-":
        text, name = sys.stdin.read(), "standard input"
    else:
        path = Path(source)
        if not path.is_file():
            err.print(f"[red]{source}: no such file[/red] (give a JSON body, or - for standard "
                      "input)")
            raise typer.Exit(2)
        text, name = path.read_text(encoding="utf-8"), source
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        err.print(f"[red]{name} is not valid JSON:[/red] {exc}")
        raise typer.Exit(2) from None
    if not isinstance(body, dict):
        err.print(f"[red]{name} is not a JSON object[/red] (a request body is one)")
        raise typer.Exit(2)
    return body


def _fail(status: int, problem: dict[str, Any]) -> None:
    """Print the problem document (as the service answers it) and exit 1."""
    err.print(f"[red]{status} {problem.get('title', 'error')}:[/red] {problem.get('detail', '')}")
    for error in problem.get("errors") or []:
        err.print(f"  at {'.'.join(map(str, error.get('loc', [])))}: {error.get('msg')}")
    if problem.get("type"):
        err.print(f"  ({problem['type']})")
    raise typer.Exit(1)


def _in_process(kind: str, body: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    """Validate like the service, then run through optim_core in this process."""
    from pydantic import ValidationError

    from service import studies, translate
    from service.problems import problem_for
    from service.schemas.requests import CompareRequest, OptimizeRequest, SweepRequest
    from service.schemas.studies import BasinsRequest, BenchmarkRequest, TuneRequest
    from service.settings import Settings

    model = {"optimize": OptimizeRequest, "compare": CompareRequest, "sweep": SweepRequest,
             "tune": TuneRequest, "basins": BasinsRequest, "benchmark": BenchmarkRequest}[kind]
    settings = Settings(symbolic_isolation=False, request_timeout_s=3600.0).for_jobs()
    try:
        request = model.model_validate(body)
    except ValidationError as exc:  # the service's 422 document, locations and all
        from service.problems import validation_problem

        raw = [e | {"loc": ("body", *e["loc"])} for e in exc.errors()]
        _fail(422, validation_problem(raw, body))
    runner = {"sweep": translate.run_sweep, "tune": studies.run_tune,
              "basins": studies.run_basins, "benchmark": studies.run_benchmark
              }.get(kind, translate.run_optimize)
    try:
        if not show_progress:
            return runner(request, settings)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
                "{task.completed:,.0f}/{task.total:,.0f} steps"), TimeRemainingColumn(),
                console=err, transient=True) as bar:
            task = bar.add_task(kind, total=max(request.max_steps, 1))
            return runner(request, settings,
                          progress=lambda done, total, active: bar.update(task, completed=done))
    except Exception as exc:  # the same problem document the service would answer
        status, problem, _ = problem_for(exc)
        if status >= 500:
            raise
        _fail(status, problem)
    raise AssertionError("unreachable")


def _remote(server: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    from optim_client.client import OptimClient, ProblemError

    with OptimClient(server, api_key=_API_KEY.get("key")) as client:
        try:
            return client.request_json("POST", f"/v1/{kind}", body)
        except ProblemError as exc:
            _fail(exc.status, exc.problem)
    raise AssertionError("unreachable")


def _answer(kind: str, body: dict[str, Any], server: str | None, as_json: bool
            ) -> dict[str, Any]:
    if server:
        return _remote(server, kind, body)
    return _in_process(kind, body, show_progress=not as_json)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_runs(answer: dict[str, Any]) -> None:
    table = Table(title="runs")
    for column in ("optimizer", "start", "status", "steps", "final loss", "key findings"):
        table.add_column(column)
    for run in answer["runs"]:
        findings = "\n".join(f"{f['code']}: {f['message']}" for f in run["findings"]
                             if f["code"] not in ("converged", "max_steps"))
        table.add_row(run["label"], ", ".join(_fmt(x) for x in run["start"]), run["status"],
                      str(run["steps"]), _fmt(run["final"]["loss"]), findings or "–")
    out.print(table)
    if "summary" in answer:
        summary = Table(title="ranking")
        for column in ("rank", "optimizer", "converged", "diverged", "median steps", "best loss"):
            summary.add_column(column)
        for s in answer["summary"]:
            summary.add_row(str(s["rank"]), s["label"], str(s["converged"]), str(s["diverged"]),
                            _fmt(s["median_steps_to_tol"]), _fmt(s["best_final_loss"]))
        out.print(summary)
        for finding in answer.get("findings", []):
            out.print(finding["message"])


def _dumps(answer: dict[str, Any]) -> str:
    """The service's own serialisation (orjson: NumPy arrays, non-finite numbers as null)."""
    import orjson

    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _emit(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(_dumps(answer))
    else:
        _print_runs(answer)


@app.command()
def run(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False) -> None:
    """Run an optimize body (or a compare body, one with `optimizers`)."""
    body = _load(file)
    kind = "compare" if "optimizers" in body else "optimize"
    _emit(_answer(kind, body, server, as_json), as_json)


@app.command()
def compare(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False
            ) -> None:
    """Run several optimizers from the same starts and rank them."""
    _emit(_answer("compare", _load(file), server, as_json), as_json)


@app.command()
def sweep(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False) -> None:
    """Run a hyperparameter grid; print one row per grid point and the best."""
    answer = _answer("sweep", _load(file), server, as_json)
    if as_json:
        typer.echo(_dumps(answer))
        return
    _print_sweep(answer)


@app.command()
def tune(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False) -> None:
    """Search each optimizer's hyperparameters; print each one's best and the findings."""
    answer = _answer("tune", _load(file), server, as_json)
    if as_json:
        typer.echo(_dumps(answer))
        return
    table = Table(title=f"tune: {len(answer['trials'])} trials")
    for column in ("optimizer", "best", "objective"):
        table.add_column(column)
    for best in answer["best"]:
        table.add_row(best["label"], str(best["hyperparameters"]), _fmt(best["objective"]))
    out.print(table)
    for finding in answer["findings"]:
        out.print(f"- {finding['message']}")


@app.command()
def basins(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False
           ) -> None:
    """Map which minimum each start of a grid reaches; print each minimum's share."""
    answer = _answer("basins", _load(file), server, as_json)
    if as_json:
        typer.echo(_dumps(answer))
        return
    for label, share in sorted(answer["share"].items(), key=lambda kv: int(kv[0])):
        where = (answer["minima"][int(label)] if int(label) >= 0 else
                 {"-1": "not converged", "-2": "diverged"}[label])
        out.print(f"{label:>3}  {share:6.1%}  {where}")


@app.command()
def benchmark(file: FileArgument, server: ServerOption = None, as_json: JsonOption = False
              ) -> None:
    """Run optimizers over a suite; print the share of (loss, start, target) reached."""
    answer = _answer("benchmark", _load(file), server, as_json)
    if as_json:
        typer.echo(_dumps(answer))
        return
    for curve in answer["ecdf"]:
        reached = curve["fraction"][-1] if curve["fraction"] else 0.0
        out.print(f"{curve['label']:>16}  reached {reached:6.1%} of the targets")


def _print_sweep(answer: dict[str, Any]) -> None:
    table = Table(title="sweep")
    keys = list(answer["rows"][0]["hyperparameters"]) if answer["rows"] else []
    for column in [*keys, "success", "diverged", "median steps", "median loss"]:
        table.add_column(column)
    for row in answer["rows"]:
        table.add_row(*[_fmt(row["hyperparameters"][k]) for k in keys],
                      f"{row['success_rate']:.0%}", f"{row['divergence_rate']:.0%}",
                      _fmt(row["median_steps_to_tol"]), _fmt(row["median_final_loss"]))
    out.print(table)
    best = answer["best"]
    out.print(f"best: {best['hyperparameters']} ({best['reason']})")


@app.command()
def plot(file: FileArgument, output: Annotated[Path, typer.Option("-o", "--output")],
         server: ServerOption = None,
         image_format: Annotated[str | None, typer.Option(
             "--format", help="svg, png, gif, html or mp4 (default: from the file name)")
         ] = None,
         kind: Annotated[str, typer.Option(
             "--kind", help="contour, surface, loss, rate_map or basins")] = "contour"
         ) -> None:
    """Draw an optimize or compare body: contours with paths, and loss curves (or another
    kind); gif, html and mp4 animate them."""
    suffix = output.suffix.lower().lstrip(".")
    fmt = image_format or (suffix if suffix in ("png", "gif", "html", "mp4") else "svg")
    body = {"request": _load(file), "format": fmt, "kind": kind}
    if server:
        from optim_client.client import OptimClient, ProblemError

        with OptimClient(server) as client:
            try:
                image = client.plot(body["request"], format=fmt, kind=kind)
            except ProblemError as exc:
                _fail(exc.status, exc.problem)
    else:
        from service import plots
        from service.problems import problem_for
        from service.schemas.plot import PlotRequest
        from service.settings import Settings

        try:
            image = plots.run_plot(PlotRequest.model_validate(body),
                                   Settings(symbolic_isolation=False))
        except Exception as exc:
            status, problem, _ = problem_for(exc)
            if status >= 500:
                raise
            _fail(status, problem)
    output.write_bytes(image)
    err.print(f"wrote {output} ({len(image):,} bytes)")


def _catalog(server: str | None, path: str) -> dict[str, Any]:
    if server:
        from optim_client.client import OptimClient

        with OptimClient(server) as client:
            return client.request_json("GET", path)

    from service.routes import catalog

    return (catalog.functions_catalog() if path.endswith("functions")
            else catalog.optimizers_catalog())


@app.command()
def functions(server: ServerOption = None, as_json: JsonOption = False) -> None:
    """The builtin test functions."""
    data = _catalog(server, "/v1/functions")
    if as_json:
        typer.echo(_dumps(data))
        return
    table = Table(title="functions")
    for column in ("name", "dim", "minima", "description"):
        table.add_column(column)
    for f in data["functions"]:
        table.add_row(f["name"], "N" if f["n_dimensional"] else str(f["dim"]),
                      str(len(f["minima"] or [])), f["description"])
    out.print(table)


@app.command()
def optimizers(server: ServerOption = None, as_json: JsonOption = False) -> None:
    """The optimizers with their hyperparameters and defaults."""
    data = _catalog(server, "/v1/optimizers")
    if as_json:
        typer.echo(_dumps(data))
        return
    table = Table(title="optimizers")
    for column in ("name", "hyperparameters (default)", "description"):
        table.add_column(column)
    for o in data["optimizers"]:
        table.add_row(o["name"], ", ".join(f"{h['name']}={h['default']}"
                                           for h in o["hyperparameters"]), o["description"])
    out.print(table)


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="interface to bind")] = None,
          port: Annotated[int | None, typer.Option(help="port")] = None,
          workers: Annotated[int | None, typer.Option(help="worker processes")] = None) -> None:
    """Start the service (options override the OPTIM_* settings)."""
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"OPTIM_{name}"] = str(value)
    from service.__main__ import main as serve_main

    serve_main()


# -- jobs ------------------------------------------------------------------------------------
def _client(server: str) -> OptimClient:
    from optim_client.client import OptimClient

    return OptimClient(server, api_key=_API_KEY.get("key"))


def _kind_of(body: dict[str, Any]) -> str:
    if "grid" in body:
        return "sweep"
    return "compare" if "optimizers" in body else "optimize"


def _problem_call(call: Any) -> Any:
    """A client call whose ProblemError is printed as the service's problem document."""
    from optim_client.client import ProblemError

    try:
        return call()
    except ProblemError as exc:
        _fail(exc.status, exc.problem)


@jobs.command("submit")
def job_submit(file: FileArgument, server: JobServerOption = DEFAULT_SERVER,
               kind: Annotated[str | None, typer.Option(
                   help="optimize, compare or sweep (default: from the body)")] = None,
               as_json: JsonOption = False) -> None:
    """Queue a body as a job; prints its id (the job document with --json)."""
    body = _load(file)
    with _client(server) as client:
        job = _problem_call(lambda: client.submit_job(kind or _kind_of(body), body))
    typer.echo(job.model_dump_json() if as_json else job.id)


def _progress_line(job: Any) -> str:
    progress = job.progress
    done = f"{progress.steps_done or 0:,}/{progress.steps_total or 0:,} steps"
    eta = f", ~{progress.eta_s:.0f} s left" if progress.eta_s else ""
    return f"{job.status}: {done} ({(progress.fraction or 0):.0%}){eta}"


@jobs.command("watch")
def job_watch(job_id: Annotated[str, typer.Argument(metavar="ID")],
              server: JobServerOption = DEFAULT_SERVER) -> None:
    """Follow a job's progress to its end (across a restart of the server)."""
    from optim_client.models import Job

    with _client(server) as client, Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[line]}"), console=err, transient=False) as bar:
        task = bar.add_task(job_id[:8], total=1.0, line="connecting…")

        def shown(event: Any) -> None:
            if event.event == "progress":
                job = Job.model_validate(event.data)
                bar.update(task, completed=job.progress.fraction or 0, line=_progress_line(job))

        final = _problem_call(lambda: client.follow_job(job_id, on_event=shown))
        bar.update(task, completed=final.progress.fraction or 0, line=_progress_line(final))
    if final.status == "failed":
        _fail((final.error or {}).get("status", 500), final.error or {})


@jobs.command("result")
def job_result(job_id: Annotated[str, typer.Argument(metavar="ID")],
               server: JobServerOption = DEFAULT_SERVER, as_json: JsonOption = False) -> None:
    """Print a finished job's result (as the synchronous endpoint would have answered)."""
    with _client(server) as client:
        answer = _problem_call(lambda: client.request_json("GET", f"/v1/jobs/{job_id}/result"))
    if as_json:
        typer.echo(_dumps(answer))
    elif "rows" in answer:
        _print_sweep(answer)
    else:
        _print_runs(answer)
    if answer.get("partial"):
        err.print(f"[yellow]partial result ({answer.get('partial_reason')})[/yellow]")


@jobs.command("cancel")
def job_cancel(job_id: Annotated[str, typer.Argument(metavar="ID")],
               server: JobServerOption = DEFAULT_SERVER) -> None:
    """Stop a job; it keeps what it computed (its result is partial)."""
    with _client(server) as client:
        job = _problem_call(lambda: client.cancel_job(job_id))
    typer.echo(f"{job.id}: {job.status}" + (" (stops at its next step)"
                                            if job.status == "running" else ""))


@jobs.command("delete")
def job_delete(job_id: Annotated[str, typer.Argument(metavar="ID")],
               server: JobServerOption = DEFAULT_SERVER) -> None:
    """Cancel a job if it runs, and remove it and its result."""
    with _client(server) as client:
        _problem_call(lambda: client.delete_job(job_id))
    typer.echo(f"{job_id}: deleted")


@jobs.command("list")
def job_list(server: JobServerOption = DEFAULT_SERVER,
             limit: Annotated[int, typer.Option(help="at most this many jobs")] = 20,
             as_json: JsonOption = False) -> None:
    """The newest jobs."""
    with _client(server) as client:
        listed = _problem_call(lambda: list(islice(client.jobs(limit=limit), limit)))
    if as_json:
        typer.echo(json.dumps([job.model_dump(mode="json") for job in listed]))
        return
    table = Table(title="jobs")
    for column in ("id", "kind", "status", "progress", "created"):
        table.add_column(column)
    for job in listed:
        table.add_row(job.id, job.kind, job.status, f"{(job.progress.fraction or 0):.0%}",
                      job.created_at or "–")
    out.print(table)


# -- keys ------------------------------------------------------------------------------------
def _key_store() -> Any:
    from service.auth.keystore import KeyStore
    from service.jobs import open_job_store
    from service.settings import get_settings

    settings = get_settings()
    return KeyStore(open_job_store(settings.jobs_db_path, settings.jobs_db_url,
                                   pool_size=2, timeout_s=settings.store_timeout_s,
                                   password_file=settings.jobs_db_password_file))


def _parsed(parse: Any, value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _show_keys(records: list[dict[str, Any]]) -> None:
    table = Table(title="keys")
    for column in ("id", "name", "scopes", "created", "expires", "revoked", "limits"):
        table.add_column(column)
    for r in records:
        limits = ", ".join(f"{k}={v:g}" for k, v in r["limits"].items() if v is not None)
        table.add_row(r["id"], r["name"], ",".join(r["scopes"]), r["created_at"] or "–",
                      r["expires_at"] or "–", r["revoked_at"] or "–", limits or "–")
    out.print(table)


@keys.command("create")
def keys_create(
        name: Annotated[str, typer.Option("--name", help="who or what uses the key")],
        scopes: Annotated[str, typer.Option(
            "--scopes", help="comma-separated: compute, jobs, metrics, admin")],
        expires: Annotated[str | None, typer.Option(
            "--expires", help="it stops working after this long: 30d, 12h, 90m")] = None,
        rate: Annotated[str | None, typer.Option(
            "--rate", help="requests per second, e.g. 50/s or 600/min")] = None,
        max_active_jobs: Annotated[int | None, typer.Option(
            "--max-active-jobs", min=1, help="queued + running jobs")] = None,
        compute_seconds: Annotated[str | None, typer.Option(
            "--compute-seconds", help="compute time per minute, e.g. 120/min")] = None,
        max_run_steps: Annotated[int | None, typer.Option(
            "--max-run-steps", min=1, help="runs × max_steps of one request or job")] = None,
        as_json: JsonOption = False) -> None:
    """Make a key; prints it once (with --json: {"id", "key", …})."""
    from service.auth.keys import (
        KeyLimits,
        parse_duration,
        parse_per_second,
        parse_scopes,
    )

    chosen = _parsed(parse_scopes, scopes, "--scopes")
    limits = KeyLimits(
        rate=_parsed(parse_per_second, rate, "--rate"),
        compute_seconds=_parsed(lambda v: parse_per_second(v, "m"), compute_seconds,
                                "--compute-seconds"),
        max_active_jobs=max_active_jobs, max_run_steps=max_run_steps)
    record, key = _key_store().create(name, chosen,
                                      expires_in_s=_parsed(parse_duration, expires, "--expires"),
                                      limits=limits)
    document = record.document() | {"key": key}
    if as_json:
        typer.echo(json.dumps(document))
        return
    typer.echo(f"{record.id}  {key}")
    err.print("[yellow]the key is shown this once: keep it now[/yellow]")


@keys.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """Every key (never the keys themselves)."""
    records = [r.document() for r in _key_store().listing()]
    if as_json:
        typer.echo(json.dumps(records))
    else:
        _show_keys(records)


@keys.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID")],
                as_json: JsonOption = False) -> None:
    """Revoke a key: every replica refuses it within OPTIM_AUTH_CACHE_S."""
    record = _key_store().revoke(key_id)
    if record is None:
        err.print(f"[red]no key with id {key_id}[/red]")
        raise SystemExit(1)
    typer.echo(json.dumps(record.document()) if as_json else f"{record.id}: revoked")


def main() -> None:
    import httpx

    try:
        app()
    except httpx.TransportError as exc:  # no server there, refused, timed out: one line
        request = getattr(exc, "_request", None)
        where = f" at {request.url}" if request is not None else ""
        err.print(f"[red]cannot reach the service{where}:[/red] {exc or type(exc).__name__}; "
                  "is it running (optim serve), and is --server right?")
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
