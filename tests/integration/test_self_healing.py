"""Self-healing against the real failure (issue 23), on a private broker that the tests freeze with SIGSTOP (a hung
broker: its sockets take bytes and nothing answers) and thaw again:

- the listener's commit hangs on the frozen broker: /healthz is DOWN once the batch has been in hand longer than
  kafka.consumer.consume-ttl-s, and UP again after the thaw;
- two `dailyfeed serve` processes keep the writes of the outage as dead letters and, once the broker is thawed,
  redrive them by themselves: every event is recorded once, each dead letter redriven by one of them only.

And the time lag, on the shared broker, against records of known timestamps."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
import requests
from pymongo import MongoClient

from dailyfeed.config import load_settings
from dailyfeed.extension import get_container
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_member_token
from dailyfeed.transport.lag import read_consumer_lag

from ..support import ROOT
from ..support.apps import free_port, make_app
from ..support.kafka import Api, KafkaApps, make_topics, produce, run_async, wait_until
from ..support.metrics import total, value
from ..support.processes import start_server, stop_group

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]


@pytest.fixture
def frozen_apps(private_broker, mongo_uri):
    apps = KafkaApps(make_app, private_broker.bootstrap, mongo_uri)
    yield apps
    private_broker.thaw()  # whatever the test did: the next one gets a broker that answers
    apps.close()


def test_a_commit_hanging_on_a_frozen_broker_is_down_on_healthz_after_the_consume_ttl_and_up_after_the_thaw(
    private_broker, frozen_apps
):
    app = frozen_apps.app(**{"kafka.consumer.consume-ttl-s": 3.0})
    client = app.test_client()
    service = get_container(app).activity_service
    record_activities = service.record_activities
    froze = threading.Event()

    def store_then_freeze(events):  # the batch is stored; its commit goes to a broker that no longer answers
        stored = record_activities(events)
        if not froze.is_set():
            private_broker.freeze()
            froze.set()
        return stored

    service.record_activities = store_then_freeze
    assert Api(app).post(7, "/api/posts", json={"content": "the last before the freeze"}).status_code == 201
    assert froze.wait(60), "the listener never stored the post"
    assert client.get("/healthz").status_code == 200  # a batch in hand, for less than the consume TTL

    down = wait_until(
        lambda: (lambda r: r if r.status_code == 503 else None)(client.get("/healthz")),
        15,
        0.2,
        "/healthz DOWN while the commit hangs",
    )
    listener = down.json["components"]["listener"]
    assert listener["status"] == "DOWN" and "one batch has been processing for" in listener["reason"]
    assert down.json["components"]["process"]["status"] == "UP"

    private_broker.thaw()
    wait_until(lambda: client.get("/healthz").status_code == 200, 120, 0.5, "UP again once the commit went through")


def test_the_time_lag_is_the_age_of_the_oldest_record_waiting_on_each_partition(kafka_apps, kafka_bootstrap):
    app = kafka_apps.app(run_background=False)
    settings = get_container(app).settings
    topic = f"{settings['kafka.topic.prefix']}20261205"
    make_topics(kafka_bootstrap, [topic], partitions=3)
    now_ms = int(time.time() * 1000)
    ages = {0: [3600, 1800, 60], 1: [120]}  # seconds before now; partition 2 gets nothing
    produce(
        kafka_bootstrap,
        [
            {"topic": topic, "partition": p, "value": {"n": n}, "timestamp_ms": now_ms - age * 1000}
            for p, seconds in ages.items()
            for n, age in enumerate(seconds)
        ],
    )
    commit_offsets(kafka_bootstrap, settings["kafka.consumer.group-id"], topic, {0: 1})  # the first one is done

    lags = {item.partition: item for item in read_consumer_lag(settings) if item.topic == topic}
    assert {p: item.lag for p, item in lags.items()} == {0: 2, 1: 1, 2: 0}
    read_at = time.time()
    assert {p: round(item.lag_seconds(read_at) / 10) * 10 for p, item in lags.items()} == {0: 1800, 1: 120, 2: 0}
    assert lags[0].oldest_timestamp_ms == now_ms - 1800 * 1000  # the record's own timestamp, to the millisecond

    text = app.test_client().get("/metrics").get_data(as_text=True)
    seconds = value(text, "dailyfeed_listener_consumer_lag_seconds", topic=topic, partition="0")
    assert 1800 <= seconds < 1900
    assert value(text, "dailyfeed_listener_consumer_lag_seconds", topic=topic, partition="2") == 0


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def commit():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = {TopicPartition(topic, p): offset for p, offset in offsets.items()}
            consumer.assign(list(partitions))
            await consumer.commit(partitions)
        finally:
            await consumer.stop()

    run_async(commit)


# --- two serving processes redrive after the thaw ----------------------------------------------------------------


def test_two_serving_processes_redrive_the_outages_dead_letters_after_the_thaw_each_event_once(
    tmp_path, private_broker, mongo_uri
):
    tag = uuid.uuid4().hex[:8]
    database = f"redrive_{tag}"
    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "PYTHONUNBUFFERED": "1",
        "DAILYFEED_MONGO_URI": mongo_uri,
        "DAILYFEED_MONGO_DATABASE": database,
        "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
        "DAILYFEED_KAFKA_TOPIC_PREFIX": f"t{tag}-member-activity-",
        "DAILYFEED_KAFKA_CONSUMER_GROUP_ID": f"g{tag}",
        "DAILYFEED_PUBLISH_TYPE_POST_SERVICE": "kafka",
        "DAILYFEED_PUBLISH_TYPE_COMMENT_SERVICE": "kafka",
        "DAILYFEED_KAFKA_PRODUCER_SEND_TIMEOUT_MS": "1000",
        "DAILYFEED_REDRIVE_ENABLED": "true",
        "DAILYFEED_REDRIVE_INTERVAL_S": "1.0",
        "DAILYFEED_REDRIVE_BACKOFF_MAX_S": "4.0",
        "DAILYFEED_REDRIVE_RATE": "50",
        "DAILYFEED_METRICS_DEADLETTERS_CACHE_S": "0",
    }
    token = issue_member_token(load_settings()["auth.jwt-secret"], 7, 600)
    servers: list[tuple] = []
    store = MongoClient(mongo_uri)[database]
    try:
        for name in ("first", "second"):
            port, log = free_port(), tmp_path / f"{name}.log"
            servers.append(
                (
                    start_server(
                        ["dailyfeed", "serve"],
                        port,
                        cwd=tmp_path,
                        log=log,
                        timeout=90,
                        env={**env, "DAILYFEED_SERVER_ACTIVITY_PORT": str(free_port())},
                    ),
                    f"http://127.0.0.1:{port}",
                    log,
                )
            )

        def write(base: str, text: str) -> dict:
            answer = requests.post(
                f"{base}/api/posts", json={"content": text}, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 201, answer.text
            return answer.json()["data"]

        for n, (_, base, _) in enumerate(servers):
            write(base, f"before {n}")  # each producer is connected

        private_broker.freeze()
        during = [write(base, f"during {n}") for n in range(3) for _, base, _ in servers]
        pending = store[KAFKA_PUBLISHER_DEAD_LETTERS].find({"status": "pending"})
        keys = sorted(doc["message_key"] for doc in pending)
        assert len(keys) == len(during) == 6  # every write of the outage is kept, none lost
        time.sleep(3)  # a few redrive intervals: nothing is redriven while the broker does not answer
        assert store[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "pending"}) == 6

        private_broker.thaw()  # and no command is run
        wait_until(
            lambda: store[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "completed"}) == 6,
            120,
            0.5,
            "every dead letter redriven",
        )
        recorded = wait_until(
            lambda: (lambda docs: docs if len(docs) == 8 else None)(
                list(store[MEMBER_ACTIVITIES].find({}, {"message_key": 1, "post_id": 1}))
            ),
            120,
            0.5,
            "the listeners record the redriven events",
        )
        assert {d["id"] for d in during} <= {d["post_id"] for d in recorded}
        assert set(keys) <= {d["message_key"] for d in recorded}  # 8 documents, 8 keys: each event recorded once

        redriven = [
            total(
                requests.get(f"{base}/metrics", timeout=10).text,
                "dailyfeed_restore_dead_letters_total",
                job="redrive",
                outcome="restored",
            )
            for _, base, _ in servers
        ]
        assert sum(redriven) == 6, redriven  # each dead letter republished by one process only
        for doc in store[KAFKA_PUBLISHER_DEAD_LETTERS].find():
            assert doc["status"] == "completed" and doc.get("completed_at") is not None
    finally:
        private_broker.thaw()
        for process, _, _ in servers:
            if process.poll() is None:
                stop_group(process, timeout=30)
        store.client.drop_database(database)
        store.client.close()
    logs = "".join(log.read_text() for _, _, log in servers)
    assert "the kafka transport answers again" in logs, logs[-4000:]
