"""Run every benchmark and print the tables (and optionally write bench/RESULTS.md).

    python -m bench.run                 # all, printed
    python -m bench.run --write         # also write bench/RESULTS.md (its hand-written
                                        # section from ANALYSIS_HEADING on is kept)
    python -m bench.run engine newton   # some
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import (
    auth,
    batch,
    classical,
    engine,
    http,
    newton,
    sampled,
    sweep,
    symbolic,
    tune,
)
from bench.common import machine, versions

ANALYSIS_HEADING = "## Against the targets"
BENCHMARKS = {"engine": engine.main, "newton": newton.main, "symbolic": symbolic.main,
              "sampled": sampled.main, "http": http.main, "batch": batch.main,
              "sweep": sweep.main, "classical": classical.main, "auth": auth.main,
              "tune": tune.main}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default all)")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    header = (f"# Benchmark results\n\n{time.strftime('%Y-%m-%d')}, `python -m bench.run"
              f"{' ' + ' '.join(args.names) if args.names else ''}`\n\nMachine: {machine()}. "
              f"{versions('torch', 'scipy', 'jax', 'fastapi', 'uvicorn')}. Medians over "
              "repetitions; every ratio is measured side by side in the same run.\n")
    print(header)
    sections = []
    for name in names:
        section = BENCHMARKS[name]()
        print(section)
        sections.append(section)
    if args.write:
        path = Path(__file__).with_name("RESULTS.md")
        path.write_text(header + "\n" + "\n".join(sections) + _analysis(path), encoding="utf-8")
        print(f"wrote {path} (update its analysis by hand to the new tables)")


def _analysis(path: Path) -> str:
    """The hand-written analysis of the previous RESULTS.md, from its heading on."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    at = old.find(ANALYSIS_HEADING)
    return "" if at < 0 else "\n" + old[at:]


if __name__ == "__main__":
    main()
