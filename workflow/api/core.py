"""The API's plumbing: one declaration per operation serves routing, parsing, auth and the OpenAPI document.

`operation(...)` registers a view on the blueprint and records what it accepts and answers, so the served
document is generated from the same declarations (and pydantic models) that validate the requests.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from ..db import read_session, unit_of_work
from ..domain.errors import DomainError, NotFound, ValidationFailed
from ..models import Case, User

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_ID = 2_147_483_647  # ids are 32-bit integers on PostgreSQL
MAX_JSON_DEPTH = 64  # no request of the API nests deeper than 6; this stops a nesting bomb before it recurses


class Unauthorized(DomainError):
    code = "unauthorized"
    http_status = 401


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    http_status = 415


class MalformedRequest(ValidationFailed):
    """The request does not match the OpenAPI document (400): bad JSON, a wrong type, an unknown field."""


class RuleBroken(DomainError):
    """The request matches the document but breaks a rule about the data it names (422), e.g. a loan that is
    already in an open case or a code the rule set does not have: what a service refuses as ValidationFailed."""

    code = "invalid_input"
    http_status = 422


@dataclass
class Operation:
    """One API operation as declared: what the OpenAPI document says about it."""

    method: str
    path: str  # OpenAPI form: /cases/{case_id}
    endpoint: str
    summary: str
    description: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    produces: str = "application/json"
    extra_bodies: dict[str, dict] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    auth: bool = True
    logged: bool = False  # each successful call leaves an access-log entry (api_read)


OPERATIONS: list[Operation] = []
_PARAM = re.compile(r"{(\w+)}")


def _engine():
    return current_app.extensions["mianze.engine"]


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, mimetype="application/json", headers=headers)


def error_response(code: str, message: str, status: int, details: dict | None = None,
                   headers: dict | None = None) -> Response:
    return json_response({"code": code, "message": message, "details": details or {}}, status, headers)


def _no_nul(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise MalformedRequest(f"{where}: NUL characters are not allowed", field=where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, where)
            _no_nul(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_nul(v, f"{where}[{i}]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (walked without recursion)."""
    level = [value]
    for _ in range(limit):
        level = [v for c in level if isinstance(c, dict | list) for v in (c.values() if isinstance(c, dict) else c)]
        if not level:
            return False
    return any(isinstance(v, dict | list) for v in level)


def read_json_body() -> Any:
    """The request's JSON body. 415 unless it is JSON; 400 when it does not parse or nests deeper than
    MAX_JSON_DEPTH (413 when too large)."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json",
                                   content_type=request.mimetype or None)
    raw = request.get_data(cache=True)
    too_deep = f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}", code_hint="malformed_json") from None
    except RecursionError:  # the decoder recurses once per level: deeper than the interpreter allows
        raise MalformedRequest(too_deep, code_hint="malformed_json", max_depth=MAX_JSON_DEPTH) from None
    if _too_deep(data, MAX_JSON_DEPTH):
        raise MalformedRequest(too_deep, code_hint="malformed_json", max_depth=MAX_JSON_DEPTH)
    _no_nul(data)
    return data


def _pydantic_errors(exc: ValidationError, prefix: str) -> tuple[str, list[dict]]:
    errors = []
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in e["loc"])
        errors.append({"field": f"{prefix}.{loc}" if loc else prefix, "message": e["msg"]})
    message = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:5])
    return message, errors


def parse_model(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    """Validate `data` with `model`; MalformedRequest (400) naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, errors = _pydantic_errors(exc, where)
        raise MalformedRequest(message, errors=errors) from None


def current_user() -> User:
    """The user behind the request's bearer token; Unauthorized (401) otherwise."""
    from ..services import tokens

    header = request.headers.get("Authorization", "")
    scheme, _, plain = header.partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    with read_session(_engine()) as s:
        found = tokens.authenticate(s, plain.strip())
        if found is None:
            raise Unauthorized("the API token is unknown, revoked, or its user is inactive")
        user, token = found
        token_id, touch = token.id, tokens.needs_touch(token)
        s.expunge(user)  # keep its loaded attributes past the session's end
    if touch:
        with unit_of_work(_engine()) as s:
            tokens.touch(s, token_id)
    return user


def _case_state(case_id: int) -> dict:
    with read_session(_engine()) as s:
        case = s.get(Case, case_id)
        return {"state": case.state, "version": case.version} if case is not None else {}


def operation(method: str, path: str, *, summary: str, tag: str, response: type[BaseModel] | None = None,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None, status: int = 200,
              produces: str = "application/json", extra_bodies: dict[str, dict] | None = None,
              errors: tuple[int, ...] = (), auth: bool = True, raw_body: bool = False,
              personal: bool | None = None) -> Callable:
    """Declare an API operation: the view receives `user`, `body`, `query` and the path ids.

    The view returns a pydantic model (serialised with status `status`) or a ready Response. A 409 on a
    case carries the case's current state and version in `details`.

    `personal`: whether the answer names people (staff, respondents, borrowers), so that each successful
    call is access-logged like a page view of the web (`api_read`, in the request's unit of work). Every
    authenticated read is, unless it says `personal=False` (reference data, anonymised precedents, or a
    download that logs its own kind of entry).
    """
    params = _PARAM.findall(path)
    logged = (method == "GET" and auth) if personal is None else (personal and auth)
    rule = _PARAM.sub(lambda m: f"<int:{m.group(1)}>", path)

    def decorate(view: Callable) -> Callable:
        doc = (view.__doc__ or "").strip()

        @functools.wraps(view)
        def wrapper(**path_ids):
            for name, value in path_ids.items():
                if not 1 <= value <= MAX_ID:
                    raise NotFound(f"{name.removesuffix('_id')} {value} does not exist")
            kwargs: dict[str, Any] = dict(path_ids)
            if auth:
                kwargs["user"] = current_user()
            if query is not None:
                args = {}
                for key in request.args:
                    values = request.args.getlist(key)
                    if len(values) > 1:
                        raise MalformedRequest(f"query parameter {key} is given {len(values)} times", field=key)
                    _no_nul(values[0], key)
                    args[key] = values[0]
                kwargs["query"] = parse_model(query, args, "query")
            if body is not None and not raw_body:
                kwargs["body"] = parse_model(body, read_json_body(), "body")
            try:
                result = view(**kwargs)
            except ValidationFailed as exc:
                if isinstance(exc, MalformedRequest):
                    raise
                raise RuleBroken(exc.message, **exc.details) from exc  # 400 is only for what the document refuses
            except DomainError as exc:
                if exc.http_status == 409 and "case_id" in path_ids:
                    exc.details = {**exc.details, **_case_state(path_ids["case_id"])}
                raise
            if logged:
                _log_read(kwargs["user"], path_ids)
            if isinstance(result, Response):
                return result
            return json_response(result.model_dump(mode="json"), status)

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        OPERATIONS.append(Operation(
            method=method.lower(), path=path, endpoint=view.__name__, summary=summary,
            description=doc, tag=tag, body=body, query=query, response=response, status=status,
            produces=produces, extra_bodies=extra_bodies or {}, errors=errors, auth=auth, logged=logged,
        ))
        wrapper.path_params = params
        return wrapper

    return decorate


def _log_read(user: User, path_ids: dict) -> None:
    """The access-log entry of a successful read of personal data through the API: who, which resource (the
    path and query), and the case it belongs to when the path names one. It is written by the request's unit
    of work, committed with it, and never when the request fails."""
    from ..services import access_log
    from ..unit import write_now

    details: dict[str, Any] = {"via": "api", "operation": request.endpoint.rpartition(".")[2]}
    if request.args:
        details["query"] = request.args.to_dict()
    access_log.record(write_now(), user, "api_read", request.path, path_ids.get("case_id"), details)


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mianze"'}


def http_error_response(exc: HTTPException) -> Response:
    """An HTTP error (unknown path, wrong method, body too large, ...) in the API's error shape."""
    names = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
             413: "payload_too_large", 415: "unsupported_media_type"}
    code = exc.code or 500
    headers, details = {}, {}
    message = exc.description or exc.name
    if code == 401:
        headers.update(_CHALLENGE)
    elif code == 404:
        message, details = f"no API resource at {request.path}", {"path": request.path}
    elif code == 405:
        allowed = sorted(getattr(exc, "valid_methods", None) or [])
        message, details = f"{request.method} is not allowed on {request.path}", {"allowed": allowed}
        headers["Allow"] = ", ".join(allowed)
    elif code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message, details = f"the request body is larger than the limit of {limit} bytes", {"limit": limit}
    return error_response(names.get(code, re.sub(r"\W+", "_", exc.name.lower())), message, code, details,
                          headers or None)


def register_error_handlers() -> None:
    """Every error under /api/ answers in one shape: {code, message, details}."""

    @bp.before_app_request
    def _routing_error():
        # A path no rule matches, or a method its rule does not take, fails before any blueprint is chosen,
        # so the blueprint's handlers below never see it: answer it here, before the web's hooks run.
        exc = request.routing_exception
        if exc is not None and request.path.startswith("/api/") and not isinstance(exc, RoutingException):
            return http_error_response(exc)
        return None

    @bp.errorhandler(DomainError)
    def _domain(exc: DomainError):
        code = exc.details.pop("code_hint", None) or exc.code
        headers = _CHALLENGE if exc.http_status == 401 else None
        return error_response(code, exc.message, exc.http_status, exc.details, headers)

    _http = http_error_response

    # Code-specific handlers win over class handlers in Flask, even the app's over a blueprint's: register
    # the common codes explicitly so an app-wide HTML page for, say, 404 never answers an API request.
    bp.register_error_handler(HTTPException, _http)
    for status in (400, 401, 403, 404, 405, 413, 415, 429):
        bp.register_error_handler(status, _http)

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception):
        reference = secrets.token_hex(4)
        current_app.logger.exception("unexpected error in the API, reference %s: %s %s", reference,
                                     request.method, request.path)
        return error_response("internal_error", f"an unexpected error occurred; it has been logged as {reference}",
                              500, {"reference": reference})

