"""One periodic daemon thread: the worker's liveness beat, the reaper and an attempt's lease.

Each of them calls a function every ``interval_s`` until stopped; a failing call is logged and
the thread goes on, because these threads exist to outlive any one bad pass (a Redis blip must
not silently end a lease or the reaper). ``first_call_now`` runs the first call at start instead
of after one interval (the liveness beat registers a worker at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from worker.core.errors import TrainabilityError

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``tick`` every ``interval_s`` seconds on a daemon thread; ``tick`` returning
    ``False`` ends the thread (an attempt that lost its job stops renewing)."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], bool | None], *,
                 first_call_now: bool = False) -> None:
        self.interval_s = interval_s
        self._tick = tick
        self._first_call_now = first_call_now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, join_grace_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + join_grace_s)

    def _run(self) -> None:
        if self._first_call_now and self._call() is False:
            return
        while not self._stop.wait(self.interval_s):
            if self._call() is False:
                return

    def _call(self) -> bool | None:
        try:
            return self._tick()
        except TrainabilityError as exc:
            log.warning("%s: pass skipped: %s", self._thread.name, exc)
        except Exception:  # the thread must outlive any one bad pass
            log.exception("%s: pass failed", self._thread.name)
        return None
