"""What each extra installs, resolved by pip against the package index.

``pip install 'trainability[client]'`` must stay light: httpx and its few dependencies, no
torch and none of the server's libraries. pip resolves the project's extras here without
installing anything (``--dry-run --report``), from a copy of the sources so that building the
project's metadata writes nothing into the tree. The index must be reachable (it is in CI);
where it is not, these tests skip and say so. Run with ``-s`` to see the resolved lists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A resolve reads the index over the network: minutes would mean something is wrong.
RESOLVE_TIMEOUT_S = 180
#: The server's libraries: none may come with the client.
SERVER_ONLY = {"torch", "fastapi", "starlette", "uvicorn", "celery", "kombu", "redis",
               "pydantic", "pydantic-settings", "matplotlib", "numpy", "scikit-learn"}


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def index_unreachable() -> str | None:
    """Why the package index cannot be reached, or None when it answers."""
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=10):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def source_copy(where: Path) -> Path:
    """The files a build of the project reads, copied (no caches, no egg-info)."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        roots = [p.rstrip("*") for p in tomllib.load(fh)["tool"]["setuptools"]["packages"]
                 ["find"]["include"]]
    where.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, where / name)
    for root in roots:
        shutil.copytree(ROOT / root, where / root,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return where


class Resolve:
    """``pip install --dry-run --ignore-installed --report`` of ``<project>[extras]``, started
    in the background so that several run at once."""

    def __init__(self, workdir: Path, extras: str) -> None:
        self.extras = extras
        self.report = workdir / f"report-{extras}.json"
        source = source_copy(workdir / f"src-{extras}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--quiet", "--disable-pip-version-check", "--retries", "1", "--timeout", "30",
             "--report", str(self.report), f"{source}[{extras}]"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir,
        )

    def packages(self) -> dict[str, str]:
        """Canonical name -> version of what pip would install."""
        try:
            _, stderr = self.proc.communicate(timeout=RESOLVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail(f"resolving [{self.extras}] took over {RESOLVE_TIMEOUT_S} s")
        if self.proc.returncode != 0:
            why = index_unreachable()
            if why is not None:
                pytest.skip(f"the package index is unreachable ({why}); cannot resolve extras")
            pytest.fail(f"pip could not resolve [{self.extras}]:\n{stderr}")
        report = json.loads(self.report.read_text())
        return {canonical(item["metadata"]["name"]): item["metadata"]["version"]
                for item in report["install"]}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Resolve]]:
    """The client extra, resolved (about 10 s). The API extra's "no torch" is checked from
    pyproject.toml in tests/test_compose.py: its resolve takes 30 s, too long for CI."""
    workdir = tmp_path_factory.mktemp("resolve")
    runs = {extras: Resolve(workdir, extras) for extras in ("client",)}
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()


def test_the_client_extra_is_httpx_and_nothing_of_the_server(
    resolved: dict[str, Resolve],
) -> None:
    packages = resolved["client"].packages()
    print("\npip install 'trainability[client]' resolves:")
    for name, version in sorted(packages.items()):
        print(f"  {name}=={version}")
    assert "httpx" in packages
    assert "trainability" in packages
    assert not SERVER_ONLY & packages.keys(), sorted(SERVER_ONLY & packages.keys())
    # httpx's own dependencies and little else: a new one should be a decision, not a drift.
    assert len(packages) <= 12, sorted(packages)
