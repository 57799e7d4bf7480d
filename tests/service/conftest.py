"""Fixtures for API tests: spec documents and a look into the broker queues and job keys."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis


def _small_spec(**sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "name": "small",
        "model": {"family": "mlp", "depth": 2, "width": 8, "activation": "relu"},
        "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
        "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
    }
    doc.update(copy.deepcopy(sections))
    return doc


@pytest.fixture
def spec_doc() -> Callable[..., dict[str, Any]]:
    """A valid, cheap spec; keyword arguments replace whole sections."""
    return _small_spec


def _minimal_result(outcome: str = "completed") -> dict[str, Any]:
    """The smallest result that matches ``worker.core.result.ExperimentResult`` (what a worker
    writes; the API answers with it as that model)."""
    return {
        "summary": {
            "outcome": outcome, "steps": 5, "planned_steps": 5, "epochs": 1.25,
            "batch_size": 16, "diverged_at_step": None, "task": "classification",
            "wall_time_s": 0.5, "train_time_s": 0.25, "diagnostics_time_s": 0.01,
            "samples_per_s": 320.0, "probe_batch_size": 256, "device": "cpu",
            "final_train_loss": 0.6, "final_val_loss": 0.7, "final_train_accuracy": 0.5,
            "final_val_accuracy": 0.5, "baseline_val_loss": 0.69, "analyses_skipped": [],
        },
        "curves": {"step": [0, 5], "train_loss": [0.7, 0.6], "eval_step": [5],
                   "train_eval_loss": [0.6], "val_loss": [0.7], "train_accuracy": [0.5],
                   "val_accuracy": [0.5]},
        "model": {"spec": {"family": "mlp", "depth": 2, "width": 8}, "layers": [],
                  "head": {"type": "linear", "out": 2, "bias": True}, "shapes": [],
                  "parameters": 138, "flops_per_example": 256},
        "environment": {"torch_version": "2.13.0", "python_version": "3.11.7", "device": "cpu",
                        "device_name": "x86_64", "seed": 0, "spec_hash": "0" * 64,
                        "cpu_threads": 1},
        "findings": [],
    }


@pytest.fixture
def result_doc() -> Callable[..., dict[str, Any]]:
    """The smallest valid result document (see ``_minimal_result``)."""
    return _minimal_result


class Broker:
    """What reached Redis: Celery messages in the queue lists, and our job keys."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def queued(self, queue: str) -> int:
        return int(self.client.llen(queue))

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """Decoded task messages: task name, positional and keyword args."""
        out = []
        for raw in self.client.lrange(queue, 0, -1):
            message = json.loads(raw)
            args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            out.append({"task": message["headers"]["task"], "args": args, "kwargs": kwargs,
                        "content_type": message["content-type"]})
        return out

    def job_keys(self) -> list[str]:
        return sorted(self.client.scan_iter("trainability:*"))

    def assert_untouched(self) -> None:
        assert self.queued("cpu") == 0 and self.queued("gpu") == 0
        assert self.job_keys() == []


@pytest.fixture
def broker(api_redis: redis.Redis) -> Broker:
    return Broker(api_redis)
