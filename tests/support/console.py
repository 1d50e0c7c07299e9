"""The admin API as the console tier calls it."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Admin:
    """Calls the admin API with an admin token; `get`/`post` return the response, `data` unwraps success."""

    def __init__(self, app, headers):
        self.client = app.test_client()
        self.headers = headers

    def get(self, path, **kwargs):
        return self.client.get(f"/api/admin{path}", headers=self.headers, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(f"/api/admin{path}", json=json, headers=self.headers, **kwargs)

    def data(self, response):
        assert response.status_code == 200, response.json
        return response.json["data"]
