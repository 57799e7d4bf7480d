"""Problem details (RFC 9457): the body of every error answer, and its OpenAPI entries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ProblemError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. model.depth.")
    loc: list[str | int]
    in_: Literal["body", "query", "path", "header", "cookie"] = Field(alias="in")
    msg: str
    type: str
    limit: str | None = Field(None, description="Budget errors: the setting, e.g. max_parameters.")
    limit_value: int | None = Field(None, description="Budget errors: the server's limit.")
    value: int | None = Field(None, description="Budget errors: what the spec requires.")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None
    limit: str | None = Field(None, description="413: max_request_bytes.")
    limit_value: int | None = Field(None, description="413: the largest body accepted, bytes.")
    value: int | None = Field(
        None, description="413: the declared Content-Length, or the bytes received so far."
    )


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers."""
    return {code: {"model": Problem, "description": "Problem details (RFC 9457)"}
            for code in codes}
