"""The allowlist matches the path a receiver will serve, not one it rewrites afterwards.

Reproduces the escape found on main: with the allowlist ``http://127.0.0.1:18090/ci/``, the
callbacks ``.../ci/../admin`` and ``.../ci/./../../admin3`` were accepted (dot segments are
removed after the prefix check) and delivered, signed, to ``/admin`` and ``/admin3``.
"""

from __future__ import annotations

import pytest

from worker.core.errors import CallbackRefused
from worker.jobs.webhooks import check_callback_url, match_allowlist

ALLOW = ["http://127.0.0.1:18090/ci/", "http://127.0.0.1:18091/ci"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:18090/ci/../admin",
    "http://127.0.0.1:18090/ci/./../../admin3",
    "http://127.0.0.1:18090/ci/.",
    "http://127.0.0.1:18090/ci/%2e%2e/admin",
    "http://127.0.0.1:18090/ci/%2E./admin",
    "http://127.0.0.1:18090/ci/a%2fb",
    "http://127.0.0.1:18090/ci/a%5cb",
    "http://127.0.0.1:18090/ci/a\\..\\b",
    "http://user:pw@127.0.0.1:18090/ci/x",
    "http://user@127.0.0.1:18090/ci/x",
    "http://127.0.0.1:18091/ci-admin",
    "http://127.0.0.1:18091/cix/y",
])
def test_paths_that_leave_the_allowed_prefix_are_refused(url: str) -> None:
    """Hardening item 7: dot segments, encoded dots/slashes, backslashes, userinfo."""
    with pytest.raises(CallbackRefused):
        check_callback_url(url, ALLOW)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:18090/ci/run",
    "http://127.0.0.1:18090/ci/a.b/c..d",  # dots inside a segment are plain names
    "http://127.0.0.1:18090/ci/x?y=../z",  # a query is not a path
    "http://127.0.0.1:18091/ci",
    "http://127.0.0.1:18091/ci/x",
    "http://127.0.0.1:18091/ci?job=1",
])
def test_paths_inside_the_prefix_are_allowed(url: str) -> None:
    assert match_allowlist(url, ALLOW).explicit is True
