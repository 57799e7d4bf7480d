"""The dry run behind ``POST /v1/specs/validate``: every reason a spec is refused, at once.

Order of the checks, each reported in full:

1. the schema (pydantic): every error in the document;
2. the layers against the data (:func:`worker.core.spec.analyze`): the layer that does not fit,
   by its path (``model.layers.3``);
3. every server budget the spec exceeds.

Checks 2 and 3 need a valid ``model``, ``data`` and ``training``; errors in the other sections
(``name``, ``init``, ``optimizer``, ``diagnostics``, ``spec_version``, unknown top-level
fields) do not stop them: those sections are set aside (defaults) for checks 2 and 3 only.
The budgets on steps, sequence length and inline data do not need the layers to fit, so they
are reported alongside a shape error. Nothing is stored or enqueued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.api.errors import InvalidSpec, invalid_request_entry, validation_error_entries
from worker.core.budgets import (
    BudgetCheck,
    Cost,
    budget_checks,
    cost_of,
    design_analysis,
    input_checks,
    spec_problems,
)
from worker.core.errors import InvalidDesign, InvalidRequest
from worker.core.settings import Settings
from worker.core.spec import Analysis, ExperimentSpec

#: Sections that neither the shape analysis nor a budget reads.
INDEPENDENT_SECTIONS = frozenset({"spec_version", "name", "init", "optimizer", "diagnostics"})


@dataclass(frozen=True)
class DryRun:
    """A spec that passed every check, with what it compiles to and costs."""

    spec: ExperimentSpec
    analysis: Analysis
    cost: Cost
    budgets: list[BudgetCheck]


def dry_run(body: Any, settings: Settings) -> DryRun:
    """Validate ``body`` as a spec; :class:`InvalidSpec` listing every error otherwise."""
    schema_errors: list[Any] = []
    spec: ExperimentSpec | None
    try:
        spec = ExperimentSpec.model_validate(body)
    except ValidationError as exc:
        schema_errors = exc.errors(include_url=False, include_context=False, include_input=False)
        spec = _set_aside_independent(body, schema_errors)
    entries = validation_error_entries(
        [{**err, "loc": ("body", *err["loc"])} for err in schema_errors], body
    )
    if spec is None:
        raise InvalidSpec(entries)

    analysis: Analysis | None = None
    try:
        analysis = design_analysis(spec)
    except InvalidDesign as exc:
        entries.append(invalid_request_entry(exc))
    cost = cost_of(spec, analysis) if analysis is not None else None
    checks = budget_checks(spec, settings, cost) if cost is not None else input_checks(
        spec, settings
    )
    entries += [invalid_request_entry(check.error()) for check in checks if not check.within]
    if entries:
        raise InvalidSpec(entries)
    assert analysis is not None and cost is not None
    return DryRun(spec=spec, analysis=analysis, cost=cost, budgets=checks)


def design_problems(body: Any, settings: Settings) -> list[InvalidRequest]:
    """Checks 2 and 3 alone: the layer that does not fit and every budget exceeded, with the
    independent sections set aside (empty when schema errors leave nothing to analyze)."""
    spec: ExperimentSpec | None
    try:
        spec = ExperimentSpec.model_validate(body)
    except ValidationError as exc:
        spec = _set_aside_independent(body, exc.errors(include_url=False))
    return [] if spec is None else spec_problems(spec, settings)


def _set_aside_independent(body: Any, errors: list[Any]) -> ExperimentSpec | None:
    """The spec with its independent sections at their defaults, when every schema error is
    in one of them (or is an unknown top-level field); else None."""
    if not isinstance(body, dict) or any(not err["loc"] for err in errors):
        return None
    sections = {err["loc"][0] for err in errors}
    unknown = {s for s in sections if s not in ExperimentSpec.model_fields}
    if not sections <= INDEPENDENT_SECTIONS | unknown:
        return None
    kept = {key: value for key, value in body.items() if key not in sections}
    try:
        return ExperimentSpec.model_validate({**kept, "spec_version": 1})
    except ValidationError:
        return None
