"""`Accept: text/csv`: answers as tables a notebook or a spreadsheet reads directly.

Long format, one row per recorded point of every run: run (its index in `runs`), label, step,
one column per coordinate (the loss's variable names), loss, grad_norm, lr (empty where not
recorded; a run without a trajectory gives one row, its final point). A sweep gives its rows
(index, one column per hyperparameter, success_rate, divergence_rate, median_final_loss,
median_steps_to_tol), a tune its trials (trial, label, one column per hyperparameter,
objective, status, pruned_at, success_rate), a benchmark job its table (loss, label, runs,
solved and median evaluations per target, best_gap). Numbers are written in Python's shortest
round-trip form; null is an empty cell. JSON stays the default: CSV is answered only when
the request's Accept header prefers text/csv to application/json.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

CSV_MEDIA_TYPE = "text/csv"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {
    CSV_MEDIA_TYPE: {
        "schema": {"type": "string"},
        "example": "run,label,step,x,y,loss,grad_norm,lr\n0,adam,0,-1.2,1.0,24.2,232.87,0.05\n"},
    PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


def _quality(part: str) -> tuple[str, float]:
    media, *params = [p.strip() for p in part.split(";")]
    q = 1.0
    for param in params:
        if param.startswith("q="):
            try:
                q = float(param[2:])
            except ValueError:
                q = 0.0
    return media.lower(), q


def wants_parquet(accept: str | None) -> bool:
    return prefers(accept, PARQUET_MEDIA_TYPE)


def wants_csv(accept: str | None) -> bool:
    return prefers(accept, CSV_MEDIA_TYPE)


def answer_parquet(body: bytes) -> bytes:
    """The CSV's table as Parquet (the optional pyarrow: optim-service[parquet]); columns
    typed from the values (numbers as float64 or int64, text as strings)."""
    import pyarrow.csv
    import pyarrow.parquet

    table = pyarrow.csv.read_csv(io.BytesIO(answer_csv(body).encode()))
    out = io.BytesIO()
    pyarrow.parquet.write_table(table, out)
    return out.getvalue()


def prefers(accept: str | None, media: str) -> bool:
    """Whether Accept prefers `media` to JSON (by q, then by order)."""
    if not accept or media not in accept.lower():
        return False
    ranked = [_quality(part) for part in accept.split(",") if part.strip()]
    csv_q = max((q for m, q in ranked if m == media), default=0.0)
    json_q = max((q for m, q in ranked if m in ("application/json", "application/*", "*/*")),
                 default=0.0)
    if csv_q <= 0:
        return False
    if csv_q != json_q:
        return csv_q > json_q
    first = next(m for m, q in ranked if m in (media, "application/json",
                                               "application/*", "*/*"))
    return first == media


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def answer_csv(body: bytes) -> str:
    """The CSV of a JSON answer (optimize, compare, sweep, tune)."""
    answer = orjson.loads(body)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if "ecdf" in answer and "table" in answer:  # a benchmark job's result: its table
        targets = answer["targets"]
        writer.writerow(["loss", "label", "runs", *(f"solved_{t:g}" for t in targets),
                         *(f"median_evals_{t:g}" for t in targets), "best_gap"])
        for row in answer["table"]:
            writer.writerow([row["loss"], row["label"], row["runs"],
                             *map(_cell, row["solved"]), *map(_cell, row["median_evals"]),
                             _cell(row["best_gap"])])
    elif "trials" in answer:
        _hyper_table(writer, answer["trials"], "trial", ["label"],
                     ["objective", "status", "pruned_at", "success_rate"])
    elif "rows" in answer:
        _hyper_table(writer, answer["rows"], "index", [],
                     ["success_rate", "divergence_rate", "median_final_loss",
                      "median_steps_to_tol"])
    else:
        _runs_table(writer, answer)
    return out.getvalue()


def _hyper_table(writer: Any, rows: list[dict[str, Any]], index: str, before: list[str],
                 after: list[str]) -> None:
    names = list(dict.fromkeys(k for row in rows for k in row["hyperparameters"]))
    writer.writerow([index, *before, *names, *after])
    for i, row in enumerate(rows):
        hyper = row["hyperparameters"]
        writer.writerow([i, *(_cell(row[k]) for k in before),
                         *(_cell(hyper.get(k)) for k in names), *(_cell(row[k]) for k in after)])


def _runs_table(writer: Any, answer: dict[str, Any]) -> None:
    runs = answer.get("runs", [])
    variables = (answer.get("loss") or {}).get("variables")
    dim = len(runs[0]["start"]) if runs else 0
    if not variables or len(variables) != dim:
        variables = [f"x{i + 1}" for i in range(dim)]
    writer.writerow(["run", "label", "step", *variables, "loss", "grad_norm", "lr"])
    blank = [""] * dim
    for r, run in enumerate(runs):
        label = run.get("label") or run.get("optimizer", {}).get("name", "")
        trajectory = run.get("trajectory")
        if not trajectory:
            final = run["final"]
            writer.writerow([r, label, run["steps"], *map(_cell, final["params"]),
                             _cell(final["loss"]), _cell(final["grad_norm"]), ""])
            continue
        steps = trajectory["step"]
        params = trajectory.get("params")
        columns = [trajectory.get(name) for name in ("loss", "grad_norm", "lr")]
        for t, step in enumerate(steps):
            point = map(_cell, params[t]) if params is not None else blank
            writer.writerow([r, label, step, *point,
                             *(_cell(c[t]) if c is not None else "" for c in columns)])
