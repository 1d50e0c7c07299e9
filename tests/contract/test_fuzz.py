"""Schema fuzzing: schemathesis, driven by /openapi.json, against the app in process (WSGI) on mongomock.

Every operation gets generated valid requests (positive) and requests that break the document (negative), with valid
tokens of three members (so other members' posts give 403s) or the service token on the record endpoints; then
stateful sequences follow the document's links at random, and generated life cycles run the whole chain (create
post -> like -> comment -> reply -> update -> delete). Every
answer must be no 5xx, conform to the document (status, content type, body schema), keep the envelope, and a
request breaking the document must be refused with a 4xx.

Examples are bounded so the tier runs in well under two minutes on two cores; DAILYFEED_FUZZ_SCALE=10 runs ten
times as many. Runs are derandomized (the same cases every run) so CI does not flake on a newly found case;
a deeper, random run: DAILYFEED_FUZZ_SCALE=20 DAILYFEED_FUZZ_RANDOM=1.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from dailyfeed.extension import get_container
from dailyfeed.tokens import issue_member_token, issue_service_token

from ..support.apps import make_app

SCALE = float(os.environ.get("DAILYFEED_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("DAILYFEED_FUZZ_RANDOM", "") == "1"
POSITIVE_EXAMPLES = max(1, int(15 * SCALE))
NEGATIVE_EXAMPLES = max(1, int(10 * SCALE))
STATEFUL_EXAMPLES = max(1, int(30 * SCALE))
CHAIN_EXAMPLES = max(1, int(15 * SCALE))
MEMBERS = (1, 2, 3)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _settings(examples: int, **extra) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        print_blob=True,
        **extra,
    )


def as_json_integers(case) -> None:
    """JSON Schema counts 12.0 as an integer, and so schemathesis sends it for an id; the API refuses ids written
    with a fraction (ids are digits, SPEC 8a), so valid cases get their integral floats written as integers."""
    if isinstance(case.body, dict):
        case.body = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in case.body.items()}


def html_page(case) -> bool:
    """An operation documented as answering an HTML page."""
    responses = case.operation.definition.raw.get("responses", {})
    return any("text/html" in (answer.get("content") or {}) for answer in responses.values())


def envelope_kept(ctx, response, case):
    """Errors are {"statusCode", "resultCode": "FAIL", "message", "path"} with the real status; JSON successes are
    {"status", "result": "SUCCESS", "data"}."""
    if "application/json" not in response.headers.get("content-type", [""])[0]:
        # pages (the console) answer their errors as pages; everything else keeps the JSON envelope
        assert response.status_code < 400 or html_page(case), f"error {response.status_code} without the JSON envelope"
        return None
    body = response.json()
    if response.status_code >= 400:
        assert body.get("statusCode") == response.status_code, body
        assert body.get("resultCode") == "FAIL" and isinstance(body.get("message"), str) and body["message"], body
        assert body.get("path") == case.formatted_path.split("?")[0] or body.get("path", "").startswith("/"), body
    elif isinstance(body, dict) and "result" in body:
        assert body["status"] == response.status_code and body["result"] == "SUCCESS", body
    return None


@pytest.fixture(scope="module")
def fuzz_app():
    app = make_app()
    yield app
    get_container(app).close()


@pytest.fixture(scope="module")
def schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


@pytest.fixture(scope="module")
def positive_schema(fuzz_app):
    """For the sequences: valid requests only, so that each step can build on the one before."""
    config = schemathesis.Config.from_dict({"generation": {"mode": "positive"}})
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app, config=config)


@pytest.fixture(scope="module")
def tokens(fuzz_app):
    secret = get_container(fuzz_app).settings["auth.jwt-secret"]
    members = {m: {"Authorization": f"Bearer {issue_member_token(secret, m, 3600)}"} for m in MEMBERS}
    service = {"Authorization": f"Bearer {issue_service_token(secret, 3600)}"}

    def for_case(case, member: int) -> dict[str, str]:
        security = case.operation.definition.raw.get("security") or [{}]
        if "serviceToken" in security[0]:
            return service
        if "memberToken" in security[0]:
            return members[member]
        return {}

    for_case.members = members
    return for_case


def _seed(fuzz_app):
    """Posts and comments of each member, so generated ids sometimes hit live ones."""
    client = fuzz_app.test_client()
    secret = get_container(fuzz_app).settings["auth.jwt-secret"]
    for member in MEMBERS:
        headers = {"Authorization": f"Bearer {issue_member_token(secret, member, 3600)}"}
        post = client.post("/api/posts", json={"content": f"seed {member}"}, headers=headers).json["data"]
        client.post("/api/comments", json={"postId": post["id"], "content": "seed"}, headers=headers)


def _fuzz(operation, mode: GenerationMode, examples: int, tokens, statuses: Counter, cases: Counter) -> None:
    """Run `examples` generated cases of one operation in one mode through every check."""
    checks = CHECKS + [envelope_kept] + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @_settings(examples)
    @given(case=operation.as_strategy(generation_mode=mode), member=st.sampled_from(MEMBERS))
    def run(case, member):
        if mode is GenerationMode.POSITIVE:
            as_json_integers(case)
        headers = tokens(case, member)
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks, headers=headers)
        statuses[response.status_code] += 1
        cases[operation.label, mode.value] += 1

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # no request can break this operation's document (e.g. no parameters at all)


def test_every_operation_survives_generated_requests(fuzz_app, schema, tokens, figures):
    _seed(fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: Counter[int] = Counter()
    cases: Counter[tuple[str, str]] = Counter()
    started = time.monotonic()
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, tokens, statuses, cases)
        _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, tokens, statuses, cases)
    elapsed = time.monotonic() - started
    covered = {label for label, _ in cases}
    by_mode = Counter()
    for (_, mode), n in cases.items():
        by_mode[mode] += n
    figures["operations"] = (
        f"{len(covered)}/{len(operations)} operations, {sum(cases.values())} cases "
        f"({by_mode['positive']} positive, {by_mode['negative']} negative) in {elapsed:.1f}s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert covered == {operation.label for operation in operations}
    assert not [s for s in statuses if s >= 500]
    assert statuses[200] and statuses[201] and statuses[400] and statuses[404]


def test_stateful_sequences_follow_the_links(fuzz_app, positive_schema, tokens, figures):
    """schemathesis' state machine over the content operations, walking the document's links at random."""
    machine = positive_schema.include(tag="content").as_state_machine()
    steps: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    db = get_container(fuzz_app).db

    class Sequences(machine):
        def setup(self):
            # Each sequence starts from an empty store, so that hypothesis can replay it (a like left by another
            # sequence would turn a 201 into a 409).
            for name in db.list_collection_names():
                db[name].delete_many({})

        def before_call(self, case):
            as_json_integers(case)

        def get_call_kwargs(self, case):
            return {"headers": tokens(case, MEMBERS[0])}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            steps[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS + [envelope_kept], headers=kwargs.get("headers"))

    started = time.monotonic()
    Sequences.run(settings=_settings(STATEFUL_EXAMPLES, stateful_step_count=10))
    elapsed = time.monotonic() - started
    figures["stateful"] = (
        f"{STATEFUL_EXAMPLES} sequences, {sum(steps.values())} calls over {len(steps)} "
        f"operations in {elapsed:.1f}s; statuses {dict(sorted(statuses.items()))}"
    )
    assert statuses[201] and not [s for s in statuses if s >= 500]


CHAIN = [
    "POST /api/posts",
    "POST /api/posts/{post_id}/like",
    "POST /api/comments",
    "POST /api/comments/replies",
    "PUT /api/comments/{comment_id}",
    "PUT /api/posts/{post_id}",
    "DELETE /api/comments/{comment_id}",
    "DELETE /api/posts/{post_id}",
]


def test_the_content_life_cycle_with_generated_bodies(fuzz_app, positive_schema, tokens, figures):
    """create post -> like -> comment -> reply -> update -> delete, each body generated from the document: every
    valid request is accepted, answers as documented and records its activity; the deleted thread is gone."""
    operations = {r.ok().label: r.ok() for r in positive_schema.get_all_operations()}
    client = fuzz_app.test_client()
    runs = Counter()

    @_settings(CHAIN_EXAMPLES)
    @given(data=st.data())
    def life_cycle(data):
        def step(index, path=None, body=None, expect=(200, 201)):
            case = data.draw(operations[CHAIN[index]].as_strategy(path_parameters=path))
            as_json_integers(case)
            if body:
                case.body = {**case.body, **body}
            headers = tokens(case, MEMBERS[0])
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS + [envelope_kept], headers=headers)
            assert response.status_code in expect, (CHAIN[index], case.body, response.json())
            runs[CHAIN[index]] += 1
            return response.json()["data"]

        post = step(0)
        step(1, {"post_id": post["id"]})
        comment = step(2, body={"postId": post["id"]})
        reply = step(3, body={"postId": post["id"], "parentId": comment["id"]})
        step(4, {"comment_id": reply["id"]})
        step(5, {"post_id": post["id"]})
        assert step(6, {"comment_id": comment["id"]})["deletedReplies"] == 1
        step(7, {"post_id": post["id"]})
        gone = client.put(f"/api/comments/{reply['id']}", json={"content": "late"}, headers=tokens.members[MEMBERS[0]])
        assert gone.status_code == 404
        feed = client.get(f"/api/members/{MEMBERS[0]}/activities?size=100").json["data"]["content"]
        types = [a["memberActivityType"] for a in feed if a["postId"] == post["id"]]
        assert sorted(types) == sorted(
            [
                "POST_CREATE",
                "LIKE_POST",
                "COMMENT_CREATE",
                "COMMENT_CREATE",
                "COMMENT_UPDATE",
                "POST_UPDATE",
                "COMMENT_DELETE",
                "POST_DELETE",
            ]
        )
        runs["completed"] += 1

    started = time.monotonic()
    life_cycle()
    figures["life cycle"] = (
        f"{runs['completed']} generated life cycles of {len(CHAIN)} calls each in {time.monotonic() - started:.1f}s"
    )
    assert runs["completed"] >= CHAIN_EXAMPLES // 2
