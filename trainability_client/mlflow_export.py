"""A finished experiment as one MLflow run: what is logged, and the logging.

One mapping for both ways of exporting: the worker's export task (the notifier, with
``TRAINABILITY_MLFLOW_TRACKING_URI`` set: ``worker/runtime/mlflow_delivery.py``) and the
client's ``trainability export ID --mlflow URI`` (``trainability_client/export_cli.py``). Both
hand it the experiment as ``GET /v1/experiments/{id}`` returns it (plain JSON: ``id``,
``status``, ``name``, ``tags``, ``sweep_id``, ``spec``, ``result``, the timestamps), so this
module imports nothing of the server and nothing else of the client. mlflow (``mlflow-skinny``
is enough) is imported on the first export only.

The run:

- **params**: the normalized spec flattened to dotted paths (``model.depth``,
  ``optimizer.lr``, ``model.layers.0.kind``); a value longer than ``MAX_PARAM_CHARS`` (inline
  data, say) is cut, and the whole spec is the ``spec.json`` artifact.
- **metrics**, each point at its optimizer step: the curves (``train_loss`` at ``curves.step``;
  ``train_eval_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy`` at
  ``curves.eval_step``); every probe series of the diagnostic sections, keyed by its path in
  the result (``gradient_flow/end_to_end_ratio``, ``gradient_flow/gains/3`` for the 4th
  entry, ``linearity/nonlinearities/<layer>/slope_coverage``, ``trajectory/alignment/cosine``);
  the summary's numbers at the last step (``summary/final_val_loss``) and the model's size at
  step 0 (``model/parameters``). Non-finite values (``null`` in the result) are left out.
- **tags**: ``trainability.experiment_id``, ``trainability.status``, ``trainability.outcome``,
  ``trainability.verdict`` (the gradient-flow verdict at initialization) and
  ``trainability.verdict_end``, ``trainability.sweep_id``, ``trainability.tags``,
  ``trainability.headline`` (also the run's description), ``trainability.top_finding``,
  ``trainability.spec_hash``; the run is named after the experiment.
- **artifacts**: ``result.json`` (the whole result), ``findings.json``, ``spec.json``.
- **status**: ``FINISHED`` for a succeeded experiment (diverged runs included: the outcome tag
  says so), ``KILLED`` for one stopped early with partial results (cancelled, timed out).

Exporting is idempotent per tracking server and MLflow experiment: a run that carries the
experiment's id and the completion mark (``trainability.export = complete``, set last) is
returned as it is; an incomplete one (an export that died half-way) is deleted and logged
again.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DEFAULT_EXPERIMENT = "trainability"
#: MLflow 1.x servers refuse longer param values (newer ones take 6000): the safe limit.
MAX_PARAM_CHARS = 500
MAX_TAG_CHARS = 5000
#: Lists longer than this in a probe (e.g. a recurrent layer's gradient per time step) stay in
#: result.json only: each entry would be a metric of its own.
MAX_SERIES_WIDTH = 64
#: Distinct metric keys per run at most (the rest is in result.json; the run says how many).
MAX_METRIC_KEYS = 2000
#: log_batch limits of the MLflow REST API.
_BATCH_METRICS, _BATCH_PARAMS = 1000, 100

EXPERIMENT_ID_TAG = "trainability.experiment_id"
EXPORT_TAG, EXPORT_COMPLETE = "trainability.export", "complete"

#: Statuses of an experiment that has a result, as the MLflow run status.
RUN_STATUS = {"succeeded": "FINISHED", "cancelled": "KILLED", "timed_out": "KILLED",
              "failed": "FAILED"}

_CURVES = {"step": ("train_loss",),
           "eval_step": ("train_eval_loss", "val_loss", "train_accuracy", "val_accuracy")}
#: Top-level parts of a result that hold no probe series (or have their own mapping above).
_NOT_SERIES = frozenset({"summary", "curves", "model", "environment", "findings", "headline",
                         "seeds", "truncated"})
#: What names an entry of a list of per-layer records (else its index).
_LABELS = ("layer", "block", "branch")
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")


class MlflowNotInstalled(RuntimeError):
    """mlflow is not importable here (``pip install mlflow-skinny``)."""


class NothingToExport(ValueError):
    """The experiment has no result (it is not final, or it failed before training)."""


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int


@dataclass(frozen=True)
class ExportedRun:
    """Where the experiment is in MLflow."""

    run_id: str
    experiment_id: str  # MLflow's experiment (not the trainability job id)
    created: bool  # False: it had been exported before; that run is returned
    params: int = 0
    metrics: int = 0  # metric points logged
    dropped_metric_keys: int = 0  # series past MAX_METRIC_KEYS, left in result.json


# --- the mapping (pure) --------------------------------------------------------------------

def _scalar_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 1] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_params(spec: Mapping[str, Any]) -> dict[str, str]:
    """The spec flattened to dotted paths; lists of records by index, lists of plain values as
    one JSON value (cut at ``MAX_PARAM_CHARS``)."""
    params: dict[str, str] = {}

    def walk(path: str, value: Any) -> None:
        if isinstance(value, Mapping):
            if not value and path:
                params[path] = "{}"
            for key, item in value.items():
                walk(f"{path}.{key}" if path else str(key), item)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                walk(f"{path}.{i}", item)
        else:
            params[path] = _scalar_text(value)

    walk("", spec)
    return {_clean_key(k)[:250]: v for k, v in params.items()}


def _clean_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)


def _point(out: list[MetricPoint], key: str, value: Any, step: Any) -> None:
    if _is_number(value) and isinstance(step, int) and math.isfinite(value):
        out.append(MetricPoint(_clean_key(key), float(value), step))


def _numbers(values: Sequence[Any]) -> bool:
    return all(v is None or _is_number(v) for v in values)


def _probe(prefix: str, probe: Mapping[str, Any], step: int, out: list[MetricPoint]) -> None:
    """The numbers of one probe (at ``step``): scalars, per-layer lists, per-layer records."""
    for key, value in probe.items():
        if key == "step":
            continue
        if _is_number(value):
            _point(out, f"{prefix}/{key}", value, step)
        elif isinstance(value, list) and value and len(value) <= MAX_SERIES_WIDTH:
            if _numbers(value):
                for i, item in enumerate(value):
                    _point(out, f"{prefix}/{key}/{i}", item, step)
            elif all(isinstance(item, Mapping) for item in value):
                for i, item in enumerate(value):
                    label = next((str(item[k]) for k in _LABELS if isinstance(item.get(k), str)),
                                 str(i))
                    _probe(f"{prefix}/{key}/{label}", item, step, out)
        elif isinstance(value, Mapping):
            _probe(f"{prefix}/{key}", value, step, out)


def _is_probe_list(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(p, Mapping) and isinstance(p.get("step"), int) for p in value))


def _sections(prefix: str, node: Mapping[str, Any], out: list[MetricPoint]) -> None:
    """Probe series anywhere in a diagnostic section: lists of probes (records with a
    ``step``), and parallel lists beside a ``steps`` list."""
    steps = node.get("steps")
    if isinstance(steps, list) and steps and all(isinstance(s, int) for s in steps):
        for key, values in node.items():
            if key != "steps" and isinstance(values, list) and len(values) == len(steps):
                for step, value in zip(steps, values, strict=True):
                    _point(out, f"{prefix}/{key}", value, step)
    for key, value in node.items():
        if _is_probe_list(value):
            where = prefix if key == "probes" else f"{prefix}/{key}"
            for probe in value:
                _probe(where, probe, probe["step"], out)
        elif isinstance(value, Mapping):
            _sections(f"{prefix}/{key}", value, out)


def run_metrics(result: Mapping[str, Any]) -> list[MetricPoint]:
    """Every metric point of the result, each at its optimizer step."""
    out: list[MetricPoint] = []
    curves = result.get("curves") or {}
    for steps_key, names in _CURVES.items():
        steps = curves.get(steps_key) or []
        for name in names:
            for step, value in zip(steps, curves.get(name) or [], strict=False):
                _point(out, name, value, step)
    for name, value in result.items():
        if name not in _NOT_SERIES and isinstance(value, Mapping):
            _sections(name, value, out)
    summary = result.get("summary") or {}
    last = summary.get("steps") if isinstance(summary.get("steps"), int) else 0
    for key, value in summary.items():
        _point(out, f"summary/{key}", value, last)
    model = result.get("model") or {}
    for key in ("parameters", "flops_per_example"):
        _point(out, f"model/{key}", model.get(key), 0)
    return out


def _cut(text: str, limit: int = MAX_TAG_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _verdicts(result: Mapping[str, Any]) -> tuple[str | None, str | None]:
    flow = result.get("gradient_flow") or {}
    probes = [p for p in flow.get("probes") or [] if isinstance(p, Mapping)]
    if not probes:
        return None, None
    first, last = probes[0].get("verdict"), probes[-1].get("verdict")
    return (str(first) if first else None), (str(last) if last else None)


def _top_finding(findings: Sequence[Mapping[str, Any]]) -> str | None:
    rank = {"critical": 0, "warning": 1, "info": 2}
    ordered = sorted(findings, key=lambda f: rank.get(str(f.get("severity")), 3))
    if not ordered:
        return None
    return f"{ordered[0].get('code')}:{ordered[0].get('severity')}"


def run_tags(doc: Mapping[str, Any]) -> dict[str, str]:
    """The run's tags (see the module docstring); only those that have a value."""
    result = doc.get("result") or {}
    summary = result.get("summary") or {}
    verdict, verdict_end = _verdicts(result)
    tags: dict[str, Any] = {
        EXPERIMENT_ID_TAG: doc["id"],
        "trainability.status": doc.get("status"),
        "trainability.outcome": summary.get("outcome"),
        "trainability.verdict": verdict,
        "trainability.verdict_end": verdict_end,
        "trainability.sweep_id": doc.get("sweep_id"),
        "trainability.tags": ",".join(doc.get("tags") or []) or None,
        "trainability.headline": result.get("headline"),
        "trainability.top_finding": _top_finding(result.get("findings") or []),
        "trainability.spec_hash": (result.get("environment") or {}).get("spec_hash"),
        "mlflow.runName": doc.get("name") or doc["id"],
        "mlflow.note.content": result.get("headline"),
    }
    return {key: _cut(str(value)) for key, value in tags.items() if value not in (None, "")}


def run_artifacts(doc: Mapping[str, Any]) -> dict[str, Any]:
    """File name -> JSON document, logged under the run's artifacts."""
    result = doc.get("result") or {}
    return {"result.json": result, "findings.json": result.get("findings") or [],
            "spec.json": doc.get("spec") or {}}


def _millis(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, str) and value:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    return None


# --- logging -------------------------------------------------------------------------------

def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _client(tracking_uri: str) -> MlflowClient:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowNotInstalled(
            f"mlflow is not installed here ({exc}); pip install mlflow-skinny") from exc
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # created meanwhile by another export
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def find_run(client: MlflowClient, mlflow_experiment_id: str, experiment_id: str) -> list[Any]:
    """The runs (active) that carry the experiment's id."""
    if not re.fullmatch(r"[\w-]+", experiment_id):
        raise ValueError(f"not an experiment id: {experiment_id!r}")
    return list(client.search_runs(
        [mlflow_experiment_id], filter_string=f"tags.`{EXPERIMENT_ID_TAG}` = '{experiment_id}'",
        max_results=50,
    ))


def log_experiment(doc: Mapping[str, Any], tracking_uri: str, *,
                   experiment: str = DEFAULT_EXPERIMENT) -> ExportedRun:
    """Log the experiment (``GET /v1/experiments/{id}``'s JSON) as one run in ``experiment``
    on ``tracking_uri``; return where it is. Idempotent (see the module docstring).

    ``NothingToExport`` when it has no result, ``MlflowNotInstalled``; the tracking server's
    errors (``mlflow.exceptions.MlflowException``, ``OSError``) are left to the caller.
    """
    result = doc.get("result")
    if not isinstance(result, Mapping):
        raise NothingToExport(f"experiment {doc.get('id')} has no result "
                              f"(status {doc.get('status')})")
    client = _client(tracking_uri)
    from mlflow.entities import Metric, Param, RunTag

    mlflow_experiment = _experiment_id(client, experiment)
    for run in find_run(client, mlflow_experiment, str(doc["id"])):
        if run.data.tags.get(EXPORT_TAG) == EXPORT_COMPLETE:
            return ExportedRun(run.info.run_id, mlflow_experiment, created=False)
        client.delete_run(run.info.run_id)  # an export that died half-way

    tags = run_tags(doc)
    run = client.create_run(
        mlflow_experiment, start_time=_millis(doc.get("started_at") or doc.get("created_at")),
        tags=tags, run_name=tags["mlflow.runName"],
    )
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in run_params(doc.get("spec") or {}).items()]
    for batch in _chunks(params, _BATCH_PARAMS):
        client.log_batch(run_id, params=list(batch))

    points = run_metrics(result)
    keys = list(dict.fromkeys(p.key for p in points))
    kept = set(keys[:MAX_METRIC_KEYS])
    stamp = _millis(doc.get("finished_at")) or int(time.time() * 1000)
    metrics = [Metric(p.key, p.value, stamp, p.step) for p in points if p.key in kept]
    for batch in _chunks(metrics, _BATCH_METRICS):
        client.log_batch(run_id, metrics=list(batch))

    for name, content in run_artifacts(doc).items():
        client.log_dict(run_id, content, name)
    dropped = len(keys) - len(kept)
    client.set_terminated(run_id, status=RUN_STATUS.get(str(doc.get("status")), "FINISHED"),
                          end_time=_millis(doc.get("finished_at")))
    # Last: a run without this mark is an export that died half-way (deleted on the next try).
    final_tags = [RunTag(EXPORT_TAG, EXPORT_COMPLETE)]
    if dropped:
        final_tags.append(RunTag("trainability.metric_keys_dropped", str(dropped)))
    client.log_batch(run_id, tags=final_tags)
    return ExportedRun(run_id, mlflow_experiment, created=True, params=len(params),
                       metrics=len(metrics), dropped_metric_keys=dropped)
