"""The Dockerfile, read as text (no Docker daemon in CI): the image must hold every package
the project installs, and its non-root user must be able to write the job store."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

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


def test_dependencies_are_installed_before_the_source_is_copied():
    lines = DOCKERFILE.splitlines()
    install = next(i for i, line in enumerate(lines) if "requirements.txt" in line
                   and "pip install" in line)
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY optim_core"))
    assert install < first_source
    assert [line for line in lines[:install] if line.startswith("COPY")] == [
        "COPY pyproject.toml ./"]
    assert "pip install --no-deps ." in DOCKERFILE and "rm -rf build" in DOCKERFILE


def test_the_base_image_is_pinned_and_the_requirements_line_reads_pyproject():
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    # the one-liner the image runs, run here: it must list exactly pyproject's dependencies
    command = re.search(r'python -c "(.*?)" > /tmp/requirements.txt', DOCKERFILE).group(1)
    import subprocess
    import sys

    listed = subprocess.run([sys.executable, "-c", command], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    assert listed == (project["project"]["dependencies"] + extras["postgres"] + extras["ray"]
                      + extras["fast"])


def _compose() -> dict:
    """compose.yaml as `docker compose config` reads it: merge keys and anchors resolved,
    environment lists as mappings."""
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    for service in compose["services"].values():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            service["environment"] = dict(e.split("=", 1) for e in environment)
    return compose


def test_compose_file_parses_and_names_only_known_settings():
    """compose.yaml: two API replicas on one PostgreSQL and a Ray cluster (head and worker),
    all from the one image; every OPTIM_ variable a setting."""
    from service.settings import Settings

    services = _compose()["services"]
    replicas = [s for s in services.values()  # the image's own command: the API
                if s.get("image") == "optim-service" and "command" not in s]
    assert len(replicas) >= 2
    known = {f"OPTIM_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        unknown = {n for n in service.get("environment", {}) if n.startswith("OPTIM_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which the service does not know"
    for replica in replicas:
        assert replica["environment"]["OPTIM_JOBS_DB_URL"].startswith("postgresql://")
    assert any("postgres" in str(s.get("image", "")) for s in services.values())
    # a Ray head and worker from the same image; the replicas send jobs there by Ray Client
    ray_nodes = [s for s in services.values() if "ray start" in " ".join(s.get("command", []))]
    assert len(ray_nodes) >= 2 and all(s["image"] == "optim-service" for s in ray_nodes)
    assert any("--head" in s["command"] for s in ray_nodes)
    head_name, head = next((n, s) for n, s in services.items() if "--head" in s.get("command", []))
    client_port = next(a.split("=")[1] for a in head["command"]
                       if a.startswith("--ray-client-server-port="))
    for replica in replicas:
        environment = replica["environment"]
        assert environment.get("OPTIM_EXECUTOR") == "ray"
        assert environment["OPTIM_RAY_ADDRESS"] == f"ray://{head_name}:{client_port}"


def test_compose_services_are_limited_restarted_and_built_once():
    """What an operator needs of each container: a restart policy, CPU and memory limits,
    one BLAS thread per process, the shared image built (never pulled), an init for the
    processes Ray and the pool leave, and health checks that check the container itself."""
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no limits"
        if service.get("image") != "optim-service":
            continue
        assert service.get("pull_policy") == "build" and service.get("build"), name
        assert service.get("init") is True, name
        environment = service["environment"]
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            assert environment.get(variable) == "1", (name, variable)
        command = " ".join(service.get("command", []))
        if "ray start" in command:
            # Ray's CPUs match the container's limit, and no check of an API port
            assert f"--num-cpus={int(float(limits['cpus']))}" in command, name
            check = " ".join(service.get("healthcheck", {}).get("test", []))
            assert check and "8000" not in check and "healthz" not in check, name


def test_compose_keeps_secrets_in_files_and_the_cluster_out_of_reach():
    """Keys on; no password or key in the file (PostgreSQL's password, the first admin key and
    Ray's token are secrets read from files); only the API publishes a port; PostgreSQL and
    the Ray nodes sit on internal networks only; Ray's token authentication is on."""
    compose = _compose()
    services = compose["services"]
    files = {name: secret["file"] for name, secret in compose["secrets"].items()}
    assert set(files) == {"pg_password", "admin_key", "ray_token"}
    assert all(path.startswith("./secrets/") for path in files.values())
    internal = {name for name, network in compose["networks"].items()
                if (network or {}).get("internal")}
    for name, service in services.items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            assert not re.search(r"PASSWORD$|_KEY$|TOKEN$", variable), (name, variable)
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), (name, variable)
        if "ray start" in " ".join(service.get("command", [])) or name == "postgres":
            assert not service.get("ports"), f"{name} publishes a port"
            assert set(service["networks"]) <= internal, name
        if service.get("image") == "optim-service":
            assert environment["RAY_AUTH_MODE"] == "token"
            assert environment["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_token"
            assert "ray_token" in service["secrets"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == \
        "/run/secrets/pg_password"
    replicas = [s for s in services.values()
                if s.get("image") == "optim-service" and "command" not in s]
    for replica in replicas:
        environment = replica["environment"]
        assert environment["OPTIM_AUTH"] == "api_key"
        assert environment["OPTIM_BOOTSTRAP_ADMIN_KEY_FILE"] == "/run/secrets/admin_key"
        assert environment["OPTIM_JOBS_DB_PASSWORD_FILE"] == "/run/secrets/pg_password"
        assert set(replica["networks"]) - internal, "a replica must be reachable"
        assert replica.get("ports")


def test_the_image_holds_the_ray_client_and_the_postgres_pool():
    """A replica reaches the cluster by a ray:// address (Ray Client needs its extra) and the
    store through psycopg's pool: both come with the extras the image installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    assert any(r.startswith("ray[client]") for r in extras["ray"])
    assert any(r.startswith("psycopg[binary,pool]") for r in extras["postgres"])
    for variable in ("OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"):
        assert variable in DOCKERFILE
