"""Regenerate docs/rosenbrock.svg, the README's picture, through the service itself.

    python scripts/render_example.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from service.main import create_app
from service.settings import Settings

BODY = {
    "request": {
        "loss": {"kind": "builtin", "name": "rosenbrock"},
        "max_steps": 3000,
        "record": {"max_points": 300},
        "optimizers": [{"name": "sgd", "lr": 0.001},
                       {"name": "momentum", "lr": 0.001, "momentum": 0.9},
                       {"name": "adam", "lr": 0.02}],
    },
    "format": "svg",
    "size": [1100, 480],
}
OUT = Path(__file__).resolve().parent.parent / "docs" / "rosenbrock.svg"


async def render() -> bytes:
    app = create_app(Settings(jobs_db_path=":memory:"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.post("/v1/plot", json=BODY, timeout=60)
        response.raise_for_status()
        return response.content


def main() -> None:
    content = asyncio.run(render())
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_bytes(content)
    print(f"wrote {OUT} ({len(content):,} bytes)")


if __name__ == "__main__":
    main()
