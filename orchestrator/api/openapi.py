"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the route table
(:data:`~orchestrator.api.routes.OPERATIONS`): each operation's request body, query and
response models become its schemas (pydantic's JSON Schema), its path parameters are read from
its path template. Every operation also gets the bearer security scheme (unless public) and
the structured error body on every rejection; nothing is written by hand per route.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from orchestrator.api import responses
from orchestrator.api.http import REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from orchestrator.api.operations import Operation, Query
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

_REF = "#/components/schemas/{model}"
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}
_PATH_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def openapi_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The document of ``operations``."""
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
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
    }


Refs = dict[tuple[Any, JsonSchemaMode], dict[str, Any]]


def _schemas(operations: Sequence[Operation]) -> tuple[Refs, dict[str, Any]]:
    """Every model's schema (bodies as validated, responses as serialized) under
    ``components/schemas``, and the reference to each."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(responses.Error,
                                                                   "serialization"): None}
    for op in operations:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        if op.query is not None:
            wanted[(op.query, "validation")] = None
        for reply in op.replies.values():
            if reply.model is not None:
                wanted[(reply.model, "serialization")] = None
    refs, document = models_json_schema(list(wanted), ref_template=_REF)
    schemas = document.get("$defs", {})
    for op in operations:  # a query is documented as parameters, not as a schema
        if op.query is not None:
            schemas.pop(op.query.__name__, None)
    return refs, schemas


def _operation(op: Operation, refs: Refs, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True,
                   **PATH_PARAMETERS.get(name, {"schema": {"type": "string"}})}
                  for name in _PATH_PARAMETER.findall(op.path)]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    parameters += list(op.headers)
    if op.request_id:
        parameters.append({"$ref": "#/components/parameters/RequestId"})
    document: dict[str, Any] = {"operationId": op.name, "summary": op.summary}
    if op.description:
        document["description"] = op.description
    if op.public:
        document["security"] = []
    if parameters:
        document["parameters"] = parameters
    if op.body is not None or op.any_body:
        schema = refs[(op.body, "validation")] if op.body is not None else {}
        document["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    replies: dict[str, Any] = {}
    for status, reply in op.replies.items():
        replies[str(status)] = {"description": reply.description}
        if reply.model is not None:
            replies[str(status)]["content"] = {"application/json": {
                "schema": refs[(reply.model, "serialization")]}}
    rejections = dict(op.rejections)
    if not op.public:
        rejections.setdefault(401, "no API key, or not a valid one")
    for status, description in rejections.items():
        replies[str(status)] = {"description": description, "content": _ERROR_CONTENT}
    replies["4XX"] = {"description": "any other rejection", "content": _ERROR_CONTENT}
    document["responses"] = replies
    return document


def _query_parameters(model: type[Query]) -> list[dict[str, Any]]:
    """Each field of ``model`` as a query parameter; an optional one is simply not
    ``required`` (its schema does not admit null: a parameter is absent, never null)."""
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            prop.update(branches[0])
        elif branches:
            prop["anyOf"] = branches
        if prop.get("default", ...) is None:
            del prop["default"]
        parameter = {"name": name, "in": "query", "required": name in required,
                     "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters
