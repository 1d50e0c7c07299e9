"""A requests adapter that answers from a WSGI app in-process: the feign transport's real code (retries,
statuses, circuit breaker) runs against the real record endpoints, only the socket is left out."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


class WsgiAdapter(BaseAdapter):
    def __init__(self, app):
        super().__init__()
        self.app = app
        self.calls = 0

    def send(self, request, **kwargs):
        self.calls += 1
        url = urlsplit(request.url)
        path = url.path + (f"?{url.query}" if url.query else "")
        answer = self.app.test_client().open(
            path, method=request.method, headers=dict(request.headers), data=request.body
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers = CaseInsensitiveDict(answer.headers)
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass
