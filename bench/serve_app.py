"""The app under test, in a process of its own: create_app(...) served by dailyfeed.server.start (waitress with
threads and the activity module's own worker pool), exactly as `dailyfeed serve` wires it, with the publish path
chosen on the command line:

  --transport none    FakeTransport for both services: the content write without any publish (the baseline)
  --transport kafka   the configured Kafka transport; --listener also runs the in-app listener, as `serve` does
  --transport feign   the feign transport calling the activity pool of this same process, as `serve` does

Bench-only additions, none of which changes what the app stores: the ActivityService instance is wrapped so that
each stored batch's message keys are noted with the time the store call returned (`GET /_bench/stored?from=N`),
for the end-to-end delays. Prints `READY <url>` once serving; SIGTERM stops it like `dailyfeed serve`.

    .venv/bin/python -m bench.serve_app --transport kafka --database <db> [--listener]   (from the repository root)
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

from flask import jsonify, request

from dailyfeed import create_app, server
from dailyfeed.background import start_background, start_publication_work
from dailyfeed.config import load_settings
from dailyfeed.extension import get_container
from dailyfeed.transport.fake import FakeTransport


class StoredLog:
    """(message key, time the store call returned) of every activity this process stored."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def wrap(self, activity_service) -> None:
        record_one, record_many = activity_service.record_activity, activity_service.record_activities

        def record_activity(event):
            created = record_one(event)
            self._note([event.message_key])
            return created

        def record_activities(events):
            events = list(events)
            new = record_many(events)
            self._note([e.message_key for e in events])
            return new

        activity_service.record_activity = record_activity
        activity_service.record_activities = record_activities

    def _note(self, keys: list[str]) -> None:
        now = time.time()
        with self._lock:
            self.items.extend((key, now) for key in keys)

    def since(self, start: int) -> list[tuple[str, float]]:
        with self._lock:
            return self.items[start:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("none", "kafka", "feign"), required=True)
    parser.add_argument("--listener", action="store_true", help="run the in-app Kafka listener (kafka only)")
    parser.add_argument("--database", required=True)
    parser.add_argument("--topic-prefix", default="member-activity-")
    parser.add_argument("--group-id", default="dailyfeed-bench")
    parser.add_argument("--threads", type=int, default=None, help="default: server.threads")
    parser.add_argument(
        "--no-outbox",
        action="store_true",
        help="without the event publication registry (outbox.enabled = false): the bare write",
    )
    args = parser.parse_args()

    publish = "feign" if args.transport == "none" else args.transport
    overrides = {
        "mongo.database": args.database,
        "publish-type.post-service": publish,
        "publish-type.comment-service": publish,
        "kafka.topic.prefix": args.topic_prefix,
        "kafka.consumer.group-id": args.group_id,
    }
    if args.no_outbox:
        overrides["outbox.enabled"] = False
    stored = StoredLog()
    built = []

    def factory(activity_url: str):
        transports = None
        if args.transport == "none":
            fake = FakeTransport(kind="feign")
            transports = {"post-service": fake, "comment-service": fake}
        app = create_app({**overrides, "activity.base-url": activity_url}, transports=transports, run_background=False)
        dailyfeed = get_container(app)
        stored.wrap(dailyfeed.activity_service)  # before the listener takes its reference's methods
        if args.listener:
            start_background(dailyfeed)  # relay, date topics + the listener, as `dailyfeed serve` starts them
        else:
            start_publication_work(dailyfeed)  # the registry's completer and relay, as `dailyfeed serve` starts them

        @app.get("/_bench/stored")
        def bench_stored():
            return jsonify(stored.since(int(request.args.get("from", 0))))

        built.append(app)
        return app

    settings = load_settings()  # server.* settings, as `dailyfeed serve` reads them
    running = server.start(
        factory, host="127.0.0.1", port=0, activity_port=0, threads=args.threads or settings["server.threads"]
    )
    print(f"READY {running.url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.close()
    for app in built:
        get_container(app).close()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
