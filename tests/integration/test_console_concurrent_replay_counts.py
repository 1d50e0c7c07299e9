"""Issue 19 (10): twenty "replay all" calls at once (mode record) over 30 feign dead letters, on the real server.
The data was always right; the answers added up to 58 restored. Each answer counts only what its call moved."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_admin_token

from ..support.deadletters import post_event, publisher_dead_letter

pytestmark = [pytest.mark.integration, pytest.mark.mongo]

DEAD_LETTERS = 30
CALLS = 20


def test_concurrent_record_replays_count_each_dead_letter_once(server_app):
    dailyfeed = get_container(server_app)
    for n in range(DEAD_LETTERS):
        publisher_dead_letter(dailyfeed.dead_letters, post_event(n))
    headers = {"Authorization": f"Bearer {issue_admin_token(dailyfeed.settings['auth.jwt-secret'], 600)}"}

    def replay_all(_):
        response = server_app.test_client().post(
            "/api/admin/dead-letters/replay", json={"all": True, "mode": "record"}, headers=headers
        )
        assert response.status_code == 200, response.json
        return response.json["data"]

    with ThreadPoolExecutor(CALLS) as pool:
        answers = list(pool.map(replay_all, range(CALLS)))
    assert sum(a["restored"] for a in answers) == DEAD_LETTERS, [a["restored"] for a in answers]
    assert sum(a["failed"] for a in answers) == 0
    restored_keys = [d["key"] for a in answers for d in a["details"] if d["outcome"] == "restored"]
    assert len(restored_keys) == len(set(restored_keys)) == DEAD_LETTERS
    assert dailyfeed.db[MEMBER_ACTIVITIES].count_documents({}) == DEAD_LETTERS
    assert dailyfeed.db[FEIGN_DEAD_LETTERS].count_documents({"status": "completed"}) == DEAD_LETTERS
