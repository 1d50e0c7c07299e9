"""When the app starts the Kafka listener and the date topics, and the topic commands when Kafka is away.

Kafka here is a closed local port: nothing answers, which is exactly what these tests are about."""

from __future__ import annotations

import logging

import click
import pytest
from flask.cli import routes_command, run_command

from dailyfeed.activity.listener import ActivityListener
from dailyfeed.background import serving_under_flask_run
from dailyfeed.extension import get_container

from ..support.apps import free_port, make_app


def kafka_app(run_background, **overrides):
    config = {
        "publish-type.post-service": "kafka",
        "publish-type.comment-service": "KAFKA",
        "kafka.bootstrap-servers": f"127.0.0.1:{free_port()}",
    }
    config.update(overrides)
    return make_app(config, run_background=run_background)


def listeners(app) -> list[ActivityListener]:
    return [item for item in get_container(app).background if isinstance(item, ActivityListener)]


@pytest.mark.parametrize(
    "reload, reloader_child, serving",
    [
        (False, False, True),  # flask run --no-reload: the one process serves
        (True, False, False),  # flask run --reload, the watcher process: it never serves
        (True, True, True),  # flask run --reload, the child the watcher started: it serves
    ],
)
def test_flask_run_serves_from_one_process_only(monkeypatch, reload, reloader_child, serving):
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    if reloader_child:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    with click.Context(run_command) as ctx:
        ctx.params["reload"] = reload
        assert serving_under_flask_run() is serving


def test_other_commands_and_plain_imports_do_not_count_as_serving(monkeypatch):
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    with click.Context(routes_command):
        assert serving_under_flask_run() is False
    assert serving_under_flask_run() is False  # no command at all: a test, a WSGI import, a script


def test_an_app_built_outside_a_server_starts_no_listener():
    app = kafka_app(run_background=None)
    try:
        assert get_container(app).background == []
    finally:
        get_container(app).close()


def test_a_serving_app_on_kafka_starts_the_listener_even_when_kafka_is_down(caplog):
    caplog.set_level(logging.INFO)
    app = kafka_app(run_background=True, **{"kafka.topic.prefix": "wiring-member-activity-"})
    dailyfeed = get_container(app)
    try:
        [listener] = listeners(app)
        assert listener.running
        assert listener.options.pattern == r"^wiring\-member\-activity\-\d{8}$"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(
            "could not make sure the date topics wiring-member-activity-" in m and "dailyfeed topics ensure" in m
            for m in errors
        ), errors
    finally:
        dailyfeed.close()
    assert not listener.running


def test_a_serving_app_on_feign_only_runs_the_dead_letter_tasks_and_the_publication_registry_work():
    from dailyfeed.content.outbox import Completer, RelayWorker
    from dailyfeed.restore.tasks import TaskWorker

    app = make_app({"kafka.bootstrap-servers": f"127.0.0.1:{free_port()}"}, run_background=True)
    try:
        assert [type(item) for item in get_container(app).background] == [TaskWorker, Completer, RelayWorker]
    finally:
        get_container(app).close()
    off = make_app(
        {"kafka.bootstrap-servers": f"127.0.0.1:{free_port()}", "outbox.enabled": False}, run_background=True
    )
    try:
        assert [type(item) for item in get_container(off).background] == [TaskWorker]  # no registry work
    finally:
        get_container(off).close()


def test_one_kafka_service_is_enough_for_the_listener():
    app = kafka_app(run_background=True, **{"publish-type.comment-service": "feign"})
    try:
        assert len(listeners(app)) == 1
    finally:
        get_container(app).close()


@pytest.mark.parametrize(
    "args", [["topics", "ensure"], ["topics", "prune", "--keep-days", "3"], ["topics", "prune", "--dry-run"]]
)
def test_topic_commands_fail_with_a_message_when_kafka_is_unreachable(args):
    app = kafka_app(run_background=False)
    try:
        result = app.test_cli_runner().invoke(args=args)
    finally:
        get_container(app).close()
    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:" in result.output
