# The optimizer service: slim Python, non-root, healthchecked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPTIM_HOST=0.0.0.0 \
    OPTIM_PORT=8000 \
    OPTIM_WORKERS=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY optim_core ./optim_core
COPY service ./service
RUN pip install . && useradd --create-home --uid 10001 optim
USER optim

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"OPTIM_PORT\", \"8000\")}/healthz', timeout=2)"
CMD ["python", "-m", "service"]
