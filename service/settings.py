"""Service settings: every field has an embedded default, overridable as OPTIM_<NAME>."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_cache_path, user_data_path
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPTIM_", env_ignore_empty=True)

    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 in the container)")
    port: int = Field(8000, gt=0, lt=65536)
    workers: int = Field(1, gt=0, description="uvicorn worker processes")
    log_level: str = "info"
    header_timeout_s: float = Field(10.0, gt=0, description="a request's line and headers must "
                                    "arrive within this time, or the connection is closed")
    body_timeout_s: float = Field(15.0, gt=0, description="a request's body must arrive within "
                                  "this time of its headers, or the connection is closed")
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="idle keep-alive connections "
                                        "close after this time")
    max_connections: int | None = Field(None, gt=0, description="open connections and tasks "
                                        "beyond which uvicorn answers 503 (default: the "
                                        "process's file limit less 256 descriptors kept for "
                                        "its own files)")
    backlog: int = Field(2048, gt=0, description="connections waiting to be accepted")

    validate_answers: bool = Field(False, description="check every answer against its route's "
                                   "declared response model (a mismatch is a 500); costs ~6× "
                                   "writing the answer: on in the tests, off in production")
    max_body_bytes: int = Field(2_000_000, gt=0, description="request body limit (413 above)")
    max_runs: int = Field(4096, gt=0, description="runs in one synchronous request")
    max_steps: int = Field(100_000, gt=0, description="max_steps of one synchronous request")
    max_work: int = Field(200_000_000, gt=0,
                          description="runs × steps × cost of a step (d; × rows for datasets; "
                                      "× d²/25 for Newton) of one request")
    max_recorded_values: int = Field(5_000_000, gt=0,
                                     description="numbers in the recorded trajectories")
    max_dim: int = Field(200, gt=0, description="parameters per run")
    max_points: int = Field(10_000, gt=0, description="record.max_points per run")
    max_landscape_points: int = Field(250_000, gt=0, description="nx × ny of a landscape")
    max_analyze_points: int = Field(1000, gt=0)
    max_plot_frames: int = Field(120, gt=1, description="frames of a plot's animation (gif, "
                                 "html, mp4)")
    max_expression_length: int = Field(2000, gt=0)
    max_expression_nodes: int = Field(600, gt=0)
    max_expression_depth: int = Field(60, gt=0)
    max_expression_variables: int = Field(32, gt=0)
    max_dataset_values: int = Field(2_000_000, gt=0,
                                    description="n × p of inline or synthetic data")
    symbolic_timeout_s: float = Field(5.0, gt=0,
                                      description="wall-clock limit of parse + differentiate")
    symbolic_isolation: bool = Field(True, description="run the symbolic stage in a process")
    symbolic_workers: int = Field(1, gt=0, description="worker processes of the symbolic stage")
    request_timeout_s: float = Field(10.0, gt=0, description="time budget of a synchronous request")
    eval_every: int = Field(10, gt=0, description="full-batch checks of stochastic runs")
    max_concurrency: int = Field(default_factory=lambda: usable_cpus(), gt=0,
                                 description="compute slots (requests and jobs); default the "
                                             "CPUs this process may use, cgroup quota included")
    max_queue: int = Field(16, ge=0, description="compute requests waiting; 429 beyond")
    executor: Literal["local", "ray"] = Field(
        "local", description="where jobs' large batches run: 'local', a process pool of "
        "workers_cpu processes; 'ray', a Ray cluster at ray_address (extra optim-service[ray])")
    ray_address: str | None = Field(None, description="the Ray cluster of executor=ray: "
                                    "ray://host:10001, host:6379, auto, or local (a cluster "
                                    "started by and ending with this process)")
    workers_cpu: int = Field(default_factory=lambda: usable_cpus(), gt=0,
                             description="processes of the local pool (CPUs of a 'local' Ray "
                                         "cluster); default the usable CPUs")
    shard_retries: int = Field(
        2, ge=0, description="Ray retries of a shard whose worker died (killed, out of memory, "
        "node lost) before its job fails; an exception in a shard is not retried (shards are "
        "deterministic: it would raise again)")
    job_max_running: int | None = Field(
        None, gt=0, description="jobs one replica runs at once; default: all but one compute "
        "slot with executor=local (they compute here, and never take the last slot), four per "
        "compute slot with executor=ray (they wait on the cluster and hold no slot)")
    inline_max_work: int = Field(
        1000, ge=0, description="runs × steps at or below which a first-order request on a "
        "ready loss runs on the event loop, without the worker-thread hop, while a compute "
        "slot is free (0: never)")
    retry_after_s: int = Field(1, gt=0, description="Retry-After of 429 answers")
    kernels: Literal["auto", "numpy", "numba"] = Field(
        "auto", description="step engine of first-order rules on builtin and expression "
        "losses: 'numba', fused compiled kernels (extra optim-service[fast]) for every batch "
        "they cover; 'numpy', the NumPy engine only; 'auto', fused for batches of 256 runs or "
        "more when numba is installed, compiling a new kernel only for a batch large enough "
        "to pay for it (the NumPy engine otherwise)")
    kernel_threads: int | None = Field(
        None, gt=0, description="threads one fused batch of 1,024 runs or more may use "
        "(default: the usable CPUs)")
    kernel_cache_dir: Path = Field(
        default_factory=lambda: user_cache_path("optim-service") / "kernels",
        description="where compiled kernels are kept, so a restart or a second replica "
        "sharing the directory does not compile again")

    auth: Literal["none", "api_key"] = Field(
        "none", description="'none': every endpoint open (one user on one machine); "
        "'api_key': endpoints need a key with their scope (README, Security)")
    bootstrap_admin_key_file: Path | None = Field(
        None, description="a file holding a key (e.g. a Docker secret) made an admin key at "
        "start-up if the store does not know it yet")
    auth_cache_s: float = Field(2.0, gt=0, le=5, description="how long a replica trusts a key "
                                "it read from the store: a revocation reaches every replica "
                                "within this time")
    quota_sync_s: float = Field(1.0, gt=0, description="how often a replica writes its keys' "
                                "usage to the store and reads the other replicas'")
    metrics_key_labels: int = Field(100, ge=0, description="distinct key ids /metrics labels "
                                    "requests with; further keys count as 'other'")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins whose pages may call the API from a "
        "browser (comma-separated or a JSON list; default none)")

    jobs_db_path: str = Field(
        default_factory=lambda: str(user_data_path("optim-service") / "optim_jobs.sqlite3"),
        description="SQLite file of the job store; default in the user's data directory "
                    "(~/.local/share/optim-service on Linux), not wherever the service starts")
    jobs_db_url: str | None = Field(
        None, description="postgresql://user:password@host:port/database: one job store for "
        "several replicas (psycopg 3, the extra optim-service[postgres]); unset: the SQLite "
        "file at jobs_db_path")
    jobs_db_password_file: Path | None = Field(
        None, description="a file holding the PostgreSQL password (e.g. a Docker secret): "
        "used instead of a password in jobs_db_url, which then need not carry one")
    jobs_db_pool_size: int = Field(8, gt=0, description="connections to PostgreSQL per "
                                   "replica; a call that finds none free within "
                                   "store_timeout_s is answered 503")
    store_timeout_s: float = Field(5.0, gt=0, description="how long a job-store call may take "
                                   "(connect, wait for a connection or a lock, run) before it "
                                   "is answered 503 store-unavailable")
    job_ttl_s: float = Field(7 * 24 * 3600, gt=0, description="how long finished jobs are kept")
    job_sweep_interval_s: float = Field(600, gt=0, description="how often expired jobs go")
    job_max_active: int = Field(32, gt=0, description="queued + running jobs; 429 beyond")
    job_max_runs: int = Field(65_536, gt=0)
    job_max_steps: int = Field(1_000_000, gt=0)
    job_max_work: int = Field(20_000_000_000, gt=0)
    job_max_recorded_values: int = Field(50_000_000, gt=0)
    job_timeout_s: float = Field(3600, gt=0, description="time budget of one job")
    job_lease_s: float = Field(30, gt=0, description="a runner's hold on a job, renewed every "
                               "third of it; a job whose lease ran out is run again")
    job_max_attempts: int = Field(3, gt=0, description="runs of a job whose runner died before "
                                  "it is failed with reason interrupted")
    job_poll_interval_s: float = Field(0.5, gt=0, description="how often a runner looks for "
                                       "queued jobs and expired leases")
    job_shutdown_grace_s: float = Field(5, ge=0, description="how long a stopping runner waits "
                                        "for its jobs to reach a step boundary")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    def for_jobs(self) -> Settings:
        """The same settings with the larger job limits in place of the synchronous ones."""
        return self.model_copy(update={
            "max_runs": self.job_max_runs, "max_steps": self.job_max_steps,
            "max_work": self.job_max_work, "max_recorded_values": self.job_max_recorded_values,
            "request_timeout_s": self.job_timeout_s})


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container
    limited to 2 CPUs on a 64-core host gets 2 compute slots, not 64)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return max(1, count)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def read_secret(path: Path, setting: str, error: type[Exception]) -> str:
    """The stripped content of a secret file a setting names (a Docker secret), or `error`
    naming the setting and why the file cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise error(f"OPTIM_{setting.upper()} names {path}, which cannot be read "
                    f"({exc.strerror})") from exc
