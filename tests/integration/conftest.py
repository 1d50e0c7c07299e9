"""Fixtures of the integration tier: apps on the real broker and the real MongoDB-compatible server."""

import pytest

from ..support.apps import make_app
from ..support.kafka import KafkaApps


@pytest.fixture
def kafka_apps(kafka_bootstrap, mongo_uri):
    """Apps that publish by Kafka on the shared broker, each with its own topics, group and database."""
    apps = KafkaApps(make_app, kafka_bootstrap, mongo_uri)
    yield apps
    apps.close()


@pytest.fixture
def server_app(mongo_uri, apps):
    """An app (feign to itself) on the real MongoDB-compatible server, on a database of its own."""
    return apps.make({"mongo.uri": mongo_uri})
