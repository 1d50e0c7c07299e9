"""Dead letters: where an activity that could not be delivered or stored is kept until it is restored.

    model.py    the vocabulary: statuses, collections, the error kept, the event a dead letter holds
    store.py    DeadLetterStore: keeping a failure, handing off; with the parts below. The write path is typed
                against its one-method sinks (PublisherDeadLetterSink, ListenerDeadLetterSink)
    claims.py   the claim/lease protocol that lets restores (CLI and console) run at once
    queries.py  the read side: selections, lists, lookups, stats, the console's overview
    bulk.py     bulk actions on a selection: discard, re-queue failed ones, purge completed ones

The write path (content publishing, the Kafka listener) imports this package; the restore jobs build on it, never
the reverse.
"""

from .bulk import BulkResult, PurgeResult
from .claims import MAX_UPDATE, new_claim_token
from .model import (
    LISTENER_DEAD_LETTERS,
    PUBLISHER_COLLECTIONS,
    PUBLISHER_DEAD_LETTERS,
    SHORT_NAMES,
    DeadLetterStoreError,
    Status,
    age_text,
    dead_letter_event,
    error_info,
)
from .queries import DeadLetterStats, Overview, Selection, parse_when
from .store import DeadLetterStore, ListenerDeadLetterSink, PublisherDeadLetterSink

__all__ = [
    "BulkResult",
    "DeadLetterStats",
    "DeadLetterStore",
    "DeadLetterStoreError",
    "LISTENER_DEAD_LETTERS",
    "ListenerDeadLetterSink",
    "MAX_UPDATE",
    "Overview",
    "PUBLISHER_COLLECTIONS",
    "PUBLISHER_DEAD_LETTERS",
    "PublisherDeadLetterSink",
    "PurgeResult",
    "SHORT_NAMES",
    "Selection",
    "Status",
    "age_text",
    "dead_letter_event",
    "error_info",
    "new_claim_token",
    "parse_when",
]
