"""Where a bench's ``--json PATH`` goes: every raw number of the run, as one JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` (its folder made if needed) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"raw numbers: {path}")
