"""The catalog behind ``GET /v1/catalog``: what a spec may say, with ranges, for forms and
client-side validation.

Ranges, defaults and enums are read from the spec models' JSON Schema (the same models that
validate submissions), so they cannot drift from what the API accepts. What the schema does not
hold is stated here once: which input each layer takes (checked against the shape analysis by
a test), activation kinds and slopes (``worker.core.activation_table``, checked against the
torch implementation) and one-line descriptions of init schemes; diagnostic groups and presets
come from their table (``worker.core.diagnostic_groups``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from service.settings import ServiceSettings
from worker.core.activation_table import ACTIVATIONS, ActivationKind, max_abs_derivative
from worker.core.diagnostic_groups import GROUPS
from worker.core.findings import RULES, load_calibration
from worker.core.spec import (
    PRESETS,
    ActivationLayer,
    AnyData,
    DiagnosticGroup,
    DiagnosticsSpec,
    ExperimentSpec,
    FamilyModel,
    InitScheme,
    InitSpec,
    InlineData,
    Layer,
    OptimizerSpec,
    ScheduleSpec,
    StrictModel,
    TrainingSpec,
    TransformerModel,
    data_shape,
)
from worker.core.spec.shapes import FAMILY_INPUT, InputKind

INIT_SCHEMES: dict[InitScheme, str] = {
    "default": "PyTorch's own initialization of each layer (gain not used).",
    "xavier_uniform": "Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).",
    "xavier_normal": "Glorot normal: N(0, gain^2 * 2 / (fan_in + fan_out)).",
    "kaiming_uniform": "He uniform with the activation's gain (or the gain given).",
    "kaiming_normal": "He normal: N(0, gain^2 / fan_in), gain from the activation by default.",
    "orthogonal": "Orthogonal matrices scaled by gain (per gate for recurrent weights).",
    "normal": "N(0, gain^2 / fan_in): the mean-field convention, comparable with theory.",
}

#: One line per diagnostic group, from the group table (``worker.core.diagnostic_groups``).
DIAGNOSTIC_GROUPS: dict[DiagnosticGroup, str] = {g.name: g.description for g in GROUPS}

#: The inputs each layer type takes (shapes exclude the batch); a test checks this against
#: the shape analysis for every type.
LAYER_INPUTS: dict[str, tuple[InputKind, ...]] = {
    "linear": ("vector", "sequence"),
    "conv2d": ("image",),
    "max_pool": ("image",),
    "avg_pool": ("image",),
    "flatten": ("vector", "sequence", "image"),
    "activation": ("vector", "sequence", "image"),
    "batch_norm": ("vector", "image"),
    "layer_norm": ("vector", "sequence", "image"),
    "dropout": ("vector", "sequence", "image"),
    "maxout": ("vector", "sequence"),
    "rnn": ("sequence",),
    "gru": ("sequence",),
    "lstm": ("sequence",),
    "residual": ("vector", "sequence", "image"),
    "embedding": ("sequence",),
    "positional_encoding": ("sequence",),
    "self_attention": ("sequence",),
    "rms_norm": ("vector", "sequence"),
    "gated_mlp": ("vector", "sequence"),
    "sequence_pool": ("sequence",),
    "transformer_block": ("sequence",),
}


class Parameter(BaseModel):
    """One field of a spec object, with its type and the range the API accepts."""

    name: str
    type: str = Field(description="JSON type: integer, number, boolean, string, array, object.")
    required: bool
    default: Any = None
    nullable: bool = False
    enum: list[Any] | None = Field(None, description="The allowed values, when listed.")
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: int | float | None = None
    exclusive_maximum: int | float | None = None
    min_items: int | None = None
    max_items: int | None = None
    keys: list[str] | None = Field(None, description="Allowed keys of an object field.")
    ref: str | None = Field(None, description="Schema name of an object or item type.")
    description: str | None = None


class FamilyEntry(BaseModel):
    name: str
    input: InputKind = Field(description="The data the family takes.")
    description: str
    fields: list[Parameter] | None = Field(
        None, description="This family's own fields (transformer); null: the shared ones."
    )


class Families(BaseModel):
    names: list[str]
    fields: list[Parameter] = Field(description="Fields of a family model.")
    items: list[FamilyEntry]


class LayerTypeEntry(BaseModel):
    type: str
    description: str
    inputs: list[InputKind]
    parameters: list[Parameter]


class ActivationEntry(BaseModel):
    name: str
    kind: ActivationKind
    formula: str
    parameters: list[Parameter] = Field(description="Fields of the activation layer it reads.")
    max_abs_derivative: float = Field(description="max |phi'| at the default parameters.")
    max_abs_derivative_formula: str


class NamedEntry(BaseModel):
    name: str
    description: str


class InitCatalog(BaseModel):
    schemes: list[NamedEntry]
    fields: list[Parameter]


class DatasetEntry(BaseModel):
    kind: str
    description: str
    parameters: list[Parameter]
    default_shape: dict[str, Any] | None = Field(
        description="What the defaults imply: input shape, output size, task, split sizes, "
        "sequence length (null for inline data)."
    )


class OptimizerCatalog(BaseModel):
    fields: list[Parameter]
    schedule_fields: list[Parameter]


class DiagnosticsCatalog(BaseModel):
    groups: list[NamedEntry]
    presets: dict[str, list[str]] = Field(description="The groups each preset turns on.")
    fields: list[Parameter]


class Budgets(BaseModel):
    """This server's limits: a spec over one is a 422 naming it; a larger body is a 413."""

    max_parameters: int
    max_steps_x_batch: int
    max_sequence_length: int
    max_inline_bytes: int
    max_request_bytes: int
    max_data_bytes: int = 0
    max_memory_bytes: int = 0


class FindingRuleEntry(BaseModel):
    """A findings rule: what it looks at, its calibrated threshold and measured precision."""

    code: str
    severity: Literal["info", "warning", "critical"]
    at_init: bool = Field(description="Judged on the step-0 probe alone (preflight).")
    feature: str = Field(description="The number the rule compares.")
    fires_when: Literal["below", "above"]
    threshold: float
    calibrated: bool
    precision: dict[str, float | None] = Field(description="Per benchmark split.")
    recall: dict[str, float | None]


class Catalog(BaseModel):
    spec_version: Literal[1] = 1
    families: Families
    layer_types: list[LayerTypeEntry]
    activations: list[ActivationEntry]
    init: InitCatalog
    datasets: list[DatasetEntry]
    optimizer: OptimizerCatalog
    training: list[Parameter]
    diagnostics: DiagnosticsCatalog
    findings: list[FindingRuleEntry] = Field(
        description="Every findings rule, calibrated on the labeled benchmark (bench/findings)."
    )
    budgets: Budgets
    spec_schema: dict[str, Any] = Field(description="JSON Schema of the spec (ExperimentSpec).")


# --- from JSON Schema to parameters -----------------------------------------------------

_BOUNDS = {
    "minimum": "minimum", "maximum": "maximum", "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum", "minItems": "min_items", "maxItems": "max_items",
    # pydantic writes a list's min_length as minLength on a union of list types
    "minLength": "min_items", "maxLength": "max_items",
}


def parameters(model: type[StrictModel], *, exclude: tuple[str, ...] = ()) -> list[Parameter]:
    """The fields of ``model`` as parameters, read from its JSON Schema."""
    schema = _object_schema(model)
    required = set(schema.get("required", []))
    return [
        _parameter(name, prop, name in required)
        for name, prop in schema["properties"].items()
        if name not in exclude
    ]


def _object_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's own object schema (a recursive model's schema is a ``$ref`` into $defs)."""
    schema = model.model_json_schema()
    if "$ref" in schema:
        definition: dict[str, Any] = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
        return definition
    return schema


def _parameter(name: str, prop: dict[str, Any], required: bool) -> Parameter:
    variants = prop.get("anyOf", [prop])
    real = [v for v in variants if v.get("type") != "null"]
    main = real[0] if len(real) == 1 else {}
    out: dict[str, Any] = {
        "name": name, "required": required, "default": prop.get("default"),
        "nullable": len(real) < len(variants), "description": prop.get("description"),
    }
    ref = main.get("$ref") or main.get("items", {}).get("$ref")
    if ref:
        out["ref"] = ref.rsplit("/", 1)[-1]
    types = {v.get("type", "object") for v in real}
    out["type"] = types.pop() if len(types) == 1 else "/".join(sorted(types))
    if "enum" in main:
        out["enum"] = main["enum"]
    elif "const" in main:
        out["enum"] = [main["const"]]
    if "propertyNames" in main:
        out["keys"] = main["propertyNames"].get("enum")
    for source in (prop, main):
        for key, field in _BOUNDS.items():
            if key in source:
                out[field] = source[key]
    return Parameter(**out)


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _family_descriptions() -> dict[str, str]:
    """``- ``rnn`` / ``gru``: text`` bullets of FamilyModel's docstring, by family name."""
    out: dict[str, str] = {}
    doc = FamilyModel.__doc__ or ""
    for bullet in re.split(r"\n\s*- ", doc)[1:]:
        names, _, text = bullet.partition(":")
        for name in re.findall(r"``(\w+)``", names):
            out[name] = " ".join(text.split())
    return out


def _layer_classes() -> list[type[StrictModel]]:
    union = get_args(Layer)[0]
    return list(get_args(union))


def _type_values(model: type[StrictModel]) -> list[str]:
    prop = _object_schema(model)["properties"]["type"]
    return list(prop.get("enum") or [prop["const"]])


# --- the catalog ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _static_catalog() -> Catalog:
    """Everything but the budgets (the same for every server); budgets are placeholders."""
    family_names = list(get_args(FamilyModel.model_fields["family"].annotation))
    described = _family_descriptions()
    families = Families(
        names=[*family_names, "transformer"],
        fields=parameters(FamilyModel),
        items=[*(FamilyEntry(name=f, input=FAMILY_INPUT[f], description=described.get(f, ""))
                 for f in family_names),
               FamilyEntry(name="transformer", input=FAMILY_INPUT["transformer"],
                           description=_doc(TransformerModel),
                           fields=parameters(TransformerModel))],
    )
    layer_types = [
        LayerTypeEntry(type=t, description=_doc(cls), inputs=list(LAYER_INPUTS[t]),
                       parameters=parameters(cls, exclude=("type",)))
        for cls in _layer_classes()
        for t in _type_values(cls)
    ]
    activation_fields = {p.name: p for p in parameters(ActivationLayer)}
    activations = [
        ActivationEntry(
            name=info.name, kind=info.kind, formula=info.formula,
            parameters=[activation_fields[p] for p in info.parameters],
            max_abs_derivative=max_abs_derivative(ActivationLayer(name=info.name)),
            max_abs_derivative_formula=info.max_abs_derivative_formula,
        )
        for info in ACTIVATIONS.values()
    ]
    datasets = [
        DatasetEntry(
            kind=_type_values_of_kind(cls), description=_doc(cls),
            parameters=parameters(cls, exclude=("kind",)),
            default_shape=None if cls is InlineData else data_shape(cls()).model_dump(),
        )
        for cls in get_args(AnyData)
    ]
    return Catalog(
        families=families,
        layer_types=layer_types,
        activations=activations,
        init=InitCatalog(
            schemes=[NamedEntry(name=k, description=v) for k, v in INIT_SCHEMES.items()],
            fields=parameters(InitSpec),
        ),
        datasets=datasets,
        optimizer=OptimizerCatalog(
            fields=parameters(OptimizerSpec), schedule_fields=parameters(ScheduleSpec)
        ),
        training=parameters(TrainingSpec),
        diagnostics=DiagnosticsCatalog(
            groups=[NamedEntry(name=k, description=v) for k, v in DIAGNOSTIC_GROUPS.items()],
            presets={name: sorted(groups) for name, groups in PRESETS.items()},
            fields=parameters(DiagnosticsSpec),
        ),
        findings=_finding_rules(),
        budgets=Budgets(max_parameters=1, max_steps_x_batch=1, max_sequence_length=1,
                        max_inline_bytes=1, max_request_bytes=1),
        spec_schema=ExperimentSpec.model_json_schema(),
    )


def _finding_rules() -> list[FindingRuleEntry]:
    calibration = load_calibration()
    return [
        FindingRuleEntry(
            code=rule.code, severity=calibration[rule.code].severity, at_init=rule.at_init,
            feature=rule.what, fires_when=rule.direction,
            threshold=calibration[rule.code].threshold,
            calibrated=calibration[rule.code].calibrated,
            precision=calibration[rule.code].precision, recall=calibration[rule.code].recall,
        )
        for rule in RULES
    ]


def _type_values_of_kind(model: type[BaseModel]) -> str:
    prop = _object_schema(model)["properties"]["kind"]
    return str(prop.get("const") or prop["enum"][0])


def build_catalog(settings: ServiceSettings) -> Catalog:
    """The catalog with this server's budgets."""
    budgets = Budgets(
        max_parameters=settings.max_parameters,
        max_steps_x_batch=settings.max_steps_x_batch,
        max_sequence_length=settings.max_sequence_length,
        max_inline_bytes=settings.max_inline_bytes,
        max_request_bytes=settings.max_request_bytes,
        max_data_bytes=settings.max_data_bytes,
        max_memory_bytes=settings.max_memory_bytes,
    )
    return _static_catalog().model_copy(update={"budgets": budgets})
