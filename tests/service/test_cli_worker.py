"""``trainability worker``: the Celery command line it execs, and ``--gpu N``; the server's
commands as the entry points that the installed ``trainability`` command loads."""

from __future__ import annotations

import argparse
import importlib
import tomllib
from pathlib import Path

import pytest

from service.cli import build_parser, installed, require, worker_command

ROOT = Path(__file__).resolve().parents[2]


def command(*argv: str):
    return worker_command(build_parser().parse_args(["worker", *argv]))


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_local_worker_takes_every_training_queue_and_no_webhooks():
    argv, env = command()
    assert after(argv, "-Q") == "cpu,gpu"
    assert "--pool=prefork" in argv and "--concurrency=1" in argv
    assert env == {"TRAINABILITY_WORKER_CHILDREN": "1"}


def test_a_webhooks_worker_is_a_thread_pool():
    argv, _ = command("--queues", "webhooks")
    assert after(argv, "-Q") == "webhooks"
    assert "--pool=threads" in argv and "--pool=prefork" not in argv
    assert "--concurrency=8" in argv


def test_gpu_n_pins_the_device_and_takes_the_gpu_queue():
    argv, env = command("--gpu", "3")
    assert env == {"CUDA_VISIBLE_DEVICES": "3", "TRAINABILITY_WORKER_CHILDREN": "1"}
    assert after(argv, "-Q") == "gpu"
    assert after(argv, "-n") == "trainability-gpu3@%h"
    argv, env = command("--gpu", "1", "--queues", "gpu,cpu", "--hostname", "g1@box")
    assert (after(argv, "-Q"), after(argv, "-n"), env) == ("gpu,cpu", "g1@box",
                                                          {"CUDA_VISIBLE_DEVICES": "1",
                                                           "TRAINABILITY_WORKER_CHILDREN": "1"})


def entry_points_in_pyproject() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        found: dict[str, str] = tomllib.load(fh)["project"]["entry-points"]["trainability.commands"]
    return found


def test_each_entry_point_adds_the_command_it_is_named_after():
    entries = entry_points_in_pyproject()
    assert set(entries) == {"api", "worker", "run"}
    whole = build_parser()
    for name, target in entries.items():
        module, _, attr = target.partition(":")
        assert module == "service.cli", target
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command", required=True)
        getattr(importlib.import_module(module), attr)(sub)
        assert set(sub.choices) == {name}
        assert parser.parse_args([name]).func is whole.parse_args([name]).func


def test_a_missing_module_is_named_with_its_extra():
    assert installed("json") and not installed("no_such_module") and not installed("no_such.sub")
    require("api", "api", "json")  # present: nothing happens
    with pytest.raises(SystemExit, match=r"`worker` needs no_such_module, .* "
                       r"pip install 'trainability\[worker\]'"):
        require("worker", "worker", "json", "no_such_module")
