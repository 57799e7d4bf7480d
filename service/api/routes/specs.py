"""``/v1/specs``: check a design without running it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from service.api.deps import SettingsDep
from service.schemas.problems import problem_responses
from service.schemas.specs import SpecValidation
from service.usecases.dry_run import dry_run

router = APIRouter(prefix="/v1/specs", tags=["specs"])

# The body is read as plain JSON (so every error can be reported, not only the schema's);
# the document still shows it as the spec.
_SPEC_SCHEMA = {"$ref": "#/components/schemas/ExperimentSpec"}
_SPEC_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _SPEC_SCHEMA}}}
}


@router.post(
    "/validate", response_model=SpecValidation, responses=problem_responses(413, 422),
    openapi_extra=_SPEC_BODY,
)
def validate_spec(body: Annotated[Any, Body()], settings: SettingsDep) -> SpecValidation:
    """Dry run: validate a spec as a submission would, without storing or running anything.

    200: the normalized spec and layer list (family compiled, head included), every layer's
    shapes, the parameter count, estimated FLOPs and memory, total steps, and each budget.
    422: every error at once (schema errors by field path, the layer that does not fit its
    input, e.g. ``model.layers.3``, and every budget exceeded with its limit and value).
    """
    return SpecValidation.from_dry_run(dry_run(body, settings))
