"""`python -m service.openapi` writes openapi/openapi.json (sorted, indented)."""

from __future__ import annotations

import json
from pathlib import Path

from service.main import create_app
from service.settings import Settings

PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def document() -> str:
    app = create_app(Settings(max_concurrency=1, jobs_db_path=":memory:"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(document(), encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
