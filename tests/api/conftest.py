"""API tests run through the Flask test client on BOTH store backends (mongomock and the real server): the
store-facing contract. The feign transport calls the record endpoints in-process (tests/support/wsgi.py)."""

import pytest

from dailyfeed.store import COMMENTS, COUNTERS, MEMBER_ACTIVITIES, POSTS

from ..support.content import FIRST_COMMENT_ID, FIRST_POST_ID


@pytest.fixture
def app(store_app):
    return store_app


@pytest.fixture(autouse=True)
def distinct_ids(db):
    """Posts are numbered from 31 and comments from 58, so a post id used for a comment (or a member id for
    either) finds nothing or the wrong thing instead of passing by coincidence."""
    db[COUNTERS].insert_many(
        [{"_id": POSTS, "value": FIRST_POST_ID - 1}, {"_id": COMMENTS, "value": FIRST_COMMENT_ID - 1}]
    )


@pytest.fixture
def activities(db):
    """The stored activity documents, oldest first."""

    def read(**query):
        return list(db[MEMBER_ACTIVITIES].find(query, {"_id": 0}).sort("created_at", 1))

    return read


@pytest.fixture
def api(client, token):
    """Calls as a given member: api.post(7, "/api/posts", json=...) and so on."""

    class Api:
        def __getattr__(self, method):
            def call(member_id, path, **kwargs):
                headers = dict(kwargs.pop("headers", {}))
                if member_id is not None:
                    headers.update(token(member_id))
                return getattr(client, method)(path, headers=headers, **kwargs)

            return call

    return Api()
