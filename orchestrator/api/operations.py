"""How an HTTP operation is declared: once, in the route table (:mod:`orchestrator.api.routes`),
with its request body, query and response models and status codes. The app
(:mod:`orchestrator.api.app`) serves the table and parses each request by it; the OpenAPI
document (:mod:`orchestrator.api.openapi`) is generated from it.

Before a handler runs, the app checks the API key (unless the operation is ``public``), then
reads ``X-Request-Id`` (``request_id``), then the body (``body``: its model), then the query
(``query``: its model), each failure a structured error; the handler gets the results in a
:class:`Call`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.exceptions import InvalidInput, Problem

if TYPE_CHECKING:
    from orchestrator.api.context import Api


@dataclass(frozen=True, slots=True)
class Call:
    """One request as its operation declared it: the environment of its API key (``""`` for a
    public operation), its request id, its parsed body and query (``None`` when not declared)."""

    request: Request
    environment: str
    request_id: str | None
    body: Any
    query: Any

    @property
    def path(self) -> Mapping[str, Any]:
        return self.request.path_params


Handler = Callable[["Api", Call], Awaitable[Response]]


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A documented response: its description and body model (``None``: no body)."""

    description: str
    model: type[BaseModel] | None = None


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One route: method and path, the metrics label ``name`` (also the ``operationId``), the
    handler, what the document says, and what the app parses before the handler runs.

    ``request_id`` documents ``X-Request-Id``; a public operation's handler reads it itself,
    after its own checks (the webhook's signature). ``any_body`` documents a body of any JSON
    that the handler reads itself. ``rejections`` are the error statuses worth describing; every
    operation also documents 401 (unless public) and ``4XX``, all with the error body."""

    method: str
    path: str
    name: str
    handler: Handler
    summary: str
    description: str | None = None
    replies: dict[int, Reply]
    rejections: dict[int, str] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    any_body: bool = False
    query: type[Query] | None = None
    request_id: bool = False
    headers: tuple[dict[str, Any], ...] = ()
    public: bool = False


class Query(BaseModel):
    """Query parameters of one operation. Unknown parameters are ignored; a repeated one counts
    by its last value. ``invalid`` says, per parameter, what is allowed (the message of a
    refusal; pydantic's own otherwise)."""

    model_config = ConfigDict(extra="ignore")
    invalid: ClassVar[dict[str, str]] = {}


def parse_query(model: type[Query], request: Request) -> Any:
    """The query of ``request`` by ``model``; every invalid parameter becomes a
    :class:`InvalidInput` naming it."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        problems: list[Problem] = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "query"
            if all(p.field != name for p in problems):
                problems.append(Problem(field=name, message=model.invalid.get(
                    name, error["msg"].removeprefix("Value error, "))))
        raise InvalidInput(problems, subject="query") from None
