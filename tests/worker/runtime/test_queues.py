"""Training queues and webhook deliveries never share a worker (``worker/runtime/queues.py``).

Found on main: a slow webhook receiver held a worker process, and a worker consuming
``cpu,gpu,webhooks`` could spend a training process on it. Now a worker asked for both kinds
refuses to start, before it consumes anything.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port
from worker.runtime.queues import MixedQueues, check_queues


@pytest.mark.parametrize("queues", [["cpu", "webhooks"], ["gpu", "cpu", "webhooks"]])
def test_hardening_6_training_and_webhook_queues_are_refused_together(queues):
    """Hardening item 6: one worker may not consume training queues and webhooks."""
    with pytest.raises(MixedQueues, match="not both"):
        check_queues(queues)


@pytest.mark.parametrize("queues", [["cpu", "gpu"], ["webhooks"], ["gpu"]])
def test_either_kind_alone_is_fine(queues):
    check_queues(queues)


def test_hardening_6_a_celery_worker_asked_for_both_refuses_to_start():
    """Hardening item 6: `celery worker -Q cpu,webhooks` exits before consuming a task."""
    # it refuses before it connects: the broker's port has nothing listening
    broker = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "REDIS_URL": broker, "PYTHONPATH": str(ROOT),
           "TRAINABILITY_WORKER_WARMUP": "false"}
    command = [sys.executable, "-m", "celery", "-A", "worker.runtime.app", "worker",
               "--pool=solo", "-Q", "cpu,webhooks", "-n", "mixed@%h", "-l", "info",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the worker started:\n{output.decode(errors='replace')[-2000:]}")
    text = output.decode(errors="replace")
    assert proc.returncode != 0, text
    assert "either training queues (cpu) or 'webhooks', not both" in text, text[-2000:]
