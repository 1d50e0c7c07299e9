"""The HTTP contract: one validation layer in front of every view, and the OpenAPI 3.1 document generated from it.

A view states its contract with `@operation(...)`, placed under the blueprint's route decorator::

    @bp.post("/api/comments")
    @operation(body=CommentBody, response=Comment, status=201, auth=member_required, errors=(404,),
               summary="Comment on a post", links={"comment": link("content.update_comment",
                                                                    comment_id="$response.body#/data/id")})
    def create_comment(body: CommentBody): ...

- `body` / `query`: pydantic models. The JSON body (Content-Type application/json, nested at most
  types.MAX_JSON_DEPTH levels) and the query string are validated completely before the view runs, and reach it as
  the keyword arguments `body` and `query`. Any problem is a 400 with the error envelope (errors.py) whose message
  names the field. Path parameters are checked by the route's converter (`<id:post_id>`: types.IdText).
- `auth`: one of auth.member_required / service_required / admin_required; applied here, before validation (so a
  bad token is a 401 whatever the body), and documented as the operation's security requirement with its 401/403.
- `response` and `status`: what the success envelope `{"status", "result": "SUCCESS", "data"}` carries (a pydantic
  model, or a type such as `list[Model]`); `media_type` other than JSON (`"text/html"`, `"text/plain"`) documents a
  plain body instead and `response` is then ignored. `envelope=False`: `response` is the whole body of the
  success and of the error answers (the probes report their components that way, 200 or 503).
- `errors`: further error statuses the view answers (404, 409, ...); 400, 401, 403, 404, 413 and 503 are added from
  what the operation has (a body or query, auth, path parameters, a body, `uses_store`: False for a view that
  never reaches the store or a transport).
- `links`: OpenAPI links from the success response to other operations (schemathesis follows them to build
  stateful sequences), see `link()`.

`openapi_document(app)` walks `app.url_map` and documents every rule whose view carries an operation; a rule
without one is listed in `undocumented(app)` (a test requires that list to be empty, so a new route must be
annotated). Models become `components/schemas` through pydantic's JSON Schema (draft 2020-12, which OpenAPI 3.1
uses as is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any, Callable, Literal

from flask import Flask, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.json_schema import models_json_schema
from werkzeug.routing import IntegerConverter

from .errors import InvalidInput
from .types import BadJson, describe, load_json

OPERATION_ATTR = "dailyfeed_operation"
JSON = "application/json"

ERROR_TEXT = {
    400: "Invalid input: the message names the field and the rule it breaks. Nothing was changed.",
    401: "Missing, malformed, expired or wrongly signed bearer token, or a subject that is not an id.",
    403: "The token may not do this (another member's post or comment, or a token of the wrong scope).",
    404: "No such resource (or it was deleted), or a path parameter that is not an id.",
    409: "Conflict with the current state (already liked, already following).",
    413: "Request body larger than the limit.",
    503: "The store or the activity delivery is unavailable; nothing was changed, try again.",
}


REDIRECT_TEXT = {
    303: "See Other: where to go next (the Location header), e.g. back to the list after an action.",
    308: "Permanent Redirect to the canonical address (the Location header).",
}


class ErrorBody(BaseModel):
    """The error envelope of every 4xx and 5xx answer, with the real HTTP status."""

    model_config = ConfigDict(extra="forbid", title="Error")

    statusCode: int = Field(description="the HTTP status, repeated")
    resultCode: Literal["FAIL"]
    message: str = Field(description="what was wrong, naming the field or resource")
    path: str = Field(description="the request path")


@dataclass(frozen=True)
class Link:
    operation_id: str
    parameters: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def link(operation_id: str, body: dict[str, Any] | None = None, **parameters: str) -> Link:
    """A link to `operation_id` (an endpoint name, e.g. "content.get_post"): its path/query parameters and body
    fields taken from this response by runtime expressions such as "$response.body#/data/id"."""
    return Link(operation_id, parameters, body)


@dataclass
class Operation:
    summary: str
    description: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    errors: tuple[int, ...]
    scope: str | None  # "member", or a token scope; None: anyone
    links: dict[str, Link]
    media_type: str
    tags: tuple[str, ...]
    uses_store: bool
    envelope: bool = True  # False: `response` is the whole body, errors too (the probes' component reports)


def operation(
    *,
    response: Any = None,
    status: int = 200,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: Callable | None = None,
    errors: tuple[int, ...] = (),
    summary: str | None = None,
    links: dict[str, Link] | None = None,
    media_type: str = JSON,
    tags: tuple[str, ...] = (),
    uses_store: bool = True,
    envelope: bool = True,
):
    """Validate the request of a view and register its contract (see the module docstring)."""

    def decorate(view: Callable) -> Callable:
        doc = (view.__doc__ or "").strip()
        op = Operation(
            summary=summary or (doc.splitlines()[0] if doc else view.__name__.replace("_", " ")),
            description=doc,
            body=body,
            query=query,
            response=response,
            status=status,
            errors=tuple(errors),
            scope=getattr(auth, "scope", None) if auth else None,
            links=dict(links or {}),
            media_type=media_type,
            tags=tuple(tags),
            uses_store=uses_store,
            envelope=envelope,
        )

        @wraps(view)
        def validated(*args, **kwargs):
            if body is not None:
                kwargs["body"] = validate_body(body)
            if query is not None:
                kwargs["query"] = validate_query(query)
            return view(*args, **kwargs)

        wrapped = auth(validated) if auth is not None else validated
        setattr(wrapped, OPERATION_ATTR, op)
        return wrapped

    return decorate


def validate_body(model: type[BaseModel]) -> BaseModel:
    """The request's JSON body as `model`, or InvalidInput (400) naming the problem. Reading the body enforces
    MAX_CONTENT_LENGTH (413)."""
    if not request.is_json:
        raise InvalidInput("request body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)
    try:
        document = load_json(raw)
    except BadJson as exc:
        raise InvalidInput(f"request body must be JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("request body must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(describe(exc)) from None


def validate_query(model: type[BaseModel]) -> BaseModel:
    """The query string as `model`; an empty parameter counts as absent (`?authorId=` lists everyone's posts)."""
    values = {name: value for name, value in request.args.items() if value != ""}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(describe(exc, "query")) from None


# --- the document --------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def operation_of(app: Flask, endpoint: str) -> Operation | None:
    return getattr(app.view_functions.get(endpoint), OPERATION_ATTR, None)


def undocumented(app: Flask) -> list[str]:
    """Rules (other than static files) whose view has no @operation: they would be missing from /openapi.json."""
    return [
        f"{rule.rule} ({rule.endpoint})"
        for rule in app.url_map.iter_rules()
        if not is_static(rule.endpoint) and operation_of(app, rule.endpoint) is None
    ]


def is_static(endpoint: str) -> bool:
    """The app's and each blueprint's static files (`static`, `admin.static`): files, not operations."""
    return endpoint == "static" or endpoint.endswith(".static")


def openapi_path(rule: str) -> str:
    """`/api/posts/<id:post_id>` -> `/api/posts/{post_id}`."""
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(2) + "}", rule)


def openapi_document(app: Flask, *, title: str, version: str, description: str = "") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    registry = _Schemas()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = operation_of(app, rule.endpoint)
        if op is None:
            continue
        path_params = [_path_parameter(name, converter) for name, converter in rule._converters.items()]
        for method in sorted((rule.methods or set()) - SKIPPED_METHODS):
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = _operation_object(
                rule.endpoint, op, path_params, registry
            )
    schemas = registry.definitions()
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": registry.resolve(paths),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


SECURITY_SCHEMES = {
    "memberToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 JWT whose `sub` is the member id (ASCII digits, 1 … 2^63-1) and which "
        "has no `scope`: `dailyfeed token --member N`.",
    },
    "serviceToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 JWT with `scope` = `activity:record` and `aud` = `dailyfeed-activity`: "
        "`dailyfeed token --service`. "
        "The only token the record endpoints accept.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 JWT with `scope` = `admin`: `dailyfeed token --admin`.",
    },
}
_SCHEME_OF_SCOPE = {"member": "memberToken", "activity:record": "serviceToken", "admin": "adminToken"}


def _path_parameter(name: str, converter: Any) -> dict[str, Any]:
    from .web import IdConverter  # web imports errors only; kept local so this module stays a leaf

    if isinstance(converter, IdConverter):
        schema = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1, "format": "int64"}
        text = "an id: ASCII digits, 1 … 2^63-1, no sign or leading zeros (anything else is a 404)"
    elif isinstance(converter, IntegerConverter):
        schema, text = {"type": "integer", "minimum": 0}, "an integer"
    else:
        schema, text = {"type": "string"}, ""
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": text}


def _operation_object(endpoint: str, op: Operation, path_params: list[dict], registry: "_Schemas") -> dict:
    parameters = list(path_params)
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            description = prop.pop("description", "")
            prop.pop("title", None)
            # an empty value counts as absent (validate_query): say so, as forms send empty fields
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": prop,
                    "allowEmptyValue": True,
                    **({"description": description} if description else {}),
                }
            )
    result: dict[str, Any] = {"operationId": endpoint, "summary": op.summary}
    if op.description and op.description != op.summary:
        result["description"] = op.description
    if op.tags or "." in endpoint:
        result["tags"] = list(op.tags or (endpoint.split(".", 1)[0],))
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {"required": True, "content": {JSON: {"schema": registry.ref(op.body, "validation")}}}
    if op.scope is not None:
        result["security"] = [{_SCHEME_OF_SCOPE.get(op.scope, "adminToken"): []}]

    responses: dict[str, Any] = {str(op.status): _success(op, registry)}
    statuses = set(op.errors)
    if op.body is not None or op.query is not None:
        statuses.add(400)
    if op.body is not None:
        statuses.add(413)
    if op.scope is not None:
        statuses.update((401, 403))
    if path_params:
        statuses.add(404)
    if op.uses_store:
        statuses.add(503)
    # a page answers its errors as pages (HTML), everything else with the JSON error envelope
    if op.media_type != JSON:
        error = {op.media_type: {"schema": {"type": "string"}}}
    else:
        error = {JSON: {"schema": registry.ref(ErrorBody if op.envelope else op.response, "serialization")}}
    for status in sorted(statuses):
        if status in REDIRECT_TEXT:
            responses[str(status)] = {"description": REDIRECT_TEXT[status]}
        else:
            responses[str(status)] = {"description": ERROR_TEXT.get(status, "Error"), "content": error}
    result["responses"] = responses
    return result


def _success(op: Operation, registry: "_Schemas") -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "Success"}
    if op.media_type != JSON:
        answer["content"] = {op.media_type: {"schema": {"type": "string"}}}
    elif op.response is None:
        answer["content"] = {JSON: {"schema": {"type": "object"}}}
    else:
        model = envelope_of(op.response) if op.envelope else op.response
        answer["content"] = {JSON: {"schema": registry.ref(model, "serialization")}}
    if op.links:
        answer["links"] = {name: _link_object(item) for name, item in op.links.items()}
    return answer


def _link_object(item: Link) -> dict[str, Any]:
    body: dict[str, Any] = {"operationId": item.operation_id}
    if item.parameters:
        body["parameters"] = dict(item.parameters)
    if item.body is not None:
        body["requestBody"] = dict(item.body)
    return body


@lru_cache(maxsize=None)
def envelope_of(data: Any) -> type[BaseModel]:
    """The success envelope model around `data` (a model or a type)."""
    name = getattr(data, "__name__", None) or re.sub(r"\W+", "", repr(data).title())
    if getattr(data, "__origin__", None) is list:
        name = f"{data.__args__[0].__name__}List"
    return create_model(
        f"{name}Response",
        __config__=ConfigDict(extra="forbid"),
        status=(int, Field(description="the HTTP status, repeated")),
        result=(Literal["SUCCESS"], ...),
        data=(data, ...),
    )


class _Schemas:
    """Collects the models an operation refers to and renders them once into components/schemas."""

    REF = "#/components/schemas/{model}"

    def __init__(self):
        self.models: list[tuple[type[BaseModel], str]] = []

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        if (model, mode) not in self.models:
            self.models.append((model, mode))
        return {"__model__": model, "__mode__": mode}  # resolved by definitions() into a $ref

    def definitions(self) -> dict[str, Any]:
        self._refs, defs = models_json_schema(self.models, ref_template=self.REF)
        return defs.get("$defs", {})

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if "__model__" in node:
                return self._refs[(node["__model__"], node["__mode__"])]
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(value) for value in node]
        return node
