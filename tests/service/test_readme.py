"""The curl examples of the README and of docs/ still answer what they show (a subset of the
answer)."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = re.compile(r"```sh\n(curl [^\n]+)\n```\n\n```json\n(.*?)\n```", re.S)
PAIRS = [pair for page in PAGES for pair in EXAMPLE.findall(page.read_text(encoding="utf-8"))]


def contains(actual, shown, where="answer"):
    """`shown` is a subset of `actual`: dict keys, list prefixes, floats to 1e-9."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict), where
        for key, value in shown.items():
            assert key in actual, f"{where}.{key} missing"
            contains(actual[key], value, f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) >= len(shown), where
        for i, value in enumerate(shown):
            contains(actual[i], value, f"{where}[{i}]")
    elif isinstance(shown, float):
        assert actual == pytest.approx(shown, rel=1e-9, abs=1e-12), where
    else:
        assert actual == shown, where


def test_the_pages_have_examples_for_every_compute_endpoint():
    paths = {re.search(r"localhost:8000(/\S+)", cmd).group(1) for cmd, _ in PAIRS}
    assert {"/v1/optimize", "/v1/compare", "/v1/sweep", "/v1/landscape", "/v1/analyze"} <= paths
    readme = EXAMPLE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(readme) == 3  # the front page keeps three; the rest live in docs/


def test_the_readme_is_a_short_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200 and "../shared" not in text
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8")):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links {target}"


@pytest.mark.parametrize(("command", "shown"), PAIRS, ids=[c[:60] for c, _ in PAIRS])
async def test_readme_example_answers_as_shown(client, command, shown):
    words = shlex.split(command)
    path = re.search(r"localhost:8000(/\S+)", command).group(1)
    body = json.loads(words[words.index("-d") + 1])
    r = await client.post(path, json=body)
    contains(r.json(), json.loads(shown))
