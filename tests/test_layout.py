"""The layout holds by rules: import contracts, no private names across packages, small modules.

The import contracts live in pyproject.toml (``[tool.importlinter]``) and run in ``make lint``;
here each one is also shown to fail on a planted violation, so a contract that could never
fire (a typo in a module name, say) is caught.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "worker", "trainability_client")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: A function longer than MAX_FUNCTION_LINES says why in its docstring with this word.
LONG_REASON = "Long:"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The unit of privacy: ``worker.jobs.store`` -> ``worker.jobs``; ``service.x`` ->
    ``service``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "worker" and len(parts) > 2 else parts[0]


def test_import_contracts_hold() -> None:
    proc = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


PLANTED = {
    # contract name (prefix) -> (module written, the import it plants)
    "The API process": ("service/planted.py", "import worker.compute.planted_target\n"),
    "The contract is pure": ("worker/core/planted.py", "import redis\n"),
    "Job plumbing": ("worker/jobs/planted.py", "import worker.compute.planted_target\n"),
    "Compute imports nothing": ("worker/compute/planted.py", "import worker.jobs.planted_target\n"),
    "The worker never": ("worker/planted.py", "import service.planted_target\n"),
    "The client imports": ("trainability_client/planted.py", "import worker.core.planted_target\n"),
}


@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_each_import_contract_fails_on_a_planted_violation(tmp_path: Path, contract: str) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = [c["name"] for c in config["contracts"]]
    assert any(n.startswith(contract) for n in names), names
    # A skeleton of the three root packages with every module the contracts name, clean...
    for pkg in ("service", "worker", "worker/core", "worker/jobs", "worker/runtime",
                "worker/compute", "trainability_client"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
        (tmp_path / pkg / "planted_target.py").write_text("")
    for external in ("torch", "redis", "celery", "kombu", "numpy"):
        (tmp_path / external).mkdir()
        (tmp_path / external / "__init__.py").write_text("")
    # ...plus the one planted import.
    module, line = PLANTED[contract]
    (tmp_path / module).write_text(line)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    proc = subprocess.run([str(LINT_IMPORTS)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0, proc.stdout
    broken = [n for n in names if f"{n} BROKEN" in proc.stdout]
    assert len(broken) == 1 and broken[0].startswith(contract), proc.stdout


def test_no_private_name_is_imported_across_packages() -> None:
    offenders = []
    for path in source_files():
        here = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] not in PACKAGES:
                    continue
                if package_of(node.module) == package_of(here):
                    continue
                offenders += [f"{here}: from {node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_modules_are_small() -> None:
    big = {module_name(p): n for p in source_files()
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert big == {}


def test_long_functions_say_why() -> None:
    long = []
    # the benches too: scripts, but read and changed like the rest (their modules may be long)
    for path in [*source_files(), *sorted((ROOT / "bench").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if lines > MAX_FUNCTION_LINES and LONG_REASON not in doc:
                    long.append(f"{module_name(path)}.{node.name}: {lines} lines")
    assert long == []
