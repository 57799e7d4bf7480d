"""``trainability worker``: the Celery command line it execs, and ``--gpu N``."""

from __future__ import annotations

from service.cli import build_parser, worker_command


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
