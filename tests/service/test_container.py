"""The Dockerfile, read as text (no Docker daemon in CI): the image must hold every package
the project installs, and its non-root user must be able to write the job store."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_image_copies_every_package_the_project_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\./\1/?$", DOCKERFILE, flags=re.MULTILINE))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


def test_the_job_store_lives_in_a_directory_the_service_user_owns():
    store = re.search(r"OPTIM_JOBS_DB_PATH=(\S+)", DOCKERFILE)
    assert store is not None, "the image must set OPTIM_JOBS_DB_PATH (its app dir is root's)"
    directory = str(Path(store.group(1)).parent)
    user = re.search(r"^USER\s+(\S+)", DOCKERFILE, flags=re.MULTILINE).group(1)
    assert re.search(rf"mkdir -p {re.escape(directory)}\b.*chown {user} {re.escape(directory)}",
                     DOCKERFILE, flags=re.DOTALL)
    assert f"VOLUME {directory}" in DOCKERFILE
