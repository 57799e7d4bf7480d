"""``WarmUpReports``: the main process waits until each process of its pool has reported."""

from __future__ import annotations

import os
import threading
import time

from worker.runtime.child import WarmUpReports


def test_waits_for_every_current_process_of_the_pool():
    reports = WarmUpReports()
    pool = [101, 102]
    reports.report(101)
    assert not reports.wait_for(lambda: pool, timeout_s=0.1)
    reports.report(102)
    assert reports.wait_for(lambda: pool, timeout_s=1)


def test_a_process_replaced_while_warming_up_is_waited_for_in_its_replacement():
    reports = WarmUpReports()
    pool = [201, 202]
    reports.report(201)
    pool[1] = 203  # 202 died warming up; its replacement reports later
    threading.Timer(0.2, reports.report, args=(203,)).start()
    began = time.monotonic()
    assert reports.wait_for(lambda: list(pool), timeout_s=5)
    assert time.monotonic() - began >= 0.15


def test_a_pool_still_starting_is_not_ready_and_a_stop_ends_the_wait():
    reports = WarmUpReports()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()
    assert not reports.wait_for(list, timeout_s=5, should_stop=stop.is_set)
    assert time.monotonic() - began < 2


def test_a_child_reports_through_the_inherited_pipe_and_never_blocks():
    reports = WarmUpReports()
    pid = os.fork()
    if pid == 0:  # the child: many more reports than the pipe holds, then out
        try:
            for _ in range(20_000):
                reports.report(os.getpid())
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reports.wait_for(lambda: [pid], timeout_s=1)
