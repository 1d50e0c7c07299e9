"""The documents the app serves: /openapi.json (valid OpenAPI 3.1, every route), /docs (rendered from it, nothing
from another host) and /asyncapi.json (the event as events.EventValue parses it)."""

import re
from datetime import datetime, timezone

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from dailyfeed.contract import is_static, openapi_path, undocumented
from dailyfeed.events import ActivityEvent, ActivityType, EventValue, key_pattern, message_key


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def test_openapi_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator picks the 3.1 validator from the version field


def test_the_validator_would_notice_a_broken_document(document):
    broken = {**document, "info": {"version": "1"}}  # no title
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_route_of_the_app_is_in_the_document(app, document):
    assert undocumented(app) == []
    served = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if not is_static(rule.endpoint)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(path, method) for path, methods in document["paths"].items() for method in methods}
    assert served == listed
    ids = [op["operationId"] for methods in document["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))


def test_a_route_without_operation_is_reported(app):
    app.add_url_rule("/api/unannotated", "unannotated", lambda: "x")
    assert undocumented(app) == ["/api/unannotated (unannotated)"]


def test_the_document_describes_envelopes_statuses_and_security(document):
    create = document["paths"]["/api/posts"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "403", "413", "503"}
    assert create["security"] == [{"memberToken": []}]
    like = document["paths"]["/api/posts/{post_id}/like"]["post"]
    assert {"404", "409"} <= set(like["responses"])
    record = document["paths"]["/api/member-activities/posts"]["post"]
    assert record["security"] == [{"serviceToken": []}]
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["statusCode", "resultCode", "message", "path"]
    assert schemas["PostResponse"]["properties"]["result"] == {"const": "SUCCESS", "title": "Result", "type": "string"}
    post_id = document["paths"]["/api/posts/{post_id}"]["get"]["parameters"][0]
    assert post_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1, "format": "int64"}
    assert schemas["RecordBody"]["required"] == ["memberId", "activityType"]  # messageKey optional: interop


def test_docs_page_lists_every_operation_from_local_assets_only(client, document):
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for methods in document["paths"].values():
        for op in methods.values():
            assert f"id='{op['operationId']}'" in page
    # nothing fetched from anywhere: no scripts, no external stylesheets, images or fonts
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert re.findall(r"(?:src|href)=['\"](?:https?:)?//", page) == []


@pytest.fixture
def asyncapi(client):
    response = client.get("/asyncapi.json")
    assert response.status_code == 200
    return response.json


def test_asyncapi_payload_is_the_parsing_model(asyncapi):
    assert asyncapi["asyncapi"] == "3.0.0"
    message = asyncapi["components"]["messages"]["MemberActivity"]
    assert message["payload"] == {"$ref": "#/components/schemas/MemberActivityEvent"}
    assert asyncapi["components"]["schemas"]["MemberActivityEvent"] == EventValue.model_json_schema()
    assert set(message["headers"]["properties"]) == {"__TypeId__", "traceparent"}
    assert message["headers"].get("required", []) == []
    channel = asyncapi["channels"]["memberActivity"]
    assert channel["address"] == "member-activity-{day}" and "^member-activity-\\d{8}$" in channel["description"]


def test_what_producers_write_and_the_original_wrote_fits_the_asyncapi_schemas(asyncapi):
    payload = asyncapi["components"]["schemas"]["MemberActivityEvent"]
    key = asyncapi["components"]["messages"]["MemberActivity"]["bindings"]["kafka"]["key"]
    at = datetime(2026, 11, 22, 10, 20, 30, 123456, tzinfo=timezone.utc)
    for event in (
        ActivityEvent.new(ActivityType.LIKE_POST_CANCEL, 7, post_id=12, at=at),
        ActivityEvent.new(ActivityType.MEMBER_FOLLOW, 7, following_id=9, at=at),
        ActivityEvent.new(ActivityType.COMMENT_CREATE, 7, post_id=12, comment_id=3, at=at),
    ):
        jsonschema.validate(event.to_json(), payload)
        jsonschema.validate(event.message_key, key)
    java = {"memberId": 7, "postId": 12, "memberActivityType": "LIKE_POST", "createdAt": [2025, 11, 27, 10, 20, 30, 1]}
    jsonschema.validate(java, payload)
    assert key["pattern"] == key_pattern()
    assert not re.fullmatch(key_pattern(), message_key(ActivityType.POST_CREATE, 12, 7, at)[:-1])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"memberId": 7, "memberActivityType": "POKE"}, payload)
