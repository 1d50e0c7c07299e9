"""The production server: waitress with threads.

The feign transport calls the activity module's record endpoints over HTTP, and in one process those are
served by the same app. If the record calls had to wait for the worker threads that are busy making them, a
burst of writes would deadlock the server until the read timeout. So the record calls get a worker pool of their
own: a second listening socket (server.activity-port) with its own threads, to which activity.base-url points
unless it is set. The record endpoints never call out, so the two pools cannot wait on each other.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Flask
from waitress.server import create_server

from .hosts import bound_url

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    main: object
    activity: object
    threads: list[threading.Thread]

    @property
    def url(self) -> str:
        return f"http://{self.main.effective_host}:{self.main.effective_port}"

    @property
    def activity_url(self) -> str:
        return f"http://{self.activity.effective_host}:{self.activity.effective_port}"

    def close(self) -> None:
        """Stop accepting, close every open connection (keep-alive ones too), finish running tasks."""
        for server in (self.main, self.activity):
            server.trigger.pull_trigger(lambda server=server: _close_all(server))
        for server in (self.main, self.activity):
            server.task_dispatcher.shutdown(timeout=10)
        for thread in self.threads:
            thread.join(timeout=10)


def _close_all(server) -> None:
    # Runs in the server's own loop thread (through its trigger); an empty map ends server.run().
    for dispatcher in list(server._map.values()):
        dispatcher.close()


def start(app_factory, *, host: str, port: int, activity_port: int, threads: int) -> RunningServer:
    """Start both servers in background threads. `app_factory(activity_url)` builds the app once the activity
    pool's address is known."""
    holder: dict[str, Flask] = {}

    def app(environ, start_response):
        return holder["app"](environ, start_response)

    activity = create_server(app, host=host, port=activity_port, threads=max(2, threads // 2),
                             ident="dailyfeed-activity")
    main = create_server(app, host=host, port=port, threads=threads, ident="dailyfeed")
    holder["app"] = app_factory(bound_url(activity.effective_host, activity.effective_port))
    workers = [threading.Thread(target=s.run, name=f"waitress-{n}", daemon=True)
               for n, s in (("main", main), ("activity", activity))]
    for worker in workers:
        worker.start()
    return RunningServer(main=main, activity=activity, threads=workers)
