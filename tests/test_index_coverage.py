"""Every query shape the app sent during this session is served by an index declared in `store.ensure_indexes`
(the rule and how commands are recorded: tests/support/index_coverage.py). It runs after every other test and
checks what they sent: the FerretDB runs of the store-contract tests (api, restore, listener) and the integration
tier. Shapes left unindexed on purpose are listed below, each with its reason."""

from __future__ import annotations

import pytest

from dailyfeed.store import AUDIT, DEAD_LETTER_COLLECTIONS, EVENT_PUBLICATIONS, OUTBOX_WRITERS

from .support import UNDER_CI
from .support.index_coverage import MARKER, RECORDER, declared_indexes, indexes_of, serves

pytestmark = [pytest.mark.integration, pytest.mark.mongo, getattr(pytest.mark, MARKER)]

_ACROSS_STATUSES = (
    "`dailyfeed deadletters list` without --status: an operator's command, run by hand, that reads at "
    "most --limit dead letters and counts the rest. Indexes for listings across every status would be "
    "written with every dead letter, and dead letters are written exactly when something is failing"
)

_KEY_PREFIX = (
    "A key-prefix filter (`--key`/keyPrefix), typed by an operator to find a few dead letters: it is a "
    "range on the unique message_key index where it is the only filter, and combined with a status or "
    "an order it walks the status (or oldest-first) index and tests the key, at most a page or a batch "
    "of matches at a time"
)

_GROUP = (
    "A failure group as a filter (`group`: an error type and patterns of the message and topic, acted on or "
    "listed by an operator): it walks the error-type index and tests the patterns, at most a page or a batch "
    "of matches at a time. An index on the message itself would be as large as the messages and would be "
    "written with every dead letter, exactly when something is failing"
)

# (collection, shape as printed) -> why no index serves it, on purpose. The one place for such exceptions.
UNINDEXED: dict[tuple[str, str], str] = {
    (EVENT_PUBLICATIONS, "scan"): (
        "the owed events' count and oldest (`dailyfeed outbox stats`, /metrics, the "
        "console): the collection holds only what is owed right now (a completed "
        "publication is deleted), so the scan reads those few"
    ),
    (OUTBOX_WRITERS, "scan"): (
        "the relay's pass and the owed events' count read every writer's statement: one small document per "
        "serving process (a dead one's goes once nothing it wrote is owed)"
    ),
    **{
        (name, shape): f"{what}. {_ACROSS_STATUSES}"
        for name in DEAD_LETTER_COLLECTIONS
        for shape, what in (("scan", "the total of an unfiltered list"),)
    },
    **{
        (name, shape): f"{what}. {_KEY_PREFIX}"
        for name in DEAD_LETTER_COLLECTIONS
        for shape, what in (
            ("eq(status) range(message_key)", "how many of one status start with a key prefix"),
            ("sort(created_at-, _id-) range(message_key)", "the console's list by key prefix, newest first"),
            ("eq(status) sort(created_at, _id) range(message_key)", "a restore or bulk action by key prefix"),
            ("eq(status) sort(created_at, _id) range(created_at, message_key)", "the same, past its first batch"),
            ("eq(created_at, status) sort(created_at, _id) range(_id, message_key)", "the same, within one instant"),
        )
    },
    **{
        (name, shape): f"{what}. {_GROUP}"
        for name in DEAD_LETTER_COLLECTIONS
        for shape, what in (
            ("eq(error.type) range(error.message, topic)", "the count of a group's dead letters"),
            ("eq(error.type, status) range(error.message, topic)", "the count of those an action takes"),
            ("eq(error.type) sort(created_at-, _id-) range(error.message, topic)", "the list filtered by a group"),
            ("eq(error.type, status) sort(created_at, _id) range(error.message, topic)", "an action on a group"),
            (
                "eq(error.type, status) sort(created_at, _id) range(created_at, error.message, topic)",
                "the same, past its first batch",
            ),
            (
                "eq(created_at, error.type, status) sort(created_at, _id) range(_id, error.message, topic)",
                "the same, within one instant",
            ),
        )
    },
    (AUDIT, "scan"): "the total of the unfiltered audit trail (the page and GET /api/admin/audit): a count of a "
    "collection an operator reads a page of at a time",
}


def test_every_query_shape_the_app_sent_is_served_by_a_declared_index(mongo_uri):
    if not RECORDER.commands:
        message = "no store command of the app was recorded: run this with the store-contract tests (pytest tests)"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    indexes = declared_indexes()
    unserved = []
    for (collection, shape), seen in sorted(RECORDER.shapes.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if (collection, str(shape)) in UNINDEXED:
            continue
        candidates = indexes_of(indexes, collection)
        if not any(serves(index, shape) for index in candidates):
            origins = "\n".join(f"        {origin} x{n}" for origin, n in sorted(seen.origins.items()))
            declared = "\n".join(f"        {index}" for index in candidates) or "        (none)"
            unserved.append(
                f"{collection}: {shape}  ({seen.count} commands)\n      sent by:\n{origins}\n"
                f"      checked against:\n{declared}"
            )
    assert not unserved, (
        f"{len(unserved)} query shape(s) of the app are served by no index of "
        "store.ensure_indexes (add the index, change the query, or list the shape in UNINDEXED "
        "with the reason):\n  " + "\n  ".join(unserved)
    )
