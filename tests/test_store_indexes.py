"""store.ensure_indexes on both store backends: it can run on every start, and it replaces the indexes an earlier
version declared under a name that now has more keys."""

from __future__ import annotations

import uuid

from dailyfeed.store import REPLACED_INDEXES, connect, ensure_indexes, forget_mock


def test_ensure_indexes_replaces_an_earlier_versions_indexes_and_can_run_again(store_uri):
    uri = store_uri if store_uri.startswith("mongodb") else f"mongomock://{uuid.uuid4().hex}"
    db = connect(uri, f"test_{uuid.uuid4().hex[:12]}")
    try:
        for collection, names in REPLACED_INDEXES.items():
            for name in names:
                db[collection].create_index([(f"earlier_{name}", 1)], name=name)
        ensure_indexes(db)
        ensure_indexes(db)
        for collection, names in REPLACED_INDEXES.items():
            present = db[collection].index_information()
            assert not set(names) & set(present), f"{collection} still has {set(names) & set(present)}"
            assert len(present) > 1  # the indexes that replace them are there
    finally:
        if uri.startswith("mongodb"):
            db.client.drop_database(db.name)
            db.client.close()
        else:
            forget_mock(uri)
