"""Bearer tokens at the door (auth.py), as a client sees them: the exact 401/403 sentence for each way a token is
wrong, and nothing written. tests/api/test_bad_input.py and test_trust_boundary.py cover the kinds of token; these
are the edges: how the header is spelt, the length limit, the claims a token must carry, the audience's forms."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest

from dailyfeed.auth import MAX_TOKEN_CHARS
from dailyfeed.extension import get_container
from dailyfeed.store import MEMBER_ACTIVITIES, POSTS
from dailyfeed.tokens import RECORD_SCOPE, issue_member_token

RECORD_BODY = {"memberId": 7, "postId": 12, "activityType": "POST_CREATE"}
RECORD_PATH = "/api/member-activities/posts"


@pytest.fixture
def secret(app):
    return get_container(app).settings["auth.jwt-secret"]


def signed(secret, **claims) -> str:
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def later() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def refusal(response, status: int) -> str:
    assert response.status_code == status, response.json
    return response.json["message"]


def post_as(client, authorization: str | None):
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.post("/api/posts", json={"content": "x"}, headers=headers)


def test_the_header_is_bearer_in_any_case_with_blanks_around_the_token(client, db, secret):
    token = issue_member_token(secret, 7, 60)
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"Bearer  {token} "):
        assert post_as(client, header).status_code == 201, header
    assert db[POSTS].count_documents({"author_id": 7}) == 4


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Token abc", "Bearer\tabc"]
)
def test_a_missing_bearer_token_is_told_how_to_send_one(client, db, header):
    assert refusal(post_as(client, header), 401) == "missing bearer token (Authorization: Bearer <JWT>)"
    assert db[POSTS].count_documents({}) == 0


def test_a_token_is_at_most_4096_characters(client, db):
    assert refusal(post_as(client, "Bearer " + "a" * (MAX_TOKEN_CHARS + 1)), 401) == "bearer token is too long"
    assert refusal(post_as(client, "Bearer " + "a" * MAX_TOKEN_CHARS), 401).startswith("bearer token is invalid: ")
    assert db[POSTS].count_documents({}) == 0


def test_a_token_needs_a_subject_and_an_expiry(client, db, secret):
    assert (
        refusal(post_as(client, "Bearer " + signed(secret, sub="7")), 401)
        == 'bearer token is invalid: Token is missing the "exp" claim'
    )
    assert (
        refusal(post_as(client, "Bearer " + signed(secret, exp=later())), 401)
        == 'bearer token is invalid: Token is missing the "sub" claim'
    )
    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    assert refusal(post_as(client, "Bearer " + signed(secret, sub="7", exp=past)), 401) == "bearer token has expired"
    assert db[POSTS].count_documents({}) == 0


def test_a_subject_that_is_not_a_member_id_in_text_is_refused(client, db, secret):
    for sub in (7, "07", "-7", "seven"):
        assert (
            refusal(post_as(client, "Bearer " + signed(secret, sub=sub, exp=later())), 401)
            == "bearer token subject is not a member id (ASCII digits, 1 … 2^63-1)"
        ), sub
    assert db[POSTS].count_documents({}) == 0


def test_a_member_token_with_an_audience_still_acts_as_the_member(client, db, secret):
    token = signed(secret, sub="7", exp=later(), aud="some-other-service")
    assert post_as(client, f"Bearer {token}").status_code == 201
    assert db[POSTS].count_documents({"author_id": 7}) == 1


def test_the_record_audience_may_be_one_of_a_list_but_must_be_named_exactly(client, db, secret):
    def record(aud):
        token = signed(secret, sub="dailyfeed-content", scope=RECORD_SCOPE, exp=later(), aud=aud)
        return client.post(RECORD_PATH, json=RECORD_BODY, headers={"Authorization": f"Bearer {token}"})

    assert record(["elsewhere", "dailyfeed-activity"]).status_code == 201
    for aud in ("dailyfeed-activity-staging", "activity", ["elsewhere"], None):
        assert (
            refusal(record(aud), 403) == "recording activities needs a token for audience dailyfeed-activity "
            "(dailyfeed token --service issues one)"
        ), aud
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 1
