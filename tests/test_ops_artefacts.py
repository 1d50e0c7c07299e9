"""The operations artefacts that ship with the project (issue 23), checked: the Prometheus alert rules parse and pass
their unit tests in promtool's format (deploy/prometheus/alerts_test.yml), every alert has its runbook section, and
every metric a rule or a dashboard panel queries is on a running app's /metrics with the labels the query uses.

promtool is built from the Go module proxy by `scripts/services.sh promtool`, like FerretDB; where it cannot be
built the promtool tests are skipped with the reason, and under CI they fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from dailyfeed.activity.listener import ActivityListener
from dailyfeed.extension import get_container
from dailyfeed.ops import state_of
from dailyfeed.ops.sources import LagMonitor
from dailyfeed.restore.redrive import Redriver
from dailyfeed.tokens import issue_member_token
from dailyfeed.transport.lag import PartitionLag

from .support import ROOT, UNDER_CI
from .support.apps import free_port, make_app
from .support.metrics import samples

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dailyfeed.json"
RUNBOOK = ROOT / "docs" / "operating.md"
SELECTOR = re.compile(r"\b(dailyfeed_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]
    ]


def panel_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def queries() -> list[str]:
    return [rule["expr"] for rule in rules()] + panel_queries()


@pytest.fixture(scope="module")
def promtool() -> str:
    def unavailable(reason: str):
        if UNDER_CI:
            pytest.fail(f"CI checks the alert rules with promtool: {reason}")
        pytest.skip(reason)

    if shutil.which("go") is None:
        unavailable("go is not installed: promtool cannot be built (scripts/services.sh promtool)")
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), "promtool"], capture_output=True, text=True, timeout=3600
    )
    if built.returncode != 0:
        unavailable(f"scripts/services.sh promtool failed:\n{built.stdout}\n{built.stderr}")
    return built.stdout.strip().splitlines()[-1]


# The promtool tests belong to the integration tier: promtool's first build takes many minutes, and needs Go, as
# FerretDB does.
@pytest.mark.integration
@pytest.mark.promtool
@pytest.mark.timeout(3600)
@pytest.mark.parametrize(
    "args, success",
    [
        (("check", "rules", "alerts.yml"), f"SUCCESS: {len(rules())} rules found"),
        (("test", "rules", "alerts_test.yml"), "SUCCESS"),
    ],
    ids=["check-rules", "test-rules"],
)
def test_promtool_checks_the_alert_rules(promtool, args, success):
    """The rules parse (check rules) and fire as their unit tests expect (test rules)."""
    result = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert success in result.stdout


def test_every_alert_is_unit_tested_and_has_its_runbook_section():
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    headings = {line[4:].strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("### ")}
    for rule in rules():
        name = rule["alert"]
        assert name in tested, f"{name} never fires in alerts_test.yml"
        assert name in headings, f"docs/operating.md has no '### {name}' section"
        assert rule["annotations"]["runbook"] == f"docs/operating.md#{name.lower()}"


@pytest.fixture(scope="module")
def exposition():
    """A running app's /metrics with the metrics it declares: Kafka in use (a listener started against a closed
    port, the lag monitor with one partition read), the redrive, a feign publish kept as a dead letter, a request."""
    app = make_app(
        {
            "publish-type.comment-service": "kafka",
            "kafka.bootstrap-servers": f"127.0.0.1:{free_port()}",
            "activity.base-url": f"http://127.0.0.1:{free_port()}",
            "feign.retry.attempts": 1,
        }
    )
    container = get_container(app)
    listener = ActivityListener.from_settings(container.settings, container.activity_service, container.dead_letters)
    listener.start()
    container.background.append(listener)
    container.background.append(Redriver.from_container(container))
    state = state_of(app)
    state.lag = state.collector.lag = LagMonitor(
        lambda: [PartitionLag("member-activity-20261205", 0, end_offset=5, committed=2, oldest_timestamp_ms=0)], 3600
    )
    client = app.test_client()
    token = issue_member_token(container.settings["auth.jwt-secret"], 7, 600)
    assert (
        client.post("/api/posts", json={"content": "kept"}, headers={"Authorization": f"Bearer {token}"}).status_code
        == 201
    )  # the activity service is a closed port: a feign dead letter
    text = client.get("/metrics").get_data(as_text=True)
    container.close()
    return list(samples(text))


def test_every_metric_a_rule_or_a_panel_queries_is_on_metrics_with_the_labels_it_uses(exposition):
    labels: dict[str, dict[str, set[str]]] = {}
    for sample in exposition:
        for name in {sample.name, re.sub(r"_(bucket|sum|count)$", "", sample.name)}:
            found = labels.setdefault(name, {})
            for label, label_value in sample.labels.items():
                found.setdefault(label, set()).add(label_value)
    missing = []
    for query in queries():
        used = SELECTOR.findall(query)
        assert used, f"queries no dailyfeed metric: {query}"
        for name, matchers in used:
            if name not in labels:
                missing.append(f"{name} (in {query!r})")
                continue
            for label, op, wanted in MATCHER.findall(matchers):
                assert label in labels[name], f"{name} has no label {label} (in {query!r})"
                if op == "=":
                    assert wanted in labels[name][label], (
                        f"{name}{{{label}={wanted!r}}} is not on /metrics; it has {sorted(labels[name][label])}"
                    )
        available = {label for name, _ in used for label in labels.get(name, {})} | {"le", "instance"}
        for grouping in GROUPING.findall(query):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in available, f"grouping by {label}, which no metric of {query!r} has"
    assert missing == []
