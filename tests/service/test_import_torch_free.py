"""The API process must never import torch, not even transitively, nor anything of the worker
process (``worker.runtime``: its modules connect Celery worker signals) or of compute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["service.main", "service.cli"])
def test_service_imports_without_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "roots = ('torch', 'worker.runtime', 'worker.compute')\n"
        "leaked = sorted(m for m in sys.modules if m in roots or m.startswith(\n"
        "    tuple(r + '.' for r in roots)))\n"
        "assert not leaked, leaked\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
