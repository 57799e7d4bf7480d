"""``/v1/catalog``: what a spec may say, for forms and client-side validation."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.usecases.catalog import Catalog, build_catalog

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


@router.get("", response_model=Catalog)
def get_catalog(settings: SettingsDep) -> Catalog:
    """Families, layer types, activations (kind, parameters, max |phi'|), init schemes,
    datasets, optimizer and schedule options, diagnostic groups and presets, with the ranges
    the API accepts; this server's budgets; and the JSON Schema of the spec."""
    return build_catalog(settings)
