"""``trainability export ID --mlflow URI [--experiment NAME] [--json]``: log a finished
experiment as an MLflow run, from the client side (wired in by ``add_commands`` of
``trainability_client/cli.py``).

The experiment is read over the HTTP API and logged with the same mapping the server's own
export uses (``trainability_client/mlflow_export.py``: params from the spec, metrics per step,
tags, ``result.json``/``findings.json``/``spec.json``). ``URI`` is any MLflow tracking URI
(``http(s)://host:5000``, ``databricks``, ``sqlite:///mlflow.db``, ``file:``; default
``$MLFLOW_TRACKING_URI``). Needs mlflow (``pip install mlflow-skinny``), imported only here.
Exporting again finds the run logged before and changes nothing.

Exit codes are the CLI's: 0 exported (or found exported), 1 the tracking server refused or
failed, 2 the experiment has no result yet (or mlflow is not installed), 3 not found, 4 the
service is unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from trainability_client.cli import _client, err
from trainability_client.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from trainability_client.mlflow_export import (
    DEFAULT_EXPERIMENT,
    MlflowNotInstalled,
    NothingToExport,
    log_experiment,
)


def cmd_export(args: argparse.Namespace) -> int:
    if not args.mlflow:
        err("export: say where to: --mlflow URI (or set MLFLOW_TRACKING_URI)")
        return EXIT_USAGE
    with _client(args) as client:
        doc = client.get(args.id).raw
    try:
        run = log_experiment(doc, args.mlflow, experiment=args.experiment)
    except (NothingToExport, MlflowNotInstalled) as exc:
        err(f"export: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # the tracking server's (MlflowException, OSError): one line
        err(f"export: MLflow did not take the run: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"id": doc["id"], "run_id": run.run_id,
                          "experiment_id": run.experiment_id, "created": run.created,
                          "params": run.params, "metrics": run.metrics}))
    elif run.created:
        print(f"exported {doc['id']} as MLflow run {run.run_id} (experiment "
              f"{args.experiment!r}, id {run.experiment_id}): {run.params} params, "
              f"{run.metrics} metric points")
    else:
        print(f"{doc['id']} was exported before: MLflow run {run.run_id} (experiment "
              f"{args.experiment!r}, id {run.experiment_id})")
    return EXIT_OK


def add_export(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common],
                       help="log a finished experiment as an MLflow run")
    p.add_argument("id")
    p.add_argument("--mlflow", metavar="URI", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI (default $MLFLOW_TRACKING_URI)")
    p.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME")
                   or DEFAULT_EXPERIMENT,
                   help="MLflow experiment (default $MLFLOW_EXPERIMENT_NAME or "
                   f"{DEFAULT_EXPERIMENT!r}; created when missing)")
    p.add_argument("--json", action="store_true", help="print the run as one JSON object")
    p.set_defaults(func=cmd_export)
