"""Fixtures shared by every tier. Settings come from config/test.toml on top of the defaults."""

from __future__ import annotations

import os

import pytest

from .support import ROOT, UNDER_CI

os.environ.setdefault("DAILYFEED_CONFIG", str(ROOT / "config" / "test.toml"))

from dailyfeed.extension import get_container  # noqa: E402
from dailyfeed.tokens import issue_member_token  # noqa: E402  (after the settings file is chosen)

from .support.apps import Apps  # noqa: E402

# Records the app's store commands from the first client on, and runs the index coverage check last.
pytest_plugins = ["tests.support.index_coverage"]


@pytest.fixture
def apps():
    """Makes apps on fresh databases (`apps.make(overrides, **create_app_kwargs)`) and closes them all afterwards."""
    made = Apps()
    yield made
    made.close()


@pytest.fixture
def app(apps):
    return apps.make()


@pytest.fixture
def dailyfeed(app):
    return get_container(app)


@pytest.fixture
def db(dailyfeed):
    return dailyfeed.db


@pytest.fixture
def dead_letters(dailyfeed):
    return dailyfeed.dead_letters


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def token(app):
    secret = get_container(app).settings["auth.jwt-secret"]

    def make(member_id: int, ttl: int = 3600) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_member_token(secret, member_id, ttl)}"}

    return make


# --- real services ---------------------------------------------------------------------------------------------
# The integration tier runs when the services' addresses are set (scripts/services.sh env prints them). Locally a
# missing server skips those tests with the reason; under CI (CI=true) it fails them.


def _service_address(variable: str, what: str, scheme: str = "") -> str:
    value = os.environ.get(variable, "")
    if not value or (scheme and not value.startswith(scheme)):
        reason = f'{what} not configured: set {variable} (make services; eval "$(scripts/services.sh env)")'
        if UNDER_CI:
            pytest.fail(f"CI needs the real services: {reason}")
        pytest.skip(reason)
    return value


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """The real MongoDB-compatible server (FerretDB), from DAILYFEED_MONGO_URI."""
    return _service_address("DAILYFEED_MONGO_URI", "MongoDB-compatible server", "mongodb")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real Kafka broker, from DAILYFEED_KAFKA_BOOTSTRAP_SERVERS."""
    return _service_address("DAILYFEED_KAFKA_BOOTSTRAP_SERVERS", "Kafka broker")


@pytest.fixture(params=["mongomock", pytest.param("ferretdb", marks=[pytest.mark.integration, pytest.mark.mongo])])
def store_uri(request) -> str:
    """Contract fixture: a store-facing test runs once on the embedded store and once on the real server."""
    if request.param == "mongomock":
        return "mongomock://"
    return request.getfixturevalue("mongo_uri")


@pytest.fixture
def store_app(store_uri, apps):
    """The app (feign to itself, in-process) on each store backend, on a database of its own."""
    return apps.make({"mongo.uri": store_uri})


@pytest.fixture(scope="module")
def private_broker(kafka_bootstrap):
    """A Kafka broker of the test module's own (tests/support/kafka.py), which fault tests may stop and start; the
    shared broker is never touched. It needs the jars `make services` resolved (DAILYFEED_SERVICES_DIR)."""
    from .support.kafka import PrivateBroker

    broker = PrivateBroker()
    if not broker.available:
        reason = f"no Kafka jars in {broker.libs} to start a private broker (make services first)"
        if UNDER_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    broker.start()
    yield broker
    broker.stop()
