"""`/healthz` (liveness), `/readyz` (readiness) and `/metrics` (Prometheus): a plain blueprint.

Both probes answer `{"status": "UP"|"DOWN", "components": {name: {"status": ..., details}}}` (the shape of Spring
Boot Actuator's health, which the original's operators know), 200 when every component is UP, 503 otherwise.

- liveness: no store round trip. DOWN when a background part that should run has died: the in-app Kafka listener
  (started by dailyfeed.background when a service publishes by Kafka) whose thread ended without being stopped.
- readiness: a write would succeed or be kept as a dead letter; DOWN from the moment the process is told to stop
  (SIGTERM to `dailyfeed serve`), while it still answers what it takes.
  `store`: the server answers `ping`.
  `deadLetters`: one acknowledged upsert of this host's document in `ops_readiness_probes` (the database takes
  writes: not read-only, not a secondary, disk not full), then an update of each dead-letter collection that
  matches nothing (the server accepts writes to that collection: a read-only role is refused there). Writing to the
  dead-letter collections themselves would leave documents in them for restores to trip over; by `_id`, both are
  single-row lookups on FerretDB v1.
  one entry per transport in use (`kafka`, `feign`): its circuit breaker not open (half-open lets a trial publish
  through, so it counts as usable); for Kafka also the producer connected: started if it was not yet, and a
  metadata request answered within min(send timeout, 2 s).
"""

from __future__ import annotations

import socket
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify
from pydantic import BaseModel, ConfigDict

from ..contract import operation
from ..extension import get_container
from ..store import DEAD_LETTER_COLLECTIONS
from ..telemetry import metrics
from .state import state_of, workers_liveness

bp = Blueprint("ops", __name__)

UP, DOWN = "UP", "DOWN"
PROBE_COLLECTION = "ops_readiness_probes"
PROBE_ID = "__readiness_probe__"  # never a dead letter's _id (those are ObjectIds)
KAFKA_CHECK_MAX_S = 2.0


def _answer(components: dict[str, dict[str, Any]]):
    ok = all(c["status"] == UP for c in components.values())
    return jsonify({"status": UP if ok else DOWN, "components": components}), 200 if ok else 503


class Component(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["UP", "DOWN"]


class ProbeReport(BaseModel):
    """UP (200) when every component is UP, DOWN (503) otherwise; each component says why."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["UP", "DOWN"]
    components: dict[str, Component]


PROBE = {"response": ProbeReport, "envelope": False, "tags": ("operating",)}


@bp.get("/healthz")
@operation(uses_store=False, **PROBE)
def healthz():
    """Liveness: the process can serve (no store round trip); DOWN when a background part that should run died."""
    return _answer(liveness(get_container()))


@bp.get("/readyz")
@operation(**PROBE)
def readyz():
    """Readiness: a write now would be stored or kept as a dead letter (store, dead letters, transports)."""
    return _answer(readiness(get_container()))


@bp.get("/metrics")
@operation(media_type="text/plain", uses_store=False, errors=(404,), tags=("operating",))
def metrics_endpoint():
    """Prometheus text format, every metric prefixed dailyfeed_ (404 when metrics.enabled is false)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not metrics.enabled():
        return Response("metrics are off (metrics.enabled = false)\n", status=404, mimetype="text/plain")
    return Response(generate_latest(state_of(current_app).registry), mimetype=CONTENT_TYPE_LATEST)


# --- the checks --------------------------------------------------------------------------------------------------


def liveness(container: Any) -> dict[str, dict[str, Any]]:
    """The process, and each background worker that reports its own liveness (the Kafka listener)."""
    components: dict[str, dict[str, Any]] = {"process": {"status": UP}, **workers_liveness(container)}
    if "listener" not in components and container.settings.kafka_in_use:
        components["listener"] = {"status": UP, "note": "not run in this process (dailyfeed listen runs it)"}
    return components


def readiness(container: Any) -> dict[str, dict[str, Any]]:
    if container.shutting_down.is_set():  # first, so that a load balancer stops sending before the server stops
        return {"process": {"status": DOWN, "reason": "shutting down: answering the requests already taken"}}
    components = {"store": _store(container.db)}
    components["deadLetters"] = (
        _dead_letters(container.db)
        if components["store"]["status"] == UP
        else {"status": DOWN, "reason": "the store does not answer"}
    )
    by_kind: dict[str, tuple[Any, list[str]]] = {}
    for service, transport in container.transports.items():
        by_kind.setdefault(str(transport.kind), (transport, []))[1].append(str(service))
    for kind, (transport, services) in by_kind.items():
        components[kind] = {**_transport(transport), "services": services}
    return components


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _store(db: Any) -> dict[str, Any]:
    try:
        db.command("ping")
    except Exception as exc:
        return {"status": DOWN, "error": _failure(exc)}
    return {"status": UP}


def _dead_letters(db: Any) -> dict[str, Any]:
    from ..events import utcnow

    now = utcnow()
    try:
        db[PROBE_COLLECTION].update_one({"_id": socket.gethostname()}, {"$set": {"at": now}}, upsert=True)
        for name in DEAD_LETTER_COLLECTIONS:
            db[name].update_one({"_id": PROBE_ID}, {"$set": {"readiness_probe_at": now}})
    except Exception as exc:
        return {"status": DOWN, "error": _failure(exc)}
    return {"status": UP, "collections": list(DEAD_LETTER_COLLECTIONS)}


def _transport(transport: Any) -> dict[str, Any]:
    breaker = getattr(transport, "breaker", None)
    result: dict[str, Any] = {"status": UP}
    if breaker is not None:
        result["breaker"] = breaker.state
        if result["breaker"] == breaker.OPEN:
            result["status"] = DOWN
            result["reason"] = "circuit breaker open after repeated failures: publishes fail fast"
            return result
    check = getattr(transport, "check_connected", None)  # the Kafka transport: is its producer connected?
    if check is not None:
        try:
            check(min(KAFKA_CHECK_MAX_S, getattr(transport, "send_timeout_s", KAFKA_CHECK_MAX_S)))
        except Exception as exc:
            result.update(status=DOWN, producer="not connected", error=_failure(exc))
        else:
            result["producer"] = "connected"
    return result
