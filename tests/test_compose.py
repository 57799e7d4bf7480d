"""The container setup, checked without a Docker engine.

docker-compose.yml, the two Dockerfiles and .dockerignore are read as data: the guarantees
ARCHITECTURE.md asks of the deployment (Redis with AOF and noeviction, health-gated start-up,
one GPU per worker, no torch in the API image, non-root processes, a working `trainability`
command in both images) are asserted here, so a change that drops one fails CI on machines that
cannot build the images. What an image lacks is simulated in a child interpreter that cannot
import those packages. If the `docker compose` CLI is installed, the compose file is also
validated by it (client-side only).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
API_DOCKERFILE = ROOT / "docker" / "api.Dockerfile"
WORKER_DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

# `celery -A worker.runtime.app` finds the module's Celery instance itself (its `app`).
WORKER_APP = "worker.runtime.app"
API_APP = "service.main:app"

# Run in a child interpreter: import a module with some top-level packages made unimportable,
# as they are in an image that does not install them.
_IMPORT_WITHOUT = """
import importlib, importlib.abc, sys

blocked = {name for name in sys.argv[1].split(",") if name}


class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)", name=name)
        return None


sys.meta_path.insert(0, NotInImage())
if sys.argv[2] == "--script":  # run a console script as its installed launcher does
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name=sys.argv[3])
    sys.argv = sys.argv[3:]
    sys.exit(script.load()())
for name in sys.argv[2].split(","):
    importlib.import_module(name)
if len(sys.argv) > 3:
    from celery import Celery
    from celery.app.utils import find_app

    app = find_app(sys.argv[2].split(",")[0])  # what `celery -A <module>` does
    assert isinstance(app, Celery), app
"""


# ---- helpers --------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit between continuation lines too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name}: the last instruction ends with a line continuation"
    return instructions


def instruction_args(path: Path, keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction in the Dockerfile, in order."""
    return [args for key, args in dockerfile_instructions(path) if key == keyword]


def final_stage(path: Path) -> list[tuple[str, str]]:
    """The instructions of the last build stage (the image that ships)."""
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (key, _) in enumerate(instructions) if key == "FROM")
    return instructions[last_from:]


def exec_form(args: str) -> list[str]:
    """The argv of an exec-form (JSON array) CMD."""
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


def argument_after(argv: list[str], *flags: str) -> str:
    """The value of the first of ``flags`` in argv, as ``-A X`` or ``--app=X``."""
    for i, arg in enumerate(argv):
        if arg in flags:
            return argv[i + 1]
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    raise AssertionError(f"none of {flags} in {argv}")


def assert_module_defines(target: str) -> None:
    """``pkg.module:attr`` names a module file in the repository that assigns ``attr``."""
    module, _, attr = target.partition(":")
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{target}: {path.relative_to(ROOT)} does not exist (yet)"
    if attr:
        assigned = re.compile(rf"^{re.escape(attr)}\s*(:[^=\n]*)?=", re.MULTILINE)
        assert assigned.search(path.read_text()), (
            f"{target}: {path.relative_to(ROOT)} assigns no module-level {attr!r}"
        )


def import_without(module: str, blocked: set[str], *, celery_app: bool = False) -> None:
    """Import ``module`` (or several, comma-separated) from the repository in a fresh
    interpreter that lacks ``blocked``; with ``celery_app``, find the Celery app in the first."""
    args = [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(sorted(blocked)), module]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [*args, "celery-app"] if celery_app else args,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, f"importing {module} without {sorted(blocked)}:\n{done.stderr}"


def import_names(distributions: set[str]) -> set[str]:
    """Top-level import names of installed distributions (``scikit-learn`` -> ``sklearn``)."""
    wanted = {canonical(d) for d in distributions}
    names = {d.replace("-", "_") for d in wanted}
    for top_level, dists in importlib.metadata.packages_distributions().items():
        if any(canonical(d) in wanted for d in dists):
            names.add(top_level)
    return names


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context.

    Docker's rules, as far as this file uses them: the last matching pattern wins, ``!``
    re-includes, ``*`` stays within one path segment, ``**`` spans any number, and a pattern
    that matches a directory matches everything under it.
    """

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    ancestors = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.match(candidate) for candidate in ancestors):
            excluded = not negate
    return excluded


def project() -> dict[str, Any]:
    """The ``[project]`` table of pyproject.toml."""
    with PYPROJECT.open("rb") as fh:
        found = tomllib.load(fh)["project"]
    assert isinstance(found, dict)
    return found


def requirements(*extras: str) -> list[str]:
    """What ``pip install '.[extras]'`` asks for: the base dependencies and those of ``extras``,
    with the project's references to its own extras (``trainability[api,worker]``) expanded."""
    meta = project()
    found: list[str] = list(meta["dependencies"])
    for extra in extras:
        for requirement in meta["optional-dependencies"][extra]:
            parsed = Requirement(requirement)
            if canonical(parsed.name) == canonical(meta["name"]):
                found += requirements(*sorted(parsed.extras))
            else:
                found.append(requirement)
    return found


def every_requirement() -> list[str]:
    """The base dependencies and every extra's."""
    return requirements(*project()["optional-dependencies"])


def requirement_names(requirements: list[str]) -> set[str]:
    """The canonical project names of requirement strings."""
    return {canonical(Requirement(r).name) for r in requirements}


def installed_closure(requirements: list[str]) -> set[str]:
    """The canonical names of the installed distributions that ``requirements`` pull in,
    their dependencies included (markers evaluated here, extras followed)."""
    found: set[str] = set()
    followed: set[tuple[str, str]] = set()  # (distribution, extra); "" is its base
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        extras = [e for e in ["", *sorted(requirement.extras)] if (name, e) not in followed]
        if not extras:
            continue
        try:
            dependencies = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here, so nothing to block either
        found.add(name)
        followed.update((name, e) for e in extras)
        for dependency in map(Requirement, dependencies):
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return found


def lacking(*extras: str) -> set[str]:
    """Top-level import names an install of the project with ``extras`` lacks: what the
    project's other extras pull in, and nothing that its own requirements pull in."""
    kept = installed_closure(requirements(*extras))
    missing = installed_closure(every_requirement()) - kept
    # A namespace package (``opentelemetry``: -api is fastapi's, -sdk is mlflow's) is shared by
    # distributions on both sides: the install still has it.
    return import_names(missing) - import_names(kept)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


# ---- docker-compose.yml ---------------------------------------------------------------------


def test_the_three_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"redis", "api", "worker"} <= services.keys()


def test_redis_persists_with_aof_and_never_evicts(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    assert argv[0] == "redis-server"
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    # The AOF lives in /data: a named volume keeps it across container re-creation.
    volume = next(v.split(":")[0] for v in redis["volumes"] if v.split(":")[1] == "/data")
    assert volume in compose["volumes"]


def test_redis_health_is_a_ping(services: dict[str, dict[str, Any]]) -> None:
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_everything_else_waits_for_a_healthy_redis(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "redis":
            continue
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_every_service_has_a_complete_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        assert {"test", "interval", "timeout", "retries"} <= check.keys(), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert re.fullmatch(r"(\d+(ms|s|m|h))+", check["interval"]), name
        assert re.fullmatch(r"(\d+(ms|s|m|h))+", check["timeout"]), name
        assert isinstance(check["retries"], int) and check["retries"] >= 1, name


def test_api_publishes_8000_and_checks_healthz(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert "8000:8000" in api["ports"]
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_worker_reserves_one_nvidia_gpu(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    (gpu,) = devices
    assert gpu["driver"] == "nvidia"
    assert "gpu" in gpu["capabilities"]
    # One worker process per GPU: exactly one device, by count or by id.
    assert gpu.get("count") == 1 or len(gpu.get("device_ids", [])) == 1
    assert worker["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert worker["environment"]["CUDA_VISIBLE_DEVICES"] == "0"


def test_worker_health_pings_its_own_node(services: dict[str, dict[str, Any]]) -> None:
    """The node name the health check pings is the one the worker runs as."""
    test = services["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = test[1]
    assert f"-A {WORKER_APP} inspect ping" in command
    # Compose would substitute a bare $HOSTNAME from the host's environment at parse time;
    # $$ leaves a literal $ for the container's shell.
    assert '"celery@$$HOSTNAME"' in command
    assert "--timeout" in command
    worker_cmd = exec_form(instruction_args(WORKER_DOCKERFILE, "CMD")[-1])
    assert argument_after(worker_cmd, "-n", "--hostname") == "celery@%h"


def test_cpu_worker_is_opt_in_and_takes_only_the_cpu_queue(
    services: dict[str, dict[str, Any]],
) -> None:
    if "worker-cpu" not in services:
        pytest.skip("no worker-cpu service")
    cpu = services["worker-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu  # no GPU reservation: it must start where there is no GPU
    assert cpu["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    argv = [str(a) for a in cpu["command"]]
    assert argument_after(argv, "-A", "--app") == WORKER_APP
    assert argument_after(argv, "-Q", "--queues") == "cpu"
    assert argument_after(argv, "-P", "--pool") == "prefork"
    assert argument_after(argv, "-c", "--concurrency") == "1"


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict[str, Any]]) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"api", "worker"} <= built.keys()
    for name, build in built.items():
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context.is_dir(), name
        assert (context / build["dockerfile"]).is_file(), name
    assert built["api"]["dockerfile"] == "docker/api.Dockerfile"
    assert built["worker"]["dockerfile"] == "docker/worker.Dockerfile"


def _interpolated(environment: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose would pass it (``${VAR:-default}`` only)."""

    def one(value: Any) -> str:
        return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: values.get(m[1], m[2]), str(value))

    return {key: one(value) for key, value in environment.items()}


def _service_settings(environment: dict[str, str]) -> Any:
    """ServiceSettings read from exactly this environment (nothing from the test process)."""
    from service.settings import ServiceSettings

    saved = {k: v for k, v in os.environ.items() if k.startswith("TRAINABILITY_")}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in environment.items() if k.startswith("TRAINABILITY_")})
        return ServiceSettings()
    finally:
        for key in [k for k in os.environ if k.startswith("TRAINABILITY_")]:
            del os.environ[key]
        os.environ.update(saved)


def test_api_runs_with_auth_and_refuses_to_start_without_keys(
    services: dict[str, dict[str, Any]],
) -> None:
    import hashlib

    from pydantic import ValidationError

    env = services["api"]["environment"]
    assert env["TRAINABILITY_AUTH_ENABLED"] == "true"
    assert env["TRAINABILITY_ENVIRONMENT"] == "production"
    with pytest.raises(ValidationError, match="TRAINABILITY_API_KEYS is empty"):
        _service_settings(_interpolated(env, {}))
    keys = json.dumps([{"name": "ops", "sha256": hashlib.sha256(b"k-31337").hexdigest()}])
    settings = _service_settings(_interpolated(env, {"TRAINABILITY_API_KEYS": keys}))
    assert settings.auth_enabled and settings.api_keys[0].name == "ops"
    with pytest.raises(ValidationError, match="webhook_secret is a placeholder"):
        _service_settings(_interpolated(env, {"TRAINABILITY_API_KEYS": keys,
                                              "TRAINABILITY_WEBHOOK_ALLOWLIST": "*"}))


def test_notifier_delivers_webhooks_from_the_api_image(
    services: dict[str, dict[str, Any]],
) -> None:
    notifier = services["notifier"]
    assert notifier["image"] == services["api"]["image"]  # torch-free, small
    # Built like the API, so `docker compose up` on a fresh host builds it instead of trying
    # to pull a local tag from a registry.
    assert notifier["build"] == services["api"]["build"]
    argv = [str(a) for a in notifier["command"]]
    assert argument_after(argv, "-A", "--app") == WORKER_APP
    assert argument_after(argv, "-Q", "--queues") == "webhooks"
    assert argument_after(argv, "-P", "--pool") == "threads"
    assert argument_after(argv, "-n", "--hostname") == "notifier@%h"
    assert '"notifier@$$HOSTNAME"' in notifier["healthcheck"]["test"][1]
    for key in ("TRAINABILITY_WEBHOOK_ALLOWLIST", "TRAINABILITY_WEBHOOK_SECRET"):
        assert key in notifier["environment"] and key in services["api"]["environment"]


def test_every_image_a_service_names_is_pulled_or_built(
    services: dict[str, dict[str, Any]],
) -> None:
    """A locally tagged image with no `build:` makes `up` on a fresh host fail to pull it."""
    for name, service in services.items():
        image = service.get("image", "")
        assert "build" in service or (image and not image.endswith(":local")), name


def test_worker_task_modules_load_with_only_the_api_extra() -> None:
    """The notifier runs `celery -A worker.runtime.app` on the API image: the task modules it
    imports (tasks, heartbeat, reaper, webhooks) must not need torch."""
    missing = lacking("api")
    assert "torch" in missing
    import_without("worker.runtime.tasks,worker.runtime.reaper,worker.runtime.liveness,"
                   "worker.jobs.webhooks", missing)


# ---- Dockerfiles ----------------------------------------------------------------------------


def installed_extras(dockerfile: Path) -> list[set[str]]:
    """The extras of the project's wheel that each ``pip install`` of the final stage names."""
    runs = [args for key, args in final_stage(dockerfile) if key == "RUN"]
    return [
        set(extras.split(","))
        for run in runs
        for extras in re.findall(r"/wheels/trainability-\*\.whl\)\[([\w,]+)\]", run)
    ]


def test_api_image_is_python_slim_without_torch() -> None:
    assert instruction_args(API_DOCKERFILE, "ARG")[0] == "PYTHON_IMAGE=python:3.11-slim"
    runs = [args for key, args in final_stage(API_DOCKERFILE) if key == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs
    for run in installs:
        assert "torch" not in run, f"the API image installs torch: {run}"
    # The project's wheel with the api extra (and mlflow's, for the notifier's exports) and
    # nothing else: torch is the worker extra's.
    assert installed_extras(API_DOCKERFILE) == [{"api", "mlflow"}]
    assert any("pip check" in run for run in runs)
    # ...and the build fails if some dependency pulled torch in all the same.
    assert any("find_spec('torch') and" in run for run in runs)


def test_only_the_worker_extra_has_torch() -> None:
    for extra in ("api", "client", "mlflow"):
        assert "torch" not in requirement_names(requirements(extra)), extra
    assert "torch" not in requirement_names(project()["dependencies"])
    assert "torch" in requirement_names(requirements("worker"))


def test_worker_keeps_the_base_images_torch() -> None:
    runs = [args for key, args in final_stage(WORKER_DOCKERFILE) if key == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs
    for run in installs:
        assert not re.search(r"pip install[^&]*\btorch\b", run), run
    assert installed_extras(WORKER_DOCKERFILE) == [{"worker"}]
    # The installed torch, exactly, is a constraint of the install that could replace it.
    (install,) = [cmd for run in installs for cmd in run.split("&&") if "[worker]" in cmd]
    constraint = argument_after(shlex.split(install), "-c", "--constraint")
    (written,) = [run for run in runs if f"> {constraint}" in run]
    assert "'torch==' + m.version('torch')" in written


def test_worker_base_image_ships_the_pinned_torch() -> None:
    """The base image's tag and pyproject's torch pin must move together."""
    base = instruction_args(WORKER_DOCKERFILE, "ARG")[0]
    match = re.fullmatch(
        r"BASE_IMAGE=pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", base
    )
    assert match, base
    (pin,) = [d for d in requirements("worker") if re.match(r"torch\s*==", d)]
    assert pin.split("==", 1)[1].strip() == match.group(1)


def test_api_cmd_serves_the_fastapi_app() -> None:
    cmd = exec_form(instruction_args(API_DOCKERFILE, "CMD")[-1])
    assert cmd[:2] == ["uvicorn", API_APP]
    assert argument_after(cmd, "--host") == "0.0.0.0"
    assert argument_after(cmd, "--port") == "8000"
    assert_module_defines(API_APP)


def test_api_app_imports_with_only_the_api_extra() -> None:
    """What the API image lacks (what only the other extras pull in) is never imported."""
    assert_module_defines(API_APP)
    missing = lacking("api")
    assert "torch" in missing
    import_without(API_APP.partition(":")[0], missing)


def test_the_worker_imports_with_only_the_worker_extra() -> None:
    """What the worker image lacks (the API's libraries: FastAPI, uvicorn, matplotlib, ...) is
    never imported by the worker: its Celery app, tasks, and the training pipeline."""
    missing = lacking("worker")
    assert {"fastapi", "uvicorn", "matplotlib"} <= missing
    import_without(f"{WORKER_APP},worker.runtime.tasks,worker.runtime.child,"
                   "worker.compute.pipeline,worker.compute.data", missing, celery_app=True)


def test_worker_cmd_is_one_prefork_process_on_the_gpu_and_cpu_queues() -> None:
    cmd = exec_form(instruction_args(WORKER_DOCKERFILE, "CMD")[-1])
    assert cmd[0] == "celery"
    assert "worker" in cmd
    assert argument_after(cmd, "-A", "--app") == WORKER_APP
    assert argument_after(cmd, "-P", "--pool") == "prefork"
    assert argument_after(cmd, "-c", "--concurrency") == "1"
    assert set(argument_after(cmd, "-Q", "--queues").split(",")) == {"gpu", "cpu"}
    path = ROOT.joinpath(*WORKER_APP.split(".")).with_suffix(".py")
    assert path.is_file(), f"{path.relative_to(ROOT)} does not exist (yet)"


def test_celery_app_loads_without_torch() -> None:
    """`celery -A worker.runtime.app` (the worker's parent and every health check) needs no torch.

    The parent must not touch CUDA before it forks its child, and the health check runs every
    minute, so it should not pay for importing torch.
    """
    assert ROOT.joinpath(*WORKER_APP.split(".")).with_suffix(".py").is_file()
    import_without(WORKER_APP, {"torch"}, celery_app=True)


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=["api", "worker"])
def test_images_have_a_healthcheck_and_run_as_non_root(dockerfile: Path) -> None:
    stage = final_stage(dockerfile)
    checks = [args for key, args in stage if key == "HEALTHCHECK"]
    assert len(checks) == 1 and " CMD " in f" {checks[0]} "
    for option in ("--interval=", "--timeout=", "--retries="):
        assert option in checks[0]
    users = [args for key, args in stage if key == "USER"]
    assert users, f"{dockerfile.name} runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_healthchecks_match_compose(services: dict[str, dict[str, Any]]) -> None:
    (api_check,) = instruction_args(API_DOCKERFILE, "HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in api_check
    (worker_check,) = instruction_args(WORKER_DOCKERFILE, "HEALTHCHECK")
    assert f"-A {WORKER_APP} inspect ping" in worker_check
    assert '"celery@$HOSTNAME"' in worker_check
    assert "|| exit 1" in worker_check  # Docker reserves exit codes other than 0 and 1


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerignore_sends_only_the_build_inputs() -> None:
    patterns = dockerignore_patterns()
    needed = [
        "pyproject.toml",
        "README.md",  # the project's readme: the wheel does not build without it
        "trainability_client/__init__.py",
        "trainability_client/cli.py",
        "service/__init__.py",
        "service/cli.py",
        "service/main.py",
        "worker/__init__.py",
        "worker/runtime/app.py",
        "worker/compute/diagnostics/__init__.py",
    ]
    for path in needed:
        assert not dockerignore_excludes(patterns, path), f".dockerignore drops {path}"
    unwanted = [
        ".git/HEAD",
        ".venv/bin/python",
        ".env",
        "tests/test_compose.py",
        "docker-compose.yml",
        "service/__pycache__/main.cpython-311.pyc",
        "worker/compute/diagnostics/__pycache__/x.pyc",
        "trainability.egg-info/PKG-INFO",
    ]
    for path in unwanted:
        assert dockerignore_excludes(patterns, path), f".dockerignore sends {path}"


def test_the_build_context_holds_every_package_of_the_wheel() -> None:
    """Every module of the packages pyproject.toml puts in the wheel (and their data files)
    reaches the builder: a package left out builds a wheel whose `trainability` command fails
    with ModuleNotFoundError."""
    with PYPROJECT.open("rb") as fh:
        setuptools = tomllib.load(fh)["tool"]["setuptools"]
    patterns = dockerignore_patterns()
    roots = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    assert {"service", "worker", "trainability_client"} <= roots
    for root in roots:
        for path in sorted((ROOT / root).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                assert not dockerignore_excludes(patterns, relative), (
                    f".dockerignore drops {relative}"
                )
    # The console script and the server's commands live in those packages.
    targets = [project()["scripts"]["trainability"],
               *project()["entry-points"]["trainability.commands"].values()]
    for target in targets:
        assert target.partition(".")[0] in roots, target
        assert not dockerignore_excludes(patterns, target.partition(":")[0].replace(".", "/")
                                         + ".py"), target


# ---- the `trainability` command in each install ---------------------------------------------

#: The extras of each install (the images: docker/*.Dockerfile). `blocked_in` adds a client
#: without the server's code at all, as a separate client package would be.
INSTALLS = {
    "api-image": ("api", "mlflow"),
    "worker-image": ("worker",),
    "client-only": ("client",),
}
SERVER_PACKAGES = {"service", "worker"}
SERVER_COMMANDS = ("api", "worker", "run")


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the project's dist-info as its wheel carries it (console script and entry
    points from pyproject.toml), first on the child's path: the child then sees what an image
    built from this tree would, not what an older install on this machine registered."""
    meta = project()
    where = tmp_path_factory.mktemp("site")
    info = where / f"{meta['name']}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    groups = {"console_scripts": meta["scripts"], **meta["entry-points"]}
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) + "\n"
        for group, entries in groups.items()
    ))
    return where


def trainability(site: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `trainability` console script in a fresh interpreter that lacks ``blocked``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(sorted(blocked)), "--script",
         "trainability", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=site,  # first on sys.path: its dist-info is the one importlib.metadata reads
        env=env,
        timeout=120,
    )


def blocked_in(install: str) -> set[str]:
    if install == "client-without-server-code":
        return lacking("client") | SERVER_PACKAGES
    return lacking(*INSTALLS[install])


@pytest.mark.parametrize("install", [*INSTALLS, "client-without-server-code"])
def test_trainability_help_works_in_every_install(install: str, wheel_metadata: Path) -> None:
    """The images carry the CLI (both Dockerfiles also run `trainability --help` when built)."""
    blocked = blocked_in(install)
    assert "torch" in blocked or install == "worker-image"
    done = trainability(wheel_metadata, blocked, "--help")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for command in (*SERVER_COMMANDS, "submit", "status", "result", "cancel", "sweep", "ls"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), (command, done.stdout)
    server_here = install.endswith("-image")
    assert ("not installed: pip install" in done.stdout) is not server_here, done.stdout


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=["api", "worker"])
def test_image_builds_fail_without_a_working_cli(dockerfile: Path) -> None:
    runs = [args for key, args in final_stage(dockerfile) if key == "RUN"]
    assert any("trainability --help" in run for run in runs)


@pytest.mark.parametrize(
    ("install", "command", "extra"),
    [
        ("client-only", "run", "api,worker"),
        ("client-only", "api", "api"),
        ("client-only", "worker", "worker"),
        ("client-without-server-code", "run", "api,worker"),
        ("worker-image", "api", "api"),
        ("api-image", "worker", "worker"),
        ("api-image", "run", "api,worker"),
    ],
)
def test_a_command_whose_extra_is_missing_says_which_to_install(
    install: str, command: str, extra: str, wheel_metadata: Path
) -> None:
    """One line naming the extra, whatever the arguments (`--help` too), no traceback."""
    # A stand-in takes any arguments; in an image the command's own parser reads them.
    args = [command] if install.endswith("-image") else [command, "--port", "1", "--help"]
    done = trainability(wheel_metadata, blocked_in(install), *args)
    assert done.returncode in (1, 2), done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("trainability: ")
    assert f"pip install 'trainability[{extra}]'" in lines[0]


def test_client_commands_work_with_only_the_client(wheel_metadata: Path) -> None:
    """`pip install 'trainability[client]'`: the client's commands run (here: no service
    answers, so exit 4, the client's own message)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    done = trainability(wheel_metadata, blocked_in("client-only"), "status", "0" * 32,
                        "--url", f"http://127.0.0.1:{port}")
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("trainability: unavailable: "), done.stderr


# ---- the docker compose CLI, where installed ---------------------------------------------


def _compose_cli() -> list[str] | None:
    """``docker compose`` (v2) when the plugin is installed, else None."""
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    return ["docker", "compose"] if probe.returncode == 0 else None


@pytest.mark.parametrize("profile", [None, "cpu"])
def test_docker_compose_config_accepts_the_file(profile: str | None) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("the docker compose CLI plugin is not installed")
    profile_args = ["--profile", profile] if profile else []
    # `config` parses, interpolates and validates on the client; it needs no engine.
    done = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), *profile_args, "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
