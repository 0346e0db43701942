"""The app factory: `uvicorn --factory service.main:create_app` or `python -m service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from service.compute import ComputeGate
from service.executors import open_executor
from service.heap import freeze_startup_heap
from service.jobs.manager import JobManager
from service.jobs.store import open_job_store
from service.middleware import BodyLimitMiddleware
from service.observability import Metrics, ObservabilityMiddleware
from service.problems import install_problem_handlers
from service.routes import (
    catalog,
    health,
    jobs,
    landscape,
    metrics,
    optimize,
    playground,
    plot,
    sweep,
)
from service.schemas.base import standard_bounds
from service.settings import Settings, get_settings
from service.symbolic import shutdown as symbolic_shutdown
from service.symbolic import warm_up

DESCRIPTION = (
    "Runs optimizers (SGD, momentum, Nesterov, RMSProp, AdaGrad, Adam, AdamW, Newton) on "
    "symbolic, catalog, quadratic and sampled losses in one vectorised batch, and answers "
    "trajectories, convergence diagnostics and plain-language findings."
)


ROUTE_MODULES = (optimize, sweep, landscape, plot, jobs, catalog, health, metrics, playground)


def _operation_id(route: APIRoute) -> str:
    return route.name


def _standard_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document with bounds spelled as JSON Schema spells them (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = standard_bounds(build())  # type: ignore[assignment]
        return app.openapi_schema

    return openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass explicit settings, production reads OPTIM_* variables."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.symbolic_isolation:  # start the symbolic worker now, not on a request
            await anyio.to_thread.run_sync(warm_up, settings.symbolic_timeout_s * 4,
                                           settings.symbolic_workers)
        if app.state.executor.name == "ray":  # connect now: the first job should not wait
            await anyio.to_thread.run_sync(app.state.executor.status)
        app.state.jobs.start()  # queued jobs (this process's or another's) run from now on
        logging.getLogger("service").info("start-up heap frozen: %d objects",
                                          freeze_startup_heap())
        sweeper = asyncio.get_running_loop().create_task(app.state.jobs.sweep_expired())
        try:
            yield
        finally:
            sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await sweeper
            await app.state.jobs.shutdown()
            await anyio.to_thread.run_sync(app.state.executor.close)
            if settings.symbolic_isolation:
                await anyio.to_thread.run_sync(symbolic_shutdown)

    # the docs pages load Swagger UI and ReDoc from fastapi-offline's copies, served here:
    # FastAPI's own pages fetch them from public CDNs and are blank without internet
    app = FastAPIOffline(title="Optimizer service", version="1.0.0", description=DESCRIPTION,
                         generate_unique_id_function=_operation_id, lifespan=lifespan,
                         static_url="/docs-assets")
    app.state.settings = settings
    app.openapi = _standard_openapi(app)
    app.state.gate = ComputeGate(settings.max_concurrency, settings.max_queue,
                                 settings.retry_after_s, job_slots=settings.job_max_running,
                                 jobs_hold_slots=settings.executor == "local")
    app.state.executor = open_executor(settings)  # a missing Ray fails here, naming the setting
    app.state.jobs = JobManager(open_job_store(settings.jobs_db_path, settings.jobs_db_url),
                                app.state.gate, settings, app.state.executor)
    app.state.metrics = Metrics(app.state.gate)
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    logging.getLogger("service").setLevel(settings.log_level.upper())
    return app
