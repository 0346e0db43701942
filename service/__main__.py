"""`python -m service`: serve with uvicorn (uvloop + httptools) on the configured host/port."""

from __future__ import annotations

import uvicorn

from service.observability import configure_logging
from service.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run("service.main:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, loop="auto", http="auto",
                log_level=settings.log_level.lower(),
                log_config=configure_logging(settings.log_level))


if __name__ == "__main__":
    main()
