"""The production server: waitress with threads.

The feign transport calls the activity module's record endpoints over HTTP, and in one process those are
served by the same app. If the record calls had to wait for the worker threads that are busy making them, a
burst of writes would deadlock the server until the read timeout. So the record calls get a worker pool of their
own: a second listening socket (server.activity-port) with its own threads, to which activity.base-url points
unless it is set. The record endpoints never call out, so the two pools cannot wait on each other.

A graceful stop (`RunningServer.drain`, what `dailyfeed serve` does on SIGTERM) stops accepting on the main pool,
lets every request it has taken finish, then does the same on the activity pool (the main pool's requests may still
be making feign calls into it), and only then closes the idle connections that remain.
"""

from __future__ import annotations

import logging
import threading
import time
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

    def drain(self, deadline: float) -> bool:
        """Stop accepting new connections and wait until every request taken has been answered, the main pool first,
        until `deadline` (time.monotonic()); True when both pools were idle in time. Then call close()."""
        for server in (self.main, self.activity):
            server.trigger.pull_trigger(lambda server=server: _stop_accepting(server))
            while not _idle(server):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop accepting, close every open connection (keep-alive ones too), finish running tasks."""
        for server in (self.main, self.activity):
            server.trigger.pull_trigger(lambda server=server: _close_all(server))
        for server in (self.main, self.activity):
            server.task_dispatcher.shutdown(timeout=10)
        for thread in self.threads:
            thread.join(timeout=10)


def _stop_accepting(server) -> None:
    # Runs in the server's loop thread: the listening socket goes, the connections already open stay.
    if server.accepting:
        server.accepting = False
        server.del_channel()
        server.socket.close()


def _idle(server) -> bool:
    """No request is being read, queued, handled or sent on any connection of this server."""
    dispatcher = server.task_dispatcher
    if dispatcher.queue or dispatcher.active_count:
        return False
    for channel in list(server._map.values()):
        if (
            getattr(channel, "requests", None)
            or getattr(channel, "total_outbufs_len", 0)
            or getattr(channel, "request", None) is not None
        ):
            return False
    return True


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

    activity = create_server(
        app, host=host, port=activity_port, threads=max(2, threads // 2), ident="dailyfeed-activity"
    )
    main = create_server(app, host=host, port=port, threads=threads, ident="dailyfeed")
    holder["app"] = app_factory(bound_url(activity.effective_host, activity.effective_port))
    workers = [
        threading.Thread(target=s.run, name=f"waitress-{n}", daemon=True)
        for n, s in (("main", main), ("activity", activity))
    ]
    for worker in workers:
        worker.start()
    return RunningServer(main=main, activity=activity, threads=workers)
