"""The worker's Celery app with a broker visibility timeout far below the job's run time.

Settings refuse this (``broker_visibility_timeout_s`` must exceed the hard time limit), so
the test worker patches the app's transport options here: Redis then hands the unacknowledged
message of a running job to another worker process after 2 s (celery#5935), checked every
second. ``celery -A tests.integration.short_visibility_app worker`` uses it.
"""

from __future__ import annotations

from worker.runtime.app import app

app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "visibility_timeout": 2,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ["app"]
