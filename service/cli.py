"""``trainability``: run the API, a worker, or everything locally (``trainability run``).

``run`` is the one-command local setup: it uses ``REDIS_URL`` when that Redis answers, else
starts a private ``redis-server`` (data in ``.local/redis-<api port>/``, locked while in use, so
two instances side by side never share jobs), then starts the API, a worker with one training
process per core (``--workers N`` or ``WORKERS=N``; one torch thread each unless
``TRAINABILITY_TORCH_THREADS`` says otherwise) and a notifier (webhook deliveries, a thread
pool: never on the training processes, ``worker/runtime/queues.py``), and stops everything it
started on Ctrl-C or SIGTERM. Host and port come from ``--host``/``--port``, else
``TRAINABILITY_API_HOST`` / ``TRAINABILITY_API_PORT``. The reaper
(lost jobs, ``worker/runtime/reaper.py``) runs inside every worker, so ``run`` needs no Celery beat.

``worker --gpu N`` is one worker for GPU ``N`` of this host: ``CUDA_VISIBLE_DEVICES=N`` (the
process sees only that GPU, as device 0), the ``gpu`` queue, node name
``trainability-gpuN@host``. Start one per GPU.

The installed ``trainability`` command is ``trainability_client.cli:main``: the client's
commands, plus these three, which it finds through the ``trainability.commands`` entry points
(``add_api_command`` and its siblings, pyproject.toml). ``python -m service.cli`` is the same
command line without the entry points.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import redis

from trainability_client.cli import CLIENT_COMMANDS, add_commands, run_command
from worker.core.settings import DEFAULT_REDIS_URL, QUEUES, WEBHOOK_QUEUE

#: A local worker takes every job queue; webhook deliveries go to a worker of their own.
DEFAULT_QUEUES = ",".join(QUEUES)
#: Threads of a worker that only delivers webhooks (``--queues webhooks``).
NOTIFIER_THREADS = 8
LOCAL_DIR = Path(".local")


def local_redis_dir(api_port: int) -> Path:
    """One Redis data directory per API port: instances side by side keep their own jobs."""
    return LOCAL_DIR / f"redis-{api_port}"


def lock_directory(data_dir: Path) -> TextIO:
    """Hold an exclusive lock on ``data_dir`` for this process's life; exit if another holds it.

    The lock goes with the process (even on SIGKILL), so a crashed run never blocks the next.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "run.lock", "w")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SystemExit(f"trainability: {data_dir}/ is in use by another `trainability run`; "
                         "stop it or pick another --port") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def default_workers() -> int:
    """``WORKERS`` from the environment, else one training process per core."""
    raw = os.environ.get("WORKERS", "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise SystemExit(f"trainability: WORKERS must be a positive integer, got {raw!r}")
        return int(raw)
    return max(1, os.cpu_count() or 1)


def say(message: str) -> None:
    print(f"trainability: {message}", flush=True)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a finder that knows it is absent, or a missing parent package
        return False


def require(command: str, extra: str, *modules: str) -> None:
    """Exit with one line naming the extra to install when one of ``modules`` is missing
    (the API image has no torch; the worker image has no uvicorn)."""
    for module in modules:
        if not installed(module):
            raise SystemExit(f"trainability: `{command}` needs {module}, which is not installed "
                             f"here; install it with: pip install 'trainability[{extra}]'")


# --- api / worker ------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    require("api", "api", "uvicorn", "fastapi")
    with_defaults(args)
    import uvicorn

    # log_config=None: uvicorn's loggers go to the root handler that service.main sets up
    # (key=value or JSON lines, TRAINABILITY_LOG_FORMAT). access_log=False: the access line is
    # the API's own (service/live/metrics.py: route, status, duration, job id); uvicorn's
    # would be a second line for every request.
    uvicorn.run("service.main:app", host=args.host, port=args.port, log_level=args.log_level,
                log_config=None, access_log=False)
    return 0


def worker_argv(queues: str, concurrency: int, log_level: str, hostname: str) -> list[str]:
    """The Celery worker command line (prefork pool; see ``worker/runtime/app.py``); a worker
    of webhook deliveries only gets a thread pool (light I/O, no torch)."""
    pool = ["--pool=prefork", f"--concurrency={concurrency}"]
    if queues == WEBHOOK_QUEUE:
        pool = ["--pool=threads", f"--concurrency={max(concurrency, NOTIFIER_THREADS)}"]
    return [
        sys.executable, "-m", "celery", "-A", "worker.runtime.app", "worker", *pool,
        "-Q", queues, "-n", hostname, "-l", log_level, "--without-gossip", "--without-mingle",
    ]


def worker_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The worker's argv and the environment variables to set for it."""
    queues = args.queues or DEFAULT_QUEUES
    hostname = args.hostname or f"trainability-{os.getpid()}@%h"
    # each training process takes its share of the host's memory (worker/runtime/child.py)
    env: dict[str, str] = {"TRAINABILITY_WORKER_CHILDREN": str(args.concurrency)}
    if args.gpu is not None:
        # One process per GPU: it sees only its GPU (as cuda:0). Set before exec, so nothing
        # (not even the prefork child) can initialize another device.
        env["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
        queues = args.queues or "gpu"
        hostname = args.hostname or f"trainability-gpu{args.gpu}@%h"
    return worker_argv(queues, args.concurrency, args.log_level, hostname), env


def cmd_worker(args: argparse.Namespace) -> int:
    if (args.queues or "") != WEBHOOK_QUEUE:  # webhook deliveries need no torch (the notifier)
        require("worker", "worker", "torch")
    argv, env = worker_command(args)
    os.environ.update(env)
    os.execv(argv[0], argv)  # replace this process: signals reach Celery directly


# --- run: everything locally -------------------------------------------------------------


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server (AOF on, data in ``data_dir``); 6379 when free."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("trainability: redis-server not found; install it "
                         "(apt-get install redis-server) or set REDIS_URL to a running Redis")
    port = 6379 if port_is_free(6379) else free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
         "--appendonly", "yes", "--save", "", "--daemonize", "no",
         "--logfile", str((data_dir / "redis.log").resolve())],
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not redis_answers(url, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, "redis-server")
            raise SystemExit(f"trainability: redis-server did not start; see {data_dir}/redis.log")
        time.sleep(0.1)
    return proc, url


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def stop(proc: subprocess.Popen[bytes], name: str, grace: float = 10.0) -> None:
    """SIGTERM, then (Celery) SIGQUIT for a cold shutdown, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            say(f"{name} still running after {sig.name}")
        except ProcessLookupError:
            return


class StopRequested(Exception):
    pass


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def redis_for_run(port: int, started: list[tuple[str, subprocess.Popen[bytes]]],
                  ) -> tuple[str, TextIO | None]:
    """``REDIS_URL`` when it answers, else a private redis-server for API port ``port`` (added
    to ``started``): its URL, and the lock on its data directory (hold it while running)."""
    url = os.environ.get("REDIS_URL")
    if url and redis_answers(url):
        say(f"Redis   {url} (from REDIS_URL)")
        return url, None
    if url:
        say(f"REDIS_URL={url} does not answer; starting a local Redis instead")
    data_dir = local_redis_dir(port)
    lock = lock_directory(data_dir)
    proc, url = start_redis(data_dir)
    started.append(("redis-server", proc))
    say(f"Redis   {url} (started here, data in {data_dir}/)")
    return url, lock


def cmd_run(args: argparse.Namespace) -> int:
    require("run", "api,worker", "uvicorn", "fastapi", "torch")
    with_defaults(args)
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    if not port_is_free(args.port, args.host):
        # else /healthz would be answered by whatever holds the port, and we'd report success
        say(f"port {args.port} on {args.host} is in use; pick another with --port")
        return 2
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        url, lock = redis_for_run(args.port, started)  # noqa: F841 - lock held while we run
        env = {**os.environ, "REDIS_URL": url}
        env.setdefault("TRAINABILITY_TORCH_THREADS", "1")  # one thread per training process
        cli = [sys.executable, "-m", "service.cli"]
        api = subprocess.Popen([*cli, "api", "--host", args.host, "--port", str(args.port)],
                               env=env, start_new_session=True)
        started.append(("api", api))
        worker = subprocess.Popen(
            [*cli, "worker", "--queues", args.queues, "--concurrency", str(args.workers)],
            env=env, start_new_session=True,
        )
        started.append(("worker", worker))
        notifier = subprocess.Popen(
            [*cli, "worker", "--queues", WEBHOOK_QUEUE,
             "--hostname", f"trainability-notifier-{os.getpid()}@%h"],
            env=env, start_new_session=True,
        )
        started.append(("notifier", notifier))
        base = f"http://{args.host}:{args.port}"
        if not wait_http(f"{base}/healthz", api, timeout=60):
            say("the API did not come up; stopping")
            return 1
        say(f"API     {base}  (docs: {base}/docs)")
        say(f"worker  {args.workers} training process(es), queues {args.queues}; "
            f"{base}/readyz turns 200 once it is up")
        say(f"notifier webhook deliveries ({NOTIFIER_THREADS} threads, queue {WEBHOOK_QUEUE})")
        say("Ctrl-C stops everything started here")
        while True:
            for name, proc in started:
                if proc.poll() is not None:
                    say(f"{name} exited with status {proc.returncode}; stopping")
                    return 1
            time.sleep(0.5)
    except StopRequested as exc:
        say(f"{exc}: stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        for name, proc in reversed(started):  # API and worker before Redis
            stop(proc, name)


# --- entry point -------------------------------------------------------------------------


def add_api_command(sub: Any) -> None:
    """``trainability api`` (an entry point of ``trainability.commands``)."""
    api = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default=None, help="default: TRAINABILITY_API_HOST (127.0.0.1)")
    api.add_argument("--port", type=int, default=None,
                     help="default: TRAINABILITY_API_PORT (8000)")
    api.add_argument("--log-level", default="info")
    api.set_defaults(func=cmd_api)


def add_worker_command(sub: Any) -> None:
    """``trainability worker`` (an entry point of ``trainability.commands``)."""
    worker = sub.add_parser("worker", help="run a Celery worker (prefork)")
    worker.add_argument("--queues", default=None,
                        help=f"comma-separated queues to consume (default {DEFAULT_QUEUES}; "
                        "with --gpu: gpu)")
    worker.add_argument("--gpu", type=int, default=None, metavar="N",
                        help="serve GPU N of this host: CUDA_VISIBLE_DEVICES=N, queue gpu")
    worker.add_argument("--concurrency", type=int, default=1,
                        help="training processes (default 1; one per GPU on GPU hosts)")
    worker.add_argument("--hostname", default=None, help="Celery node name")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(func=cmd_worker)


def add_run_command(sub: Any) -> None:
    """``trainability run`` (an entry point of ``trainability.commands``)."""
    run = sub.add_parser("run", help="Redis (if needed) + API + a worker, for local use")
    run.add_argument("--host", default=None, help="default: TRAINABILITY_API_HOST (127.0.0.1)")
    run.add_argument("--port", type=int, default=None,
                     help="default: TRAINABILITY_API_PORT (8000)")
    run.add_argument("--queues", default=DEFAULT_QUEUES)
    run.add_argument("--workers", "--concurrency", dest="workers", type=int, default=None,
                     help="training processes (default: WORKERS, else one per core)")
    run.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the server's commands and the client's."""
    parser = argparse.ArgumentParser(
        prog="trainability",
        description="Run the trainability API, a worker, or everything; or use a running "
        "service (submit, status, result, cancel, sweep, report).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_api_command(sub)
    add_worker_command(sub)
    add_run_command(sub)
    # Client commands (submit, status, result, cancel, sweep, report): HTTP only, no server
    # imports (trainability_client/cli.py).
    add_commands(sub)
    parser.epilog = f"Redis comes from REDIS_URL (default {DEFAULT_REDIS_URL})."
    return parser


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill host, port and workers left unset from the settings and the environment."""
    if args.command in ("api", "run") and (args.host is None or args.port is None):
        from service.settings import get_service_settings

        settings = get_service_settings()
        args.host = settings.api_host if args.host is None else args.host
        args.port = settings.api_port if args.port is None else args.port
    if args.command == "run" and args.workers is None:
        args.workers = default_workers()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m service.cli``: every command, without looking up entry points."""
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_command(args.func, args)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
