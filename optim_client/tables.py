"""Answers in a notebook: pandas DataFrames (the optional extra `optim-client[pandas]`, or
`optim-service[pandas]`), NumPy arrays of trajectories, and HTML summaries Jupyter shows.

The long format is the service's CSV (`Accept: text/csv`): one row per recorded point, with
run, label, step, one column per coordinate, loss, grad_norm, lr. pandas and NumPy are
imported only when a frame or an array is asked for, so the client itself needs neither.
"""

from __future__ import annotations

import html
from typing import Any

MISSING = ("pandas is needed for DataFrames: pip install 'optim-client[pandas]' (or "
           "'optim-service[pandas]')")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return pandas


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ImportError("NumPy is needed for arrays: pip install 'optim-client[pandas]'"
                          ) from exc
    return numpy


def _variables(answer: Any) -> list[str]:
    runs = answer.runs or []
    dim = len(runs[0].start) if runs else 0
    names = (answer.loss or {}).get("variables") if isinstance(answer.loss, dict) else None
    return list(names) if names and len(names) == dim else [f"x{i + 1}" for i in range(dim)]


def trajectory_records(answer: Any) -> list[dict[str, Any]]:
    names = _variables(answer)
    records = []
    for r, run in enumerate(answer.runs or []):
        trajectory = run.trajectory
        if trajectory is None:
            records.append({"run": r, "label": run.label, "step": run.steps,
                            **dict(zip(names, run.final.params, strict=False)),
                            "loss": run.final.loss, "grad_norm": run.final.grad_norm,
                            "lr": None})
            continue
        for t, step in enumerate(trajectory.step):
            point = trajectory.params[t] if trajectory.params is not None else [None] * len(
                names)
            records.append({"run": r, "label": run.label, "step": step,
                            **dict(zip(names, point, strict=False)),
                            **{field: (getattr(trajectory, field) or [None] * (t + 1))[t]
                               if getattr(trajectory, field) is not None else None
                               for field in ("loss", "grad_norm", "lr")}})
    return records


def run_records(answer: Any) -> list[dict[str, Any]]:
    out = []
    for r, run in enumerate(answer.runs or []):
        d = run.diagnostics
        out.append({"run": r, "label": run.label, "optimizer": run.optimizer,
                    "status": run.status, "reason": run.reason, "steps": run.steps,
                    "final_loss": run.final.loss, "final_grad_norm": run.final.grad_norm,
                    "steps_to_tol": d.steps_to_tol, "oscillation": d.oscillation,
                    "path_efficiency": d.path_efficiency,
                    "convergence_rate": d.convergence_rate,
                    "findings": ", ".join(f.code for f in run.findings)})
    return out


def hyper_records(rows: list[Any], fields: list[str], index: str) -> list[dict[str, Any]]:
    return [{index: i, **row.hyperparameters, **{f: getattr(row, f) for f in fields}}
            for i, row in enumerate(rows)]


class RunsTables:
    """For answers with `runs` (optimize, compare)."""

    def runs_frame(self) -> Any:
        """One row per run: status, steps, final loss, the main diagnostics, finding codes."""
        return _pandas().DataFrame(run_records(self))

    def trajectories_frame(self) -> Any:
        """The long format: one row per recorded point of every run (as the CSV)."""
        return _pandas().DataFrame(trajectory_records(self))

    def trajectory_arrays(self, run: int) -> dict[str, Any]:
        """One run's recorded fields as NumPy arrays (params (T, d), loss (T,), …)."""
        np = _numpy()
        trajectory = self.runs[run].trajectory
        if trajectory is None:
            raise ValueError(f"run {run} has no trajectory (record was off)")
        return {name: np.asarray(value, dtype=float if name != "step" else int)
                for name, value in trajectory.model_dump(exclude_none=True).items()}

    def plot(self) -> Any:
        """A matplotlib Figure drawn here from the answer (the extra `plot`): each run's
        path over its first two coordinates, and its loss against the step (log scale). The
        service's own picture, with contours, is `client.figure(request)`."""
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError("plots need matplotlib: pip install 'optim-client[plot]'") from exc
        figure = Figure(figsize=(11, 4.4), dpi=100)
        paths, losses = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
        names = _variables(self)
        colours: dict[str, str] = {}
        labelled: set[str] = set()
        for run in self.runs or []:
            trajectory = run.trajectory
            if trajectory is None:
                continue
            colour = colours.setdefault(run.label, f"C{len(colours) % 10}")
            label = None if run.label in labelled else run.label  # one legend entry a label
            labelled.add(run.label)
            if trajectory.params is not None and len(names) >= 2:
                xs = [p[0] for p in trajectory.params]
                ys = [p[1] for p in trajectory.params]
                paths.plot(xs, ys, "-", color=colour, lw=1.3, marker=".", ms=2, label=label)
            if trajectory.loss is not None:
                losses.plot(trajectory.step, [float("nan") if v is None or v <= 0 else v
                                              for v in trajectory.loss],
                            color=colour, lw=1.3, label=label)
        if len(names) >= 2:
            paths.set_xlabel(names[0])
            paths.set_ylabel(names[1])
        paths.set_title("paths", fontsize=9)
        losses.set_yscale("log")
        losses.set_xlabel("step")
        losses.set_ylabel("loss")
        losses.set_title("loss against step", fontsize=9)
        for axes in (paths, losses):
            if axes.get_legend_handles_labels()[1]:
                axes.legend(fontsize=7)
        figure.tight_layout()
        return figure

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{r['run']}</td><td>{html.escape(str(r['label']))}</td>"
            f"<td>{r['status']}</td><td>{r['steps']}</td><td>{_fmt(r['final_loss'])}</td>"
            f"<td>{_fmt(r['oscillation'])}</td><td>{html.escape(r['findings'])}</td></tr>"
            for r in run_records(self)[:50])
        return ("<table><thead><tr><th>run</th><th>label</th><th>status</th><th>steps</th>"
                "<th>final loss</th><th>oscillation</th><th>findings</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")


class RowsTables:
    """For sweep answers."""

    def rows_frame(self) -> Any:
        """One row per grid point: its hyperparameters, success and divergence rates, …"""
        return _pandas().DataFrame(hyper_records(
            self.rows, ["success_rate", "divergence_rate", "median_final_loss",
                                    "median_steps_to_tol"], "index"))

    def _repr_html_(self) -> str:
        best = self.best
        return (f"<p>sweep of {len(self.rows)} settings; best "
                f"{html.escape(str(best.hyperparameters))} ({html.escape(best.reason)})</p>")


class TrialsTables:
    """For tune answers."""

    def trials_frame(self) -> Any:
        """One row per trial: label, its hyperparameters, objective, status, pruned_at, …"""
        trials = self.trials
        records = hyper_records(trials, ["objective", "status", "pruned_at", "success_rate"],
                                "trial")
        for record, trial in zip(records, trials, strict=True):
            record["label"] = trial.label
        return _pandas().DataFrame(records)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(b.label)}</td>"
                       f"<td>{html.escape(str(b.hyperparameters))}</td>"
                       f"<td>{_fmt(b.objective)}</td></tr>" for b in self.best)
        return ("<table><thead><tr><th>optimizer</th><th>best</th><th>objective</th></tr>"
                f"</thead><tbody>{rows}</tbody></table>")


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
