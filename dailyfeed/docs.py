"""The API's documents: /openapi.json (from dailyfeed.contract), /asyncapi.json (from the model that parses the Kafka
event, events.EventValue) and /docs, a page rendered here from the OpenAPI document: no script, no stylesheet
and nothing from another host (the machines have no internet)."""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from .contract import openapi_document, operation
from .events import TOPIC_PATTERN, EventValue, key_pattern
from .extension import get_container
from .web import PAGE_CSP, secure_page

bp = Blueprint("docs", __name__)

TITLE = "dailyfeed"
DESCRIPTION = (
    "Posts, comments, likes and follows; every action becomes a member activity delivered over Kafka or HTTP. "
    'Success bodies are `{"status", "result": "SUCCESS", "data"}`; errors are `{"statusCode", '
    '"resultCode": "FAIL", "message", "path"}` with the real HTTP status. Ids are ASCII digits, '
    "1 … 2^63-1; text is valid Unicode; times lie in the years 1970-9999. Tokens: `dailyfeed token --member N | "
    "--service | --admin`."
)
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
CACHE_KEY = "dailyfeed.docs"


def app_version() -> str:
    try:
        return version("dailyfeed")
    except PackageNotFoundError:
        return "0.0.0"


def openapi(app: Flask) -> dict[str, Any]:
    """The app's OpenAPI document, built once (routes cannot change after the first request)."""
    cache = app.extensions.setdefault(CACHE_KEY, {})
    if "openapi" not in cache:
        cache["openapi"] = openapi_document(app, title=TITLE, version=app_version(), description=DESCRIPTION)
    return cache["openapi"]


def asyncapi(app: Flask) -> dict[str, Any]:
    """AsyncAPI 3.0 for the member-activity event, its payload schema taken from events.EventValue."""
    settings = get_container(app).settings
    prefix = settings["kafka.topic.prefix"]
    payload = EventValue.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = payload.pop("$defs", {})
    schemas["MemberActivityEvent"] = payload
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{TITLE} member activities",
            "version": app_version(),
            "description": "One record per member action. The key identifies the action everywhere "
            "(Kafka key, dead-letter key, dedup key); delivery is at least once, so a "
            "consumer stores by key. The content side produces with acks=all and idempotence.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": settings["kafka.bootstrap-servers"], "protocol": "kafka"}},
        "channels": {
            "memberActivity": {
                "address": prefix + "{day}",
                "title": "date topics",
                "description": f"One topic per day of the action in the time zone {settings['kafka.topic.timezone']}"
                f" (setting kafka.topic.timezone); consumers subscribe by the pattern "
                f"`^{prefix}\\d{{8}}$` (default `{TOPIC_PATTERN}`) and also read old days.",
                "parameters": {"day": {"description": "yyyyMMdd"}},
                "messages": {"memberActivity": {"$ref": "#/components/messages/MemberActivity"}},
            },
        },
        "operations": {
            "publishMemberActivity": {
                "action": "send",
                "channel": {"$ref": "#/channels/memberActivity"},
                "summary": "The content side publishes each action once (retries keep its key).",
                "messages": [{"$ref": "#/channels/memberActivity/messages/memberActivity"}],
            },
            "receiveMemberActivity": {
                "action": "receive",
                "channel": {"$ref": "#/channels/memberActivity"},
                "summary": "The activity side stores each key once, committing offsets after the store.",
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [settings["kafka.consumer.group-id"]]},
                        "bindingVersion": "0.5.0",
                    }
                },
                "messages": [{"$ref": "#/channels/memberActivity/messages/memberActivity"}],
            },
        },
        "components": {
            "messages": {
                "MemberActivity": {
                    "name": "MemberActivity",
                    "title": "A member activity",
                    "contentType": "application/json",
                    "headers": {
                        "type": "object",
                        "properties": {
                            "__TypeId__": {
                                "type": "string",
                                "description": "optional: the Java class name the original wrote; ignored",
                            },
                            "traceparent": {
                                "type": "string",
                                "pattern": TRACEPARENT_PATTERN,
                                "description": "optional W3C trace context of the request that caused the action",
                            },
                        },
                    },
                    "payload": {"$ref": "#/components/schemas/MemberActivityEvent"},
                    "bindings": {
                        "kafka": {
                            "key": {
                                "type": "string",
                                "pattern": key_pattern(),
                                "description": "member_activity:kafka_event:{TYPE_CODE}###{id}"
                                "###{memberId}###{yyyy-MM-dd HH:mm:ss.nnnnnnnnn} "
                                "(UTC); the code of LIKE_POST_CANCEL is "
                                "LIKE_CANCEL_POST",
                            },
                            "bindingVersion": "0.5.0",
                        }
                    },
                    "examples": [
                        {
                            "name": "like",
                            "payload": {
                                "memberId": 7,
                                "postId": 12,
                                "commentId": None,
                                "memberActivityType": "LIKE_POST",
                                "createdAt": "2026-11-22T10:20:30.123456Z",
                                "updatedAt": None,
                            },
                        }
                    ],
                },
            },
            "schemas": schemas,
        },
    }


@bp.get("/openapi.json")
@operation(summary="This document (OpenAPI 3.1)", tags=("docs",), uses_store=False)
def openapi_json():
    return jsonify(openapi(current_app))


@bp.get("/asyncapi.json")
@operation(summary="The Kafka event (AsyncAPI 3.0)", tags=("docs",), uses_store=False)
def asyncapi_json():
    return jsonify(asyncapi(current_app))


@bp.get("/docs")
@operation(summary="This API as a page", media_type="text/html", tags=("docs",), uses_store=False)
def docs_page():
    return secure_page(Response(render_page(openapi(current_app)), mimetype="text/html"), DOCS_CSP)


# --- the page ------------------------------------------------------------------------------------------------------

TAG_ORDER = ("content", "activity", "admin", "console page", "operating", "docs")
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:1em 2em;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2em} .op{border:1px solid #ddd;border-radius:6px;margin:.8em 0}
.op summary{cursor:pointer;padding:.5em .8em;list-style:none} .op[open] summary{border-bottom:1px solid #ddd}
.m{display:inline-block;min-width:4.5em;font-weight:700;text-transform:uppercase}
.get{color:#1565c0}.post{color:#2e7d32}.put{color:#ef6c00}.delete{color:#c62828}
.body{padding:.3em 1em 1em} code,pre{font:13px ui-monospace,monospace;background:#f6f6f6}
pre{padding:.6em;overflow:auto;max-height:28em} table{border-collapse:collapse} td,th{padding:.2em .8em;
text-align:left;vertical-align:top;border-bottom:1px solid #eee} .lock{color:#6a1b9a}
"""

# The page's one inline style is allowed by its hash; nothing else inline runs or applies.
DOCS_CSP = PAGE_CSP.replace(
    "style-src 'self'", f"style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'"
)


def render_page(document: dict[str, Any]) -> str:
    info = document["info"]
    schemas = document["components"]["schemas"]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(info['title'])} API</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} API <small>{escape(info['version'])}</small></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1) · "
        "<a href='/asyncapi.json'>/asyncapi.json</a> (the Kafka event, AsyncAPI 3.0)</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict]]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    # the API first, then the operator's surfaces, then the rest
    order = {tag: n for n, tag in enumerate(TAG_ORDER)}
    for tag, ops in sorted(by_tag.items(), key=lambda item: (order.get(item[0], len(order)), item[0])):
        parts.append(f"<h2>{escape(tag)}</h2>")
        parts.extend(_render_operation(method, path, op, schemas) for method, path, op in ops)
    parts.append("<h2>Schemas</h2>")
    for name, schema in schemas.items():
        parts.append(
            f"<details class=op id='schema-{escape(name)}'><summary><b>{escape(name)}</b></summary>"
            f"<div class=body><pre>{escape(json.dumps(schema, indent=2, ensure_ascii=False))}</pre>"
            "</div></details>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def _render_operation(method: str, path: str, op: dict[str, Any], schemas: dict[str, Any]) -> str:
    security = "".join(
        f" <span class=lock title='bearer token'>needs {escape(name)}</span>"
        for requirement in op.get("security", [])
        for name in requirement
    )
    out = [
        f"<details class=op id='{escape(op['operationId'])}'><summary><span class='m {method}'>{method}</span>"
        f"<code>{escape(path)}</code> — {escape(op.get('summary', ''))}{security}</summary><div class=body>"
    ]
    if op.get("description"):
        out.append(f"<p>{escape(op['description'])}</p>")
    if op.get("parameters"):
        out.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>")
        for p in op["parameters"]:
            out.append(
                f"<tr><td><code>{escape(p['name'])}</code>{'*' if p.get('required') else ''}</td>"
                f"<td>{escape(p['in'])}</td><td><code>{escape(json.dumps(p['schema']))}</code></td>"
                f"<td>{escape(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        out.append(f"<p>Body: {_schema_link(body['schema'])}</p>")
    out.append("<table><tr><th>status</th><th>answer</th></tr>")
    for status, answer in op["responses"].items():
        content = answer.get("content", {})
        shown = ", ".join(
            _schema_link(c.get("schema", {})) if media == "application/json" else escape(media)
            for media, c in content.items()
        )
        out.append(f"<tr><td>{escape(status)}</td><td>{escape(answer.get('description', ''))} {shown}</td></tr>")
    out.append("</table></div></details>")
    return "".join(out)


def _schema_link(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        return f"<a href='#schema-{escape(name)}'><code>{escape(name)}</code></a>"
    return f"<code>{escape(json.dumps(schema))}</code>"
