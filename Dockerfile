# The optimizer service: slim Python, non-root, healthchecked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPTIM_HOST=0.0.0.0 \
    OPTIM_PORT=8000 \
    OPTIM_WORKERS=1 \
    OPTIM_JOBS_DB_PATH=/data/optim_jobs.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY optim_core ./optim_core
COPY service ./service
COPY optim_client ./optim_client
# The job store lives in /data, owned by the service's user (the app directory is root's and
# read-only to it); mount a volume there to keep finished jobs across containers.
RUN pip install . && useradd --create-home --uid 10001 optim \
    && mkdir -p /data && chown optim /data
VOLUME /data
USER optim

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"OPTIM_PORT\", \"8000\")}/healthz', timeout=2)"
CMD ["python", "-m", "service"]
