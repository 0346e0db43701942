"""`python -m service`: serve with uvicorn (uvloop + httptools) on the configured host/port."""

from __future__ import annotations

from contextlib import suppress

import uvicorn

from service.observability import configure_logging
from service.settings import get_settings

FILES_KEPT = 256  # descriptors never given to connections: the store, pipes, logs, workers


def _raise_file_limit() -> int | None:
    """Every open connection is a file descriptor: take the soft limit up to the hard one, so
    a crowd of slow clients meets the header and body deadlines before it meets the file
    limit. Answers the connections to allow: the limit less FILES_KEPT, so the service never
    runs out of descriptors for its own files (beyond it uvicorn answers 503 at once)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else max(64, soft - FILES_KEPT)


def _http_protocol() -> type | str:
    try:
        from service.protocol import HeaderDeadlineProtocol
    except ImportError:  # httptools missing: uvicorn's own choice, without the deadline
        return "auto"
    return HeaderDeadlineProtocol


def main() -> None:
    settings = get_settings()
    connections = _raise_file_limit()
    uvicorn.run("service.main:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, loop="auto", http=_http_protocol(),
                log_level=settings.log_level.lower(), backlog=settings.backlog,
                timeout_keep_alive=settings.keep_alive_timeout_s,
                limit_concurrency=settings.max_connections or connections,
                log_config=configure_logging(settings.log_level))


if __name__ == "__main__":
    main()
