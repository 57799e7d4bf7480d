"""The OpenAPI document, made usable by clients generated in other languages.

- **Stable operation ids**: the route function's name (``create_experiment``, ``get_sweep``),
  or an explicit ``operation_id``; never FastAPI's path-derived default. See ``operation_id``.
- **Examples on every request body**: a body whose schema is the design spec gets the example
  designs (copies of ``examples/*.json``; a test keeps them equal); sweeps and re-runs get
  their own. Examples are added here, once, so routes stay free of documentation plumbing.
- **A description on every field**: models describe their fields; the few left without one
  (common names like ``kind`` or ``n_train``) get one from ``GLOSSARY``, else a sentence built
  from the field's title, so no property is undocumented in the published schema.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Final

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    """``generate_unique_id_function`` for the app: the route function's name."""
    return route.name


def _spec(name: str, model: dict[str, Any], init: dict[str, Any], **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "name": name,
        "model": model,
        "init": init,
        "data": {"kind": "spirals", "arms": 2, "turns": 1.5, "noise": 0.05, "n_train": 2048,
                 "n_val": 512},
        "optimizer": {"lr": 0.02, "momentum": 0.9},
        "training": {"steps": 1500, "batch_size": 64, "seed": 0},
    }
    doc.update(extra)
    return doc


#: Copies of files in examples/ (tests/service/test_openapi.py checks they are equal).
SPEC_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "depth8-sigmoid": _spec(
        "depth sweep: 8 x 32 MLP, sigmoid, N(0, 1/fan_in), on spirals",
        {"family": "mlp", "depth": 8, "width": 32, "activation": "sigmoid"},
        {"scheme": "normal", "gain": 1.0},
    ),
    "depth8-relu-residual": _spec(
        "depth sweep: 8 x 32 MLP, relu + identity skips, N(0, 0.25/fan_in), on spirals",
        {"family": "mlp", "depth": 8, "width": 32, "activation": "relu", "residual": True},
        {"scheme": "normal", "gain": 0.5},
    ),
    "adding50-lstm": {
        "spec_version": 1,
        "name": "LSTM (32 units, forget-gate bias 1) on the adding problem, T = 50",
        "model": {"family": "lstm", "depth": 1, "width": 32},
        "init": {"scheme": "default", "lstm_forget_bias": 1.0},
        "data": {"kind": "adding", "length": 50, "n_train": 4096, "n_val": 512},
        "optimizer": {"lr": 0.1, "momentum": 0.9, "clip_grad_norm": 1.0},
        "training": {"steps": 3000, "batch_size": 64, "seed": 0},
    },
}
_SUMMARIES: Final = {
    "depth8-sigmoid": "8 x 32 sigmoid MLP (gradients vanish toward the input)",
    "depth8-relu-residual": "8 x 32 ReLU MLP with identity skips",
    "adding50-lstm": "LSTM on the adding problem, T = 50",
}

#: The seed's comparison as one call: activation x depth, with ReLU + residual.
SWEEP_EXAMPLE: Final[dict[str, Any]] = {
    "name": "activation x depth",
    "base": {
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 2, "width": 32, "activation": "relu"},
        "init": {"scheme": "normal", "gain": 1.0},
        "data": {"kind": "spirals", "n_train": 512, "n_val": 128},
        "optimizer": {"lr": 0.05, "momentum": 0.9},
        "training": {"steps": 200, "batch_size": 64, "seed": 0},
        "diagnostics": {"preset": "standard"},
    },
    "axes": {"model.depth": [2, 8, 16]},
    "variants": {
        "sigmoid": {"model.activation": "sigmoid"},
        "tanh": {"model.activation": "tanh"},
        "relu": {"model.activation": "relu", "init.scheme": "kaiming_normal", "init.gain": None},
        "relu+residual": {"model.activation": "relu", "model.residual": True,
                          "init.gain": 0.5},
    },
    "mode": "grid",
}

BODY_EXAMPLES: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "create_sweep": {
        "activation-x-depth": {"summary": "activation x depth, with ReLU + residual",
                               "value": SWEEP_EXAMPLE},
        "depth-and-width-zip": {
            "summary": "zip: depth and width change together",
            "value": {"base": SPEC_EXAMPLES["depth8-sigmoid"], "mode": "zip",
                      "axes": {"model.depth": [2, 4, 8], "model.width": [64, 48, 32]}},
        },
    },
    "rerun_sweep": {
        "failed-and-cancelled": {"summary": "re-run failed and cancelled points",
                                 "value": {"statuses": ["failed", "cancelled"]}},
    },
}

GLOSSARY: Final[dict[str, str]] = {
    "kind": "Which generator or schedule this is (the tag of the union).",
    "type": "Which layer (or problem type) this is (the tag of the union).",
    "name": "Name.",
    "n_train": "Number of training examples.",
    "n_val": "Number of validation examples.",
    "step": "Optimizer updates taken before this probe (0: at initialization).",
    "steps": "Steps (optimizer updates).",
    "task": "classification or regression.",
    "noise": "Std of the Gaussian noise added to the inputs.",
    "seed": "Random seed (data, initialization, batches).",
    "device": "Device the job runs or ran on.",
    "description": "What this is, in words.",
    "status": "Status.",
    "id": "Identifier.",
    "links": "Related URLs.",
    "data": "The items of this page.",
    "bias": "Whether the layer has a bias.",
    "layer": "Name of the layer (as in the normalized layer list).",
    "probes": "One entry per probe step.",
    "fields": "Parameters, with their types and limits.",
    "parameters": "Parameters, with their types and limits.",
}


def _fill_descriptions(schema: dict[str, Any]) -> None:
    for model in schema.get("components", {}).get("schemas", {}).values():
        for prop, spec in (model.get("properties") or {}).items():
            if "description" not in spec:
                title = str(spec.get("title") or prop.replace("_", " "))
                spec["description"] = GLOSSARY.get(prop, f"{title[:1].upper()}{title[1:]}.")


def _spec_examples() -> dict[str, dict[str, Any]]:
    return {key: {"summary": _SUMMARIES[key], "value": copy.deepcopy(doc)}
            for key, doc in SPEC_EXAMPLES.items()}


def _add_examples(schema: dict[str, Any]) -> None:
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if content is None or "examples" in content:
                continue
            if op.get("operationId") in BODY_EXAMPLES:
                content["examples"] = copy.deepcopy(BODY_EXAMPLES[op["operationId"]])
            elif _refers_to_spec(content.get("schema") or {}):
                content["examples"] = _spec_examples()


def _refers_to_spec(schema: dict[str, Any]) -> bool:
    ref = schema.get("$ref", "")
    if isinstance(ref, str) and ref.endswith(("/ExperimentSpec", "/ExperimentCreate")):
        return True
    return any(_refers_to_spec(s) for s in schema.get("allOf", []) + schema.get("anyOf", []))


def document_for_clients(schema: dict[str, Any]) -> dict[str, Any]:
    """Add body examples and missing field descriptions to ``schema`` (in place; idempotent)."""
    _add_examples(schema)
    _fill_descriptions(schema)
    return schema


def client_ready(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap an ``app.openapi`` generator so that its document gets ``document_for_clients``."""

    def generate() -> dict[str, Any]:
        return document_for_clients(openapi())

    return generate
