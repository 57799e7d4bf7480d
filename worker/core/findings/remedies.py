"""Fixes as data: each finding's remedies as spec edits, valid for the spec they are for.

An edit is ``{"path": "model.activation", "value": "relu"}`` on the submitted spec document
(dotted paths, list items by index: ``model.layers.3.name``), applied with the sweeps' path
setter. A fix is one conceptual change (ReLU + He init is one fix, touching two fields); every
fix offered has been validated like a submission (the edited document parses and its layers fit
the data), and a fix that would not is not offered.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker.core.design import JAGGED, SATURATING, DesignFacts
from worker.core.findings import transformer_rules
from worker.core.spec import ExperimentSpec, ShapeError, analyze
from worker.core.sweeps import PathError, set_path

Edit = dict[str, Any]
RELU_LIKE = frozenset({"relu", "leaky_relu", "gelu", "elu", "selu", "silu", "softplus"})


@dataclass(frozen=True)
class Fix:
    label: str
    edits: tuple[Edit, ...]

    def public(self) -> dict[str, Any]:
        return {"label": self.label, "edits": [dict(e) for e in self.edits]}


def apply_edits(doc: dict[str, Any], edits: list[Edit] | tuple[Edit, ...]) -> dict[str, Any]:
    """A copy of the spec document with the edits applied (``PathError`` on a bad path)."""
    out = copy.deepcopy(doc)
    for edit in edits:
        set_path(out, str(edit["path"]), edit["value"])
    return out


def is_valid(doc: dict[str, Any]) -> bool:
    try:
        analyze(ExperimentSpec.model_validate(doc))
    except (ValidationError, ShapeError, ValueError):
        return False
    return True


def _activation_paths(model: dict[str, Any], prefix: str, names: frozenset[str]) -> Iterator[str]:
    """Paths of the activation fields naming one of ``names`` (family or layers form)."""
    if "layers" not in model:
        if model.get("activation", "relu") in names:
            yield f"{prefix}.activation"
        return
    yield from _layer_activation_paths(model["layers"], f"{prefix}.layers", names)


def _layer_activation_paths(layers: list[dict[str, Any]], prefix: str,
                            names: frozenset[str]) -> Iterator[str]:
    for i, layer in enumerate(layers):
        if layer.get("type") == "activation" and layer.get("name") in names:
            yield f"{prefix}.{i}.name"
        if layer.get("type") == "residual":
            yield from _layer_activation_paths(layer.get("body", []), f"{prefix}.{i}.body", names)


def _relu_he(doc: dict[str, Any], names: frozenset[str]) -> Fix | None:
    paths = list(_activation_paths(doc["model"], "model", names))
    if not paths:
        return None
    edits: list[Edit] = [{"path": p, "value": "relu"} for p in paths]
    edits += [{"path": "init.scheme", "value": "kaiming_normal"},
              {"path": "init.gain", "value": None}]
    replaced = sorted(_activations_at(doc, paths))
    return Fix(f"replace {', '.join(replaced)} with relu + He init (kaiming_normal)",
               tuple(edits))


def _activations_at(doc: dict[str, Any], paths: list[str]) -> set[str]:
    """The activation names the ``paths`` point at in ``doc``."""
    names = set()
    for path in paths:
        node: Any = doc
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        names.add(str(node))
    return names


def _family(doc: dict[str, Any]) -> str | None:
    model = doc["model"]
    return None if "layers" in model else str(model.get("family", "mlp"))


def _lr(doc: dict[str, Any], factor: float, label: str) -> Fix:
    lr = float(doc.get("optimizer", {}).get("lr", 0.01))
    return Fix(label, ({"path": "optimizer.lr", "value": float(f"{lr * factor:.3g}")},))


def _gradient_flow_fixes(doc: dict[str, Any], d: DesignFacts, *, exploding: bool) -> list[Fix]:
    fixes: list[Fix | None] = []
    family = _family(doc)
    init = doc.get("init", {})
    if not exploding:
        fixes.append(_relu_he(doc, SATURATING))
    if family in ("rnn",):
        fixes.append(Fix("LSTM with forget-gate bias 1", (
            {"path": "model.family", "value": "lstm"},
            {"path": "init.lstm_forget_bias", "value": 1.0})))
    if init.get("scheme") == "normal" and init.get("gain") is not None:
        target = 1.0 if d.saturating or exploding and not d.activations & RELU_LIKE else 2**0.5
        if exploding or d.activations <= RELU_LIKE:
            fixes.append(Fix(f"init gain {target:.3g} (critical initialization)",
                             ({"path": "init.gain", "value": round(target, 4)},)))
    if family in ("mlp", "cnn") and not d.residual and d.depth > 2:
        fixes.append(Fix("residual connections", ({"path": "model.residual", "value": True},)))
    if family in ("mlp", "cnn", "resmlp") and not d.normalization:
        fixes.append(Fix("batch normalization",
                         ({"path": "model.normalization", "value": "batch"},)))
    return [fix for fix in fixes if fix is not None]


def _memory_fixes(doc: dict[str, Any], d: DesignFacts) -> list[Fix]:
    fixes = []
    if _family(doc) == "rnn":
        fixes.append(Fix("LSTM with forget-gate bias 1", (
            {"path": "model.family", "value": "lstm"},
            {"path": "init.lstm_forget_bias", "value": 1.0})))
        fixes.append(Fix("GRU", ({"path": "model.family", "value": "gru"},)))
    if "lstm" in d.recurrent and (d.lstm_forget_bias is None or d.lstm_forget_bias < 1):
        fixes.append(Fix("forget-gate bias 1",
                         ({"path": "init.lstm_forget_bias", "value": 1.0},)))
    return fixes


def _candidates(code: str, doc: dict[str, Any], d: DesignFacts) -> list[Fix | None]:
    if code in transformer_rules.CODES:
        return [Fix(label, edits) for label, edits in transformer_rules.candidates(code, doc)]
    if code == "vanishing_gradients_at_init":
        return list(_gradient_flow_fixes(doc, d, exploding=False))
    if code == "exploding_gradients_at_init":
        return list(_gradient_flow_fixes(doc, d, exploding=True))
    if code == "saturated_units":
        return [_relu_he(doc, SATURATING), *_gradient_flow_fixes(doc, d, exploding=True)[:1]]
    if code == "dead_units":
        return [Fix("leaky ReLU", tuple({"path": p, "value": "leaky_relu"} for p in
                                        _activation_paths(doc["model"], "model",
                                                          frozenset({"relu"})))),
                _lr(doc, 0.3, "learning rate x0.3")]
    if code in ("vanishing_gradients_through_time", "short_memory_after_training",
                "lstm_forget_gate_closed"):
        return list(_memory_fixes(doc, d))
    if code == "not_locally_linear":
        return [_relu_he(doc, JAGGED)]
    if code in ("diverged", "lr_above_stability_threshold", "thrashing_layers",
                "lr_above_stability_threshold_at_init", "step_too_large_at_init"):
        return [_lr(doc, 0.1, "learning rate x0.1")]
    if code in ("frozen_layers", "step_too_small_at_init"):
        return [_lr(doc, 10.0, "learning rate x10")]
    return []


def fixes_for(code: str, doc: dict[str, Any], d: DesignFacts) -> list[Fix]:
    """The valid one-change fixes for a finding on the spec document ``doc``."""
    out = []
    for fix in _candidates(code, doc, d):
        if fix is None or not fix.edits:
            continue
        try:
            edited = apply_edits(doc, fix.edits)
        except PathError:
            continue
        if edited != doc and is_valid(edited) and fix not in out:
            out.append(fix)
    return out
