"""A small closed-loop HTTP load generator: `concurrency` threads, each with its own keep-alive http.client
connection, send `n` requests between them as fast as the server answers; and a one-connection Client for
timing single requests."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit


@dataclass
class Result:
    sent_at: float  # time.time() when the request was sent
    latency_s: float
    status: int
    body: dict | None


def post_many(
    url: str | list[str],
    path: str,
    n: int,
    concurrency: int,
    headers_for: Callable[[int], dict],
    body_for: Callable[[int], dict],
    timeout: float = 60.0,
) -> tuple[list[Result], float]:
    """POST n requests; returns the results (in request order) and the wall time from first send to last answer.
    Given several URLs (app processes), the client threads are spread over them in turn."""
    urls = [url] if isinstance(url, str) else list(url)
    results: list[Result | None] = [None] * n
    counter = itertools.count()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        parts = urlsplit(urls[k % len(urls)])
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            while True:
                i = next(counter)
                if i >= n:
                    return
                payload = json.dumps(body_for(i)).encode()
                headers = {"Content-Type": "application/json", **headers_for(i)}
                sent_wall, started = time.time(), time.perf_counter()
                try:
                    conn.request("POST", path, body=payload, headers=headers)
                    response = conn.getresponse()
                    raw = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                    results[i] = Result(sent_wall, time.perf_counter() - started, 0, None)
                    continue
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                results[i] = Result(sent_wall, time.perf_counter() - started, status, body)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,), name=f"load-{k}", daemon=True) for k in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return [r for r in results if r is not None], elapsed


def get_json(url: str, timeout: float = 30.0):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return json.loads(response.read())
    finally:
        conn.close()


class Client:
    """One keep-alive connection for timing requests one at a time (a reconnect is not timed as a request)."""

    def __init__(self, url: str, timeout: float = 120.0):
        parts = urlsplit(url)
        self._address = (parts.hostname, parts.port)
        self.timeout = timeout
        self._conn = http.client.HTTPConnection(*self._address, timeout=timeout)

    def get(self, path: str, headers: dict | None = None) -> Result:
        sent_wall, started = time.time(), time.perf_counter()
        try:
            self._conn.request("GET", path, headers=headers or {})
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = http.client.HTTPConnection(*self._address, timeout=self.timeout)
            return Result(sent_wall, time.perf_counter() - started, 0, None)
        latency = time.perf_counter() - started
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return Result(sent_wall, latency, response.status, body)

    def close(self) -> None:
        self._conn.close()
