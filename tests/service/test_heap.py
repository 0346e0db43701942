"""Start-up freezes the heap out of full collections (service/heap.py)."""

from __future__ import annotations

import gc

import httpx

from service.main import create_app
from service.settings import Settings


async def test_startup_freezes_the_heap_out_of_full_collections(tmp_path) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = create_app(Settings(jobs_db_path=str(tmp_path / "jobs.sqlite3"),
                              symbolic_isolation=False))
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            # what a full collection still scans: the objects made after start-up only
            assert frozen > 50_000 and len(gc.get_objects()) < frozen / 5
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answer = await client.post("/v1/optimize", json={
                    "loss": {"kind": "expression", "expression": "(1-x)^2 + 100*(y-x^2)^2"},
                    "optimizer": {"name": "adam", "lr": 0.01}, "start": [-1.2, 1.0],
                    "max_steps": 300})
            assert answer.status_code == 200 and answer.json()["runs"][0]["steps"] == 300
            assert gc.get_freeze_count() <= frozen  # requests freeze nothing more
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
