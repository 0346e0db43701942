"""A corpus of hostile or broken inputs against a real server: every one gets a 4xx within a
few seconds, nothing is executed (the canary file never appears), the server keeps answering."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

CANARY = Path("/tmp/optim-canary-do-not-create")
# A hang check, not a speed test: generous enough for a loaded two-core CI machine.
HANG = 15.0
E = "expression"


def loss(expression: str) -> dict:
    return {"kind": E, "expression": expression}


EXPRESSIONS = [
    f"__import__('os').system('touch {CANARY}')",
    f"open('{CANARY}', 'w')",
    f"().__class__.__base__.__subclasses__()[0]('{CANARY}')",
    "x.__globals__", "exec('1')", "eval('x')", "lambda: x", "[x for x in y]", "x[0]",
    "'s' * 10", "f'{x}'", "x if y else 1", "(y := 1)", "sin(*x)", "sin(x=1)",
    "9**9**9**9", "((9**9)**9999)**9999", "1e999 * x", "1" + "0" * 400 + "*x", "x/0",
    "log(0) + x", "(" * 300 + "x" + ")" * 300, "-" * 5000 + "x", "x\x00", "x\n+y", "", "x +",
    "foo(x)", "x²", "sin(" * 200 + "x" + ")" * 200,
]
ENDPOINT_BODIES = [
    ("/v1/optimize", {"loss": loss(e), "start": [1, 1]}) for e in EXPRESSIONS[:12]
] + [
    ("/v1/analyze", {"loss": loss(e), "points": [1, 1]}) for e in EXPRESSIONS[12:22]
] + [
    ("/v1/landscape", {"loss": loss(e)}) for e in EXPRESSIONS[22:26]
] + [
    ("/v1/plot", {"request": {"loss": loss(e), "start": [1, 1]}}) for e in EXPRESSIONS[26:28]
] + [
    ("/v1/jobs", {"kind": "optimize", "request": {"loss": loss(e), "start": [1, 1]}})
    for e in EXPRESSIONS[28:]
] + [
    # wrong types, shapes and absurd limits
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "start": [[1, 2], [3]]}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "start": "origin"}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere", "dim": 10**9}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "max_steps": 10**12}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"},
                      "start": {"random": {"n": 10**9}}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"},
                      "record": {"max_points": 10**9}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "stop": {"patience": 0}}),
    ("/v1/optimize", {"loss": {"kind": "quadratic", "A": [[1] * 5000] * 5000}}),
    ("/v1/optimize", {"loss": {"kind": "quadratic", "A": [[1, 2], [3]]}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "softmax",
                               "synthetic": {"n_classes": 10**6}}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "softmax", "X": [[1], [2]],
                               "y": [0, 1e9]}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "linear",
                               "synthetic": {"n_samples": 10**9, "n_features": 10**3}}}),
    ("/v1/optimize", {"loss": {"kind": "expression", "expression": "x",
                               "variables": [f"v{i}" for i in range(1000)]}, "start": [1]}),
    ("/v1/optimize", {"loss": {"kind": "expression", "expression": "x",
                               "variables": ["__class__"]}, "start": [1]}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"},
                      "optimizer": {"name": "adam", "lr": {"name": "cosine", "lr": 1,
                                                            "steps": 0}}}),
    ("/v1/compare", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizers": []}),
    ("/v1/compare", {"loss": {"kind": "builtin", "name": "sphere"},
                     "optimizers": [{"name": "sgd"}] * 10**4}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {"lr": [0.1] * 100, "weight_decay": [0.0] * 100}}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {"lr": ["fast"]}}),
    ("/v1/landscape", {"loss": {"kind": "builtin", "name": "sphere"},
                       "resolution": [10**6, 10**6]}),
    ("/v1/landscape", {"loss": {"kind": "builtin", "name": "sphere"},
                       "bounds": [[1, 0], [0, 1]]}),
    ("/v1/landscape", {"loss": {"kind": "builtin", "name": "sphere", "dim": 3},
                       "axes": [0, 7]}),
    ("/v1/analyze", {"loss": {"kind": "builtin", "name": "sphere"}, "points": [[0, 0]] * 10**5}),
    ("/v1/plot", {"request": {"loss": {"kind": "builtin", "name": "sphere"}},
                  "size": [10**5, 10**5]}),
    ("/v1/jobs", {"kind": "rm -rf", "request": {}}),
] + [
    # counts past 2^64 in a limit's answer, negative seeds, extreme data parameters
    *[(path, {"loss": {"kind": "dataset", "model": "linear",
                       "synthetic": {"n_samples": 10**4, "n_features": 10**16}}})
      for path in ("/v1/optimize", "/v1/analyze", "/v1/landscape")],
    ("/v1/jobs", {"kind": "optimize", "request": {"loss": {
        "kind": "dataset", "model": "linear",
        "synthetic": {"n_samples": 10**4, "n_features": 10**16}}}}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {k: [0.001 * (i + 1) for i in range(10_000)] for k in
                            ("lr", "weight_decay")} | {
                       f"x{j}": [0.0] * 10_000 for j in range(3)}}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "adam"},
                   "grid": {"lr": [0.001] * 10_000, "beta1": [0.9] * 10_000,
                            "beta2": [0.99] * 10_000, "eps": [1e-8] * 10_000,
                            "weight_decay": [0.0] * 10_000}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "linear",
                               "synthetic": {"seed": -1}}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"},
                      "start": {"random": {"n": 2, "seed": -5}}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "seed": -5}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "seed": 2**70}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "linear",
                               "synthetic": {"condition": 1e308}}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "softmax", "X": [[1.0], [2.0]],
                               "y": [1e300, 0]}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "softmax",
                               "synthetic": {"n_classes": 2**62}}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "linear",
                               "synthetic": {"n_samples": 2**63 - 1}}}),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "linear",
                               "synthetic": {"n_samples": 2**64 + 1}}}),
    ("/v1/landscape", {"loss": {"kind": "builtin", "name": "sphere"},
                       "resolution": [2**62, 2**62]}),
    ("/v1/landscape", {"loss": {"kind": "builtin", "name": "sphere"},
                       "resolution": [2**62, 2]}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {"lr": [{"name": "cosine", "lr": 0.1, "steps": 10,
                                    "junk": [1, {"a": None}], "more": "x"}]}}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {"lr": [{"junk": 1}, None, [1, 2], {"name": {"a": 1}}]}}),
    ("/v1/sweep", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"},
                   "grid": {"lr": []}}),
    ("/v1/plot", {"request": {"loss": {"kind": "builtin", "name": "sphere"}, "max_steps": 5},
                  "bounds": [[-1e308, 1e308], [-1e308, 1e308]]}),
    ("/v1/plot", {"request": {"loss": {"kind": "builtin", "name": "sphere"}, "max_steps": 5},
                  "bounds": [[-1e308, 1e308]]}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {
        "name": "sgd", "lr": True}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {
        "name": "sgd", "lr": "0.1"}}),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "sphere"}, "max_steps": "3"}),
]
RAW_BODIES = [
    ("/v1/optimize", b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [NaN, 1]}'),
    ("/v1/optimize", b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [Infinity, 1]}'),
    ("/v1/optimize", b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [-Infinity, 1]}'),
    ("/v1/optimize", b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [1e999, 1]}'),
    ("/v1/optimize", b"[" * 100_000 + b"]" * 100_000),
    ("/v1/optimize", b'{"loss": ' * 5000),
    ("/v1/optimize", b"\xff\xfe garbage"),
    ("/v1/optimize", b""),
    ("/v1/optimize", b" " * 3_000_000),
    ("/v1/compare", b'{"optimizers": [' + b'{"name": "sgd"},' * 200_000 + b"]}"),
    ("/v1/sweep", b'{"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"}, '
                  b'"grid": {"lr": [' + b"[" * 1000 + b"]" * 1000 + b"]}}"),
    ("/v1/sweep", b'{"loss": {"kind": "builtin", "name": "sphere"}, "optimizer": {"name": "sgd"}, '
                  b'"grid": {"lr": [' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"]}}"),
]


@pytest.fixture(scope="module")
def server(module_server):
    return module_server


def test_corpus_size():
    assert len(ENDPOINT_BODIES) + len(RAW_BODIES) >= 60


@pytest.mark.parametrize(("path", "body"), ENDPOINT_BODIES,
                         ids=[f"{p}-{i}" for i, (p, _) in enumerate(ENDPOINT_BODIES)])
def test_hostile_json_gets_a_quick_4xx(server, path, body):
    content = json.dumps(body).encode()  # serialised before the clock starts: the client's cost
    began = time.monotonic()
    r = httpx.post(server + path, content=content, timeout=30,
                   headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]
    assert time.monotonic() - began < HANG
    assert not CANARY.exists()


@pytest.mark.parametrize(("path", "raw"), RAW_BODIES,
                         ids=[f"{p}-raw{i}" for i, (p, _) in enumerate(RAW_BODIES)])
def test_hostile_bytes_get_a_quick_4xx(server, path, raw):
    began = time.monotonic()
    r = httpx.post(server + path, content=raw, timeout=30,
                   headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text[:300]
    assert time.monotonic() - began < HANG


def test_server_still_answers_and_nothing_ran(server):
    assert not CANARY.exists()
    assert httpx.get(server + "/healthz").status_code == 200
    r = httpx.post(server + "/v1/optimize", json={"loss": {"kind": "builtin", "name": "booth"},
                                                  "optimizer": {"name": "newton"}})
    assert r.status_code == 200 and r.json()["runs"][0]["status"] == "converged"
