"""Issue 19, the trust boundary, in the api tier (both stores): nothing a client sends decides where the app
connects, which Host it answers, what /metrics holds, or how an error message reads.

(1) the app's own address never comes from a request, untrusted Host headers are 400, service tokens carry the
record endpoints' audience; (2) no request value can make a transport fail or open its breaker; (3) /metrics keeps
its series count under a flood of random methods, paths and ids; (5) admin times bounded after the conversion to
UTC; (9) the lone-surrogate message names the code point."""

from __future__ import annotations

import random
import string

import jwt
import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import DEAD_LETTER_COLLECTIONS, MEMBER_ACTIVITIES, POSTS
from dailyfeed.tokens import RECORD_SCOPE, issue_admin_token, issue_service_token
from dailyfeed.transport.http import HttpTransport
from tests.support.metrics import samples
from tests.support.wsgi import WsgiAdapter

OWN_PORT = 5919  # server.host:server.port: the app's own address when activity.base-url is empty
OWN_URL = f"http://127.0.0.1:{OWN_PORT}"


@pytest.fixture
def unconfigured(store_uri, apps):
    """An app on the backend under test with activity.base-url empty (as under `make run`), whose record calls
    are answered in-process only at its own address: a call anywhere else goes to the network and fails."""
    app = apps.make({"mongo.uri": store_uri, "activity.base-url": "", "server.port": OWN_PORT})
    [transport] = {id(t): t for t in get_container(app).transports.values()}.values()
    assert isinstance(transport, HttpTransport)
    adapter = WsgiAdapter(app)
    transport.session.mount(OWN_URL + "/", adapter)
    return app, transport, adapter


def _stored(db, collection):
    return db[collection].count_documents({})


@pytest.mark.parametrize("host", ["127.0.0.1:5777", "localhost:1", "[::1]:9", "127.0.0.1"])
def test_1_the_host_header_does_not_decide_where_activities_go(unconfigured, token, host):
    app, transport, adapter = unconfigured
    db = get_container(app).db
    response = app.test_client().post("/api/posts", json={"content": "hello"}, headers={**token(7), "Host": host})
    assert response.status_code == 201, response.json
    assert adapter.calls == 1  # the record call went to the configured address, nowhere else
    assert _stored(db, MEMBER_ACTIVITIES) == 1
    assert sum(_stored(db, c) for c in DEAD_LETTER_COLLECTIONS) == 0


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "127.0.0.1.evil.example:5000",
        "attacker:5777",
        "a b",
        "x" * 300,
        "localhost:99999",
        "127.0.0.1/evil",
        "localhost@evil.example",
    ],
)
def test_1_a_request_for_an_untrusted_host_is_400_and_changes_nothing(unconfigured, token, host):
    app, _, adapter = unconfigured
    db = get_container(app).db
    response = app.test_client().post("/api/posts", json={"content": "hello"}, headers={**token(7), "Host": host})
    assert response.status_code == 400
    assert response.json["resultCode"] == "FAIL" and "server.trusted-hosts" in response.json["message"]
    assert len(response.json["message"]) < 200  # the header is quoted clipped
    assert adapter.calls == 0 and _stored(db, POSTS) == 0 and _stored(db, MEMBER_ACTIVITIES) == 0
    assert app.test_client().get("/healthz", headers={"Host": host}).status_code == 400


def test_1_trusted_hosts_are_a_setting_with_subdomains(apps, token):
    app = apps.make({"server.trusted-hosts": "feed.example, .internal.example"})
    client = app.test_client()
    for host, status in [
        ("feed.example", 201),
        ("FEED.example:8443", 201),
        ("api.internal.example", 201),
        ("internal.example", 201),
        ("localhost", 400),
        ("evilfeed.example", 400),
    ]:
        response = client.post("/api/posts", json={"content": "x"}, headers={**token(7), "Host": host})
        assert response.status_code == status, (host, response.json)


def test_1_the_record_endpoints_need_a_service_token_for_their_audience(app, client):
    secret = get_container(app).settings["auth.jwt-secret"]
    body = {"memberId": 7, "postId": 12, "activityType": "POST_CREATE"}
    path = "/api/member-activities/posts"
    no_audience = jwt.encode({"sub": "dailyfeed-content", "scope": RECORD_SCOPE, "exp": 2**40}, secret)
    other_audience = jwt.encode({"sub": "x", "scope": RECORD_SCOPE, "aud": "elsewhere", "exp": 2**40}, secret)
    for refused in (no_audience, other_audience, issue_admin_token(secret, 60)):
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {refused}"})
        assert response.status_code == 403, response.json
    assert (
        "audience dailyfeed-activity"
        in client.post(path, json=body, headers={"Authorization": f"Bearer {no_audience}"}).json["message"]
    )
    accepted = client.post(path, json=body, headers={"Authorization": f"Bearer {issue_service_token(secret)}"})
    assert accepted.status_code == 201, accepted.json


def test_2_no_request_value_makes_the_transport_fail_or_opens_its_breaker(unconfigured, token):
    """Twelve posts with `Host: 127.0.0.1:1` opened the breaker for everyone; here every header a proxy or a client
    might send to name a host, many times over the breaker's window, and bodies of every size."""
    app, transport, adapter = unconfigured
    db = get_container(app).db
    client = app.test_client()
    hostile = [
        {"Host": "127.0.0.1:1"},
        {"Host": "localhost:9"},
        {"X-Forwarded-Host": "127.0.0.1:1"},
        {"Forwarded": "host=127.0.0.1:1;proto=https"},
        {"X-Forwarded-Proto": "gopher"},
        {"X-Forwarded-Port": "1"},
        {"X-Original-URL": "http://127.0.0.1:1/"},
        {"Origin": "http://127.0.0.1:1"},
        {"Referer": "http://127.0.0.1:1/"},
        {"traceparent": "00-" + "f" * 32 + "-" + "1" * 16 + "-01"},
    ]
    posts = 0
    for round_ in range(3):  # 30 posts: beyond circuit.window-size and minimum-calls
        for headers in hostile:
            content = "x" * (1 + round_ * 2000)
            response = client.post("/api/posts", json={"content": content}, headers={**token(7), **headers})
            assert response.status_code == 201, response.json
            posts += 1
    assert transport.breaker.state == "closed"
    assert adapter.calls == posts and _stored(db, MEMBER_ACTIVITIES) == posts
    assert sum(_stored(db, c) for c in DEAD_LETTER_COLLECTIONS) == 0
    assert client.get("/readyz").status_code == 200


def _series(app) -> set[tuple]:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))) for s in samples(text) if s.name.startswith("dailyfeed_http_")}


def _flood(client, rng: random.Random) -> None:
    def word(n):
        return "".join(rng.choice(string.ascii_letters) for _ in range(n))

    for _ in range(40):
        client.open(f"/{word(12)}/{word(5)}", method=word(rng.randint(3, 20)).upper())  # method and path: 404
        client.open("/api/posts", method=word(rng.randint(3, 20)).upper())  # a route, an unknown method: 405
        client.get(f"/{word(30)}")  # an unknown path: 404
        client.get(f"/api/posts/{rng.randint(1, 2**63 - 1)}")  # an id: the route's template, 404
        client.get(f"/api/posts/{word(8)}")  # not an id: 404
    client.open("/api/posts", method="X" * 60_000)


def test_3_metrics_keep_their_series_under_a_flood_of_random_methods_paths_and_ids(app):
    client = app.test_client()
    _series(app)  # the scrape's own series
    _flood(client, random.Random(1))  # the first of each kind of answer adds its series
    before = _series(app)
    _flood(client, random.Random(2))
    after = _series(app)
    assert after == before
    methods = {dict(labels).get("method") for _, labels in after}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}
    assert "other" in methods
    assert len(app.test_client().get("/metrics").get_data()) < 200_000


@pytest.mark.parametrize("field", ["since", "until"])
def test_5_admin_times_past_9999_after_conversion_are_400(app, client, field):
    headers = {"Authorization": f"Bearer {issue_admin_token(get_container(app).settings['auth.jwt-secret'], 60)}"}
    for when in ("9999-12-31T23:59:59-01:00", "1970-01-01T00:30:00+01:00"):
        listed = client.get(f"/api/admin/dead-letters?{field}={when.replace('+', '%2B')}", headers=headers)
        assert listed.status_code == 400 and listed.json["message"].startswith(f"{field}:"), listed.json
        assert "outside the years 1970-9999" in listed.json["message"]
        replayed = client.post(
            "/api/admin/dead-letters/replay", json={"filter": {field: when}, "dryRun": True}, headers=headers
        )
        assert replayed.status_code == 400 and replayed.json["message"].startswith(f"{field}:"), replayed.json


def test_9_the_lone_surrogate_message_names_the_code_point(api):
    response = api.post(7, "/api/posts", json={"content": "ab\udc80"})
    assert response.status_code == 400
    assert "a lone surrogate U+DC80 at character 2" in response.json["message"]
    assert "{" not in response.json["message"]
