"""Which queues one worker may consume: the training queues, or webhook deliveries, not both.

A training process runs one job at a time (prefork, concurrency = the training processes);
a webhook delivery is slow I/O that can last up to ``webhook_deadline_s`` per attempt. On one
process pool, a slow receiver would hold a training process while jobs wait. So a worker
that is asked for ``cpu``/``gpu`` *and* ``webhooks`` refuses to start; deliveries go to a
worker of their own (``trainability worker --queues webhooks``: a thread pool; ``trainability
run`` and docker compose start one, the ``notifier``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery.signals import celeryd_after_setup

from worker.core.settings import QUEUES, WEBHOOK_QUEUE


class MixedQueues(ValueError):
    """A worker was asked to consume training queues and webhook deliveries."""


def check_queues(names: Iterable[str]) -> None:
    """``MixedQueues`` when ``names`` holds a training queue and the webhook queue."""
    chosen = set(names)
    training = sorted(chosen & set(QUEUES))
    if training and WEBHOOK_QUEUE in chosen:
        raise MixedQueues(
            f"a worker consumes either training queues ({', '.join(training)}) or "
            f"{WEBHOOK_QUEUE!r}, not both: a slow webhook receiver would hold a training "
            f"process. Start deliveries apart: `trainability worker --queues {WEBHOOK_QUEUE}`"
        )


@celeryd_after_setup.connect
def _refuse_mixed_queues(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """After ``-Q`` is applied: stop the worker before it consumes anything."""
    if instance is None:
        return
    queues = instance.app.amqp.queues
    selected = queues.consume_from if queues.consume_from else queues
    try:
        check_queues(selected)
    except MixedQueues as exc:
        # Celery logs and swallows exceptions of signal handlers; SystemExit ends the start.
        raise SystemExit(f"trainability: {exc}") from exc
