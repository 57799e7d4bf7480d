"""A redis-server of a test's own: stop it, freeze it (SIGSTOP), restart it, without touching
the session's shared server (``tests/conftest.py``) or another test's databases."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.conftest import free_port, tail, wait_for


@dataclass
class OwnRedis:
    """redis-server on 127.0.0.1:``port`` with data in ``data`` (AOF when ``aof``)."""

    port: int
    data: Path
    aof: bool = False
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, decode_responses=True)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2,
                                    socket_timeout=0.5).ping())
        except redis.exceptions.RedisError:
            return False

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec"] if self.aof
                       else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data),
             "--save", "", *persistence, "--logfile", str(self.data / "redis.log")])
        wait_for(self.answers, 15, f"redis-server on port {self.port}",
                 on_fail=lambda: tail(self.data / "redis.log"))

    def stop(self) -> None:
        """SHUTDOWN (SIGTERM): with AOF on, every write so far is on disk."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL: a crash (the last second of writes may be lost with AOF everysec)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung Redis, a partition)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@contextmanager
def own_redis(data: Path, *, aof: bool = False) -> Iterator[OwnRedis]:
    """A started ``OwnRedis``; stopped (and thawed, if frozen) at the end."""
    server = OwnRedis(port=free_port(), data=data, aof=aof)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.thaw()
            server.kill()
