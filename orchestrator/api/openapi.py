"""The OpenAPI 3.1 document served at ``/openapi.json``.

Operations come from the handlers' docstrings (YAML, read by Starlette's ``SchemaGenerator``);
request bodies from the Pydantic models. This module adds what every operation shares, so a new
route is documented completely without repeating it: its path parameters (from the route's
path template), the bearer security scheme, and the structured error body on every rejection.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute
from starlette.schemas import SchemaGenerator

from orchestrator.api.http import REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from orchestrator.api.models import SCHEMA_MODELS
from orchestrator.domain.workflow import NAME_PATTERN

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "name": {"description": "the workflow's name",
             "schema": {"type": "string", "pattern": NAME_PATTERN.pattern}},
    "execution_id": {"description": "an execution_id, as returned by a trigger",
                     "schema": {"type": "string", "format": "uuid"}},
    "schedule_id": {"description": "a schedule's id, as returned by POST /v1/schedules",
                    "schema": {"type": "string", "pattern": "^sch_[0-9a-f]{20}$"}},
    "webhook_id": {"description": "a webhook's id, as printed by `orchestrator webhooks "
                                  "create`",
                   "schema": {"type": "string", "pattern": "^wh_[0-9a-f]{20}$"}},
}
"""How each path parameter is spelled; one not listed here is documented as a plain string."""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "stable, machine-readable"},
            "message": {"type": "string", "description": "what was wrong and what to do"},
            "field": {"type": "string", "minLength": 1,
                      "description": "422 only: the first invalid field (dotted path, or a "
                                     "header or query parameter's name)"},
            "problems": {"type": "array", "description": "422 on a body: every invalid field",
                         "items": {"type": "object", "required": ["field", "message"],
                                   "properties": {"field": {"type": "string"},
                                                  "message": {"type": "string"}}}},
        },
    }},
}

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_PATH_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def openapi_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The document for ``routes`` (those with ``include_in_schema``)."""
    generator = SchemaGenerator({
        "openapi": "3.1.0",
        "info": {"title": "orchestrator API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "an API key of one environment (`orchestrator keys create`)"}},
            "parameters": {"RequestId": {
                "name": REQUEST_ID_HEADER, "in": "header", "required": False,
                "description": "kept as the execution's request_id (generated when absent)",
                "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern},
            }},
        },
        "security": [{"bearer": []}],
    })
    document = generator.get_schema(routes)
    _, schemas = models_json_schema([(m, "validation") for m in SCHEMA_MODELS],
                                    ref_template="#/components/schemas/{model}")
    document["components"]["schemas"] = {**schemas.get("$defs", {}), "Error": ERROR_SCHEMA}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            _complete(path, operation)
    return document


def _complete(path: str, operation: dict[str, Any]) -> None:
    declared = {p.get("name") for p in operation.get("parameters", [])}
    operation["parameters"] = [
        {"name": name, "in": "path", "required": True,
         **PATH_PARAMETERS.get(name, {"schema": {"type": "string"}})}
        for name in _PATH_PARAMETER.findall(path) if name not in declared
    ] + operation.get("parameters", [])
    if not operation["parameters"]:
        del operation["parameters"]
    responses = operation.setdefault("responses", {})
    if operation.get("security", [{"bearer": []}]):
        responses.setdefault(401, {"description": "no API key, or not a valid one"})
    responses.setdefault("4XX", {"description": "any other rejection"})
    for status, response in responses.items():
        if str(status)[0] in "45":
            response.setdefault("content", _ERROR_CONTENT)
