# The optimizer service: slim Python, non-root, healthchecked.
# The base is pinned to a release and a Debian suite, so a rebuild gets the same Python.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPTIM_HOST=0.0.0.0 \
    OPTIM_PORT=8000 \
    OPTIM_WORKERS=1 \
    OPTIM_JOBS_DB_PATH=/data/optim_jobs.sqlite3 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

WORKDIR /app
# Dependencies first, from pyproject alone: a change to the code reuses this layer.
COPY pyproject.toml ./
# (with the postgres and ray extras: a replica can use a shared PostgreSQL job store and send
# jobs to a Ray cluster through a ray:// address (Ray Client), and the same image runs the
# cluster's head and workers). One BLAS thread per process: compute slots, pool workers and
# Ray workers are the parallelism, and OpenBLAS would size its pool from the host's cores.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres'] + p['optional-dependencies']['ray'] + p['optional-dependencies']['fast']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY optim_core ./optim_core
COPY service ./service
COPY optim_client ./optim_client
# The project itself (no dependencies left to fetch), then no build leftovers. The job store
# lives in /data, owned by the service's user (the app directory is root's and read-only to
# it); mount a volume there to keep finished jobs across containers. Compute slots default to
# the CPUs the container may use (its cgroup quota), not the host's.
RUN pip install --no-deps . && rm -rf build ./*.egg-info \
    && useradd --create-home --uid 10001 optim \
    && mkdir -p /data && chown optim /data
VOLUME /data
USER optim

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"OPTIM_PORT\", \"8000\")}/healthz', timeout=2)"
CMD ["python", "-m", "service"]
