"""The app factory: `uvicorn --factory service.main:create_app` or `python -m service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import anyio.to_thread
import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import TypeAdapter
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Route

from optim_core import kernels
from optim_core.optimizers import OPTIMIZERS
from service.auth import open_auth, start_auth
from service.compute import ComputeGate
from service.examples import EXAMPLES
from service.executors import open_executor
from service.heap import freeze_startup_heap
from service.jobs import open_job_store
from service.jobs.manager import JobManager
from service.middleware import BodyLimitMiddleware, HeadAsGetMiddleware
from service.observability import Metrics, ObservabilityMiddleware
from service.problems import install_problem_handlers
from service.routes import (
    catalog,
    health,
    jobs,
    keys,
    landscape,
    metrics,
    optimize,
    playground,
    plot,
    studies,
    sweep,
)
from service.schemas.base import standard_bounds
from service.security_headers import SecurityHeadersMiddleware
from service.settings import Settings, get_settings, usable_cpus
from service.symbolic import shutdown as symbolic_shutdown
from service.symbolic import warm_up

DESCRIPTION = (
    f"Runs optimizers ({', '.join(OPTIMIZERS)}) on symbolic, catalog, quadratic and sampled "
    "losses in one vectorised batch, and answers trajectories, convergence diagnostics and "
    "plain-language findings. The reference: docs/api.md in the repository."
)
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


def _version() -> str:
    try:
        return package_version("optim-service")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


DOCS_ASSETS = "/docs-assets"
ROUTE_MODULES = (optimize, sweep, studies, landscape, plot, jobs, keys, catalog, health,
                 metrics, playground)


def _operation_id(route: APIRoute) -> str:
    return route.name


def _standard_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document with bounds spelled as JSON Schema spells them and a working example
    body on every operation that takes one (built once). Endpoints that take a key declare
    both ways to send it; with OPTIM_AUTH=none the key is optional there (`{}` among them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = standard_bounds(build())
            schemas = document["components"]["schemas"]  # type: ignore[index]
            for name, model in jobs.EVENT_SCHEMAS.items():
                schemas.setdefault(name, TypeAdapter(model).json_schema())
            keys_optional = app.state.settings.auth != "api_key"
            for operations in document["paths"].values():  # type: ignore[index]
                for operation in operations.values():
                    if keys_optional and "security" in operation:
                        # declared (a client may send a key), not required: `{}` says so
                        operation["security"] = [{}, *operation["security"]]
                    examples = EXAMPLES.get(operation.get("operationId"))
                    if examples is not None:
                        body = operation["requestBody"]["content"]["application/json"]
                        body["examples"] = examples
            app.openapi_schema = document  # type: ignore[assignment]
        return app.openapi_schema

    return openapi


def _serve_redoc_offline(app: FastAPI, static_url: str) -> None:
    """ReDoc's bundle, with the one image it fetches from its vendor's CDN (a "powered by"
    logo) replaced by an empty inline picture: the page asks no other host for anything."""
    bundle = (Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
              ).read_text(encoding="utf-8").replace(REDOC_LOGO, NO_IMAGE)

    async def redoc_bundle(request: Request) -> Response:
        return Response(bundle, media_type="text/javascript")

    # before fastapi-offline's mount of the same directory, which would answer first
    app.router.routes.insert(0, Route(f"{static_url}/redoc.standalone.js", redoc_bundle))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass explicit settings, production reads OPTIM_* variables."""
    settings = settings or get_settings()
    kernels.configure(settings.kernels, settings.kernel_threads or usable_cpus(),
                      settings.kernel_cache_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.symbolic_isolation:  # start the symbolic worker now, not on a request
            await anyio.to_thread.run_sync(warm_up, settings.symbolic_timeout_s * 4,
                                           settings.symbolic_workers)
        if app.state.executor.name == "ray":  # connect now: the first job should not wait
            await anyio.to_thread.run_sync(app.state.executor.connect)
        if app.state.auth.enabled:
            await anyio.to_thread.run_sync(start_auth, app.state.auth, settings)
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
            if app.state.auth.quotas is not None:
                await anyio.to_thread.run_sync(app.state.auth.quotas.stop)
            await anyio.to_thread.run_sync(app.state.executor.close)
            await anyio.to_thread.run_sync(app.state.jobs.store.close)
            if settings.symbolic_isolation:
                await anyio.to_thread.run_sync(symbolic_shutdown)

    # the docs pages load Swagger UI and ReDoc from fastapi-offline's copies, served here:
    # FastAPI's own pages fetch them from public CDNs and are blank without internet
    app = FastAPIOffline(title="Optimizer service", version=_version(),
                         description=DESCRIPTION, generate_unique_id_function=_operation_id,
                         lifespan=lifespan, static_url=DOCS_ASSETS)
    _serve_redoc_offline(app, DOCS_ASSETS)
    app.state.settings = settings
    app.openapi = _standard_openapi(app)
    app.state.gate = ComputeGate(settings.max_concurrency, settings.max_queue,
                                 settings.retry_after_s, job_slots=settings.job_max_running,
                                 jobs_hold_slots=settings.executor == "local")
    # a large fused batch takes its own compute slot's CPU and the slots idle when it starts
    # (not held: a request that comes in meanwhile shares the cores for the batch's time)
    kernels.share_cpus_with(app.state.gate.idle_slots)
    app.state.executor = open_executor(settings)  # a missing Ray fails here, naming the setting
    store = open_job_store(settings.jobs_db_path, settings.jobs_db_url,
                           pool_size=settings.jobs_db_pool_size,
                           timeout_s=settings.store_timeout_s,
                           password_file=settings.jobs_db_password_file)
    app.state.jobs = JobManager(store, app.state.gate, settings, app.state.executor)
    app.state.auth = open_auth(settings, store, app.state.jobs.call)
    app.state.jobs.quotas = app.state.auth.quotas
    app.state.metrics = Metrics(app.state.gate, key_labels=settings.metrics_key_labels
                                if settings.auth == "api_key" else None)
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type",
                                          "Accept", "X-Request-ID"],
                           expose_headers=["Location", "Retry-After", "X-Request-ID",
                                           "WWW-Authenticate"], max_age=600)
    app.add_middleware(HeadAsGetMiddleware)
    logging.getLogger("service").setLevel(settings.log_level.upper())
    return app
