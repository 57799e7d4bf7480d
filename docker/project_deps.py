"""The project's requirements, read from pyproject.toml, for the Docker images.

torch is a core dependency (the worker needs it), so neither image can use a plain
``pip install .``: the API image must not get torch at all, and the worker image must keep the
CUDA build of torch that its base image ships instead of pulling another from PyPI. Both images
install the requirements this script prints, then the project itself with ``pip install
--no-deps``, so pyproject.toml stays the only list of dependencies::

    python project_deps.py pyproject.toml requirements --extra api      # the API image
    python project_deps.py pyproject.toml requirements --exclude torch  # the worker image
    python project_deps.py pyproject.toml check-pin torch     # installed torch == the pin
    python project_deps.py pyproject.toml check-absent torch  # torch is not installed

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

# PEP 508 distribution name at the start of a requirement string.
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
# What follows the name: optional extras, then the version specifier, then optional markers.
_EXTRAS = re.compile(r"^\s*\[[^\]]*\]")
_EXACT_PIN = re.compile(r"^\s*==\s*([^\s,;]+)\s*$")


class DepsError(Exception):
    """pyproject.toml or the installed environment is not what the image build expects."""


def canonical(name: str) -> str:
    """PEP 503 normalized name: ``Scikit_Learn`` and ``scikit-learn`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The canonical project name of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if match is None:
        raise DepsError(f"cannot read a project name from requirement {requirement!r}")
    return canonical(match.group(1))


def load_requirements(pyproject: Path, extra: str | None = None) -> list[str]:
    """The core dependencies, or with ``extra`` only that optional-dependency group."""
    with pyproject.open("rb") as fh:
        project = tomllib.load(fh).get("project", {})
    if extra is None:
        found = project.get("dependencies", [])
    else:
        groups = project.get("optional-dependencies", {})
        if extra not in groups:
            raise DepsError(f"{pyproject} has no optional-dependencies group {extra!r}")
        found = groups[extra]
    if not isinstance(found, list) or not all(isinstance(r, str) for r in found):
        raise DepsError(f"{pyproject}: dependencies must be a list of strings")
    return list(found)


def select(requirements: list[str], exclude: list[str]) -> list[str]:
    """``requirements`` without the projects named in ``exclude``."""
    dropped = {canonical(name) for name in exclude}
    return [r for r in requirements if requirement_name(r) not in dropped]


def exact_pin(requirements: list[str], name: str) -> str:
    """The version that ``name`` is pinned to with ``==`` in ``requirements``."""
    wanted = canonical(name)
    for requirement in requirements:
        if requirement_name(requirement) != wanted:
            continue
        rest = _NAME.sub("", requirement, count=1)
        rest = _EXTRAS.sub("", rest, count=1).split(";", 1)[0]
        match = _EXACT_PIN.match(rest)
        if match is None:
            raise DepsError(
                f"{requirement!r} is not an exact '==' pin; check-pin (and the worker image's "
                "base-image tag) assume one"
            )
        return match.group(1)
    raise DepsError(f"{name!r} is not a dependency")


def check_pin(requirements: list[str], name: str) -> str:
    """Fail unless the installed ``name`` has the pinned version (local label ignored)."""
    pinned = exact_pin(requirements, name)
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DepsError(f"{name} is not installed; the base image should provide it") from exc
    # "2.13.0+cu126" is the CUDA 12.6 build of 2.13.0: the local label names the build.
    if installed.split("+", 1)[0] != pinned.split("+", 1)[0]:
        raise DepsError(
            f"installed {name} {installed} does not match the pin {name}=={pinned} in "
            "pyproject.toml: use a base image that ships the pinned version"
        )
    return installed


def check_absent(name: str) -> None:
    """Fail if ``name`` is installed or importable."""
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None or importlib.util.find_spec(name) is not None:
        found = f"{name} {version}" if version is not None else name
        raise DepsError(f"{found} is installed but must not be in this image")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("pyproject", type=Path, help="path to pyproject.toml")
    commands = parser.add_subparsers(dest="command", required=True)
    reqs = commands.add_parser("requirements", help="print requirements, one per line")
    reqs.add_argument("--extra", help="print this optional-dependency group instead of the core")
    reqs.add_argument("--exclude", action="append", default=[], metavar="NAME")
    pin = commands.add_parser("check-pin", help="installed NAME has the version pinned by '=='")
    pin.add_argument("name")
    absent = commands.add_parser("check-absent", help="NAME is not installed")
    absent.add_argument("name")
    args = parser.parse_args(argv)

    try:
        if args.command == "requirements":
            for requirement in select(load_requirements(args.pyproject, args.extra), args.exclude):
                print(requirement)
        elif args.command == "check-pin":
            installed = check_pin(load_requirements(args.pyproject), args.name)
            print(f"{args.name} {installed} matches the pin in {args.pyproject}")
        else:
            check_absent(args.name)
            print(f"{args.name} is not installed, as intended")
    except (DepsError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"project_deps: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
