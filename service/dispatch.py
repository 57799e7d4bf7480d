"""Sending a job to the workers: the port and its Celery implementation live in
``worker/dispatch.py`` (the reaper in the worker sends tasks too); re-exported here for the
API's modules."""

from __future__ import annotations

from worker.dispatch import CeleryDispatcher, JobDispatcher

__all__ = ["CeleryDispatcher", "JobDispatcher"]
