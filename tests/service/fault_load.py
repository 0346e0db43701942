"""A small mixed load for the fault tests: threads submitting jobs, polling them, following
their events and asking synchronous questions, against one or more live servers. It records
every answer's status by kind, and which jobs were accepted (202), so a test can check that
no 500 was answered and that every accepted job ends once, with the answer a lone run gives.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import httpx

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}


def job_request(i: int) -> dict[str, Any]:
    """Small compare requests that differ (their answers can be told apart)."""
    return {"loss": RAVINE, "start": [[1, 1], [-2, 0.5]], "max_steps": 200 + 7 * (i % 40),
            "optimizers": [{"name": "sgd", "lr": 0.015}, {"name": "adam", "lr": 0.05}],
            "record": {"max_points": 5}}


SYNC = {"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 50}


class Load:
    def __init__(self, urls: list[str], *, submitters: int = 2, pollers: int = 2,
                 streams: int = 2, sync: int = 1, pause_s: float = 0.05) -> None:
        self.urls = urls
        self.pause_s = pause_s
        self.statuses: dict[str, Counter[int]] = {k: Counter() for k in
                                                  ("submit", "poll", "events", "sync")}
        self.errors: list[str] = []
        self.accepted: dict[str, int] = {}  # job id → request index
        self.sync_slowest = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._count = 0
        self._threads = [threading.Thread(target=target, daemon=True) for target, n in (
            (self._submit, submitters), (self._poll, pollers), (self._events, streams),
            (self._sync, sync)) for _ in range(n)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _note(self, kind: str, status: int, text: str = "") -> None:
        with self._lock:
            self.statuses[kind][status] += 1
            if status >= 500 and status != 503:
                self.errors.append(f"{kind} {status}: {text[:300]}")

    def _url(self) -> str:
        return random.choice(self.urls)

    def _submit(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                with self._lock:
                    index = self._count
                    self._count += 1
                try:
                    r = client.post(f"{self._url()}/v1/jobs",
                                    json={"kind": "compare", "request": job_request(index)})
                except httpx.HTTPError as exc:
                    self._note("submit", 0, repr(exc))
                else:
                    self._note("submit", r.status_code, r.text)
                    if r.status_code == 202:
                        with self._lock:
                            self.accepted[r.json()["id"]] = index
                time.sleep(self.pause_s * 4)

    def _some_job(self) -> str | None:
        with self._lock:
            return random.choice(list(self.accepted)) if self.accepted else None

    def _poll(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                job = self._some_job()
                if job is not None:
                    path = random.choice(("", "/result"))
                    try:
                        r = client.get(f"{self._url()}/v1/jobs/{job}{path}")
                    except httpx.HTTPError as exc:
                        self._note("poll", 0, repr(exc))
                    else:
                        self._note("poll", r.status_code, r.text)
                    try:
                        r = client.get(f"{self._url()}/v1/jobs?limit=5")
                        self._note("poll", r.status_code, r.text)
                    except httpx.HTTPError as exc:
                        self._note("poll", 0, repr(exc))
                time.sleep(self.pause_s)

    def _events(self) -> None:
        while not self._stop.is_set():
            job = self._some_job()
            if job is None:
                time.sleep(self.pause_s)
                continue
            try:
                with httpx.stream("GET", f"{self._url()}/v1/jobs/{job}/events",
                                  timeout=httpx.Timeout(30, read=20)) as r:
                    self._note("events", r.status_code, "")
                    for line in r.iter_lines():
                        if self._stop.is_set() or line.startswith("event: end"):
                            break
            except httpx.HTTPError as exc:
                self._note("events", 0, repr(exc))

    def _sync(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    r = client.post(f"{self._url()}/v1/optimize", json=SYNC)
                except httpx.HTTPError as exc:
                    self._note("sync", 0, repr(exc))
                else:
                    self._note("sync", r.status_code, r.text)
                    with self._lock:
                        self.sync_slowest = max(self.sync_slowest, time.monotonic() - began)
                time.sleep(self.pause_s)


def wait_all_ended(url: str, ids: list[str], limit: float = 120.0) -> dict[str, dict]:
    """Every job's final document (each must end: succeeded, failed or cancelled)."""
    deadline = time.monotonic() + limit
    ended: dict[str, dict] = {}
    with httpx.Client(timeout=30) as client:
        while len(ended) < len(ids):
            for job in ids:
                if job in ended:
                    continue
                r = client.get(f"{url}/v1/jobs/{job}")
                if r.status_code == 200 and r.json()["status"] in ("succeeded", "failed",
                                                                   "cancelled"):
                    ended[job] = r.json()
            if time.monotonic() > deadline:
                stuck = [client.get(f"{url}/v1/jobs/{job}").text for job in ids
                         if job not in ended]
                raise AssertionError(f"{len(stuck)} jobs never ended: {stuck[:3]}")
            time.sleep(0.2)
    return ended


def assert_results_are_lone_answers(url: str, accepted: dict[str, int]) -> None:
    """Each accepted job's result is the synchronous answer to its request."""
    answers: dict[int, dict] = {}
    with httpx.Client(timeout=60) as client:
        for job, index in accepted.items():
            if index not in answers:
                direct = client.post(f"{url}/v1/compare", json=job_request(index)).json()
                answers[index] = direct["runs"]
            result = client.get(f"{url}/v1/jobs/{job}/result").json()
            assert [r["final"] for r in result["runs"]] == [r["final"] for r in answers[index]]
