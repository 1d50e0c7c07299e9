"""The composition root: builds every service from settings, without Flask.

`bootstrap()` returns the typed Container; `create_app` (app.py) calls it and only adds blueprints and commands,
while benchmarks, the listener and the CLI jobs may call it directly. Tests override settings by their dotted
names, or replace the transports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from pymongo.database import Database

from .activity.repository import ActivityRepository, FollowRepository
from .activity.service import ActivityService
from .config import Settings, load_settings
from .content.outbox import Checkpoint, PublicationRegistry, PublicationRelay, no_checkpoint
from .content.publishing import ActivityPublisher
from .content.repository import ContentRepository
from .content.service import ContentService
from .deadletters import DeadLetterStore
from .events import Service
from .hosts import own_base_url
from .store import connect, ensure_indexes
from .transport import build_transports
from .transport.base import Transport


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class Container:
    """Everything the app, the CLI jobs and the benchmarks work with."""

    settings: Settings
    db: Database
    transports: dict[Service, Transport]
    dead_letters: DeadLetterStore
    activity_service: ActivityService
    content_service: ContentService
    publications: PublicationRegistry | None  # the event publication registry; None when outbox.enabled is false
    background: list[Stoppable] = field(default_factory=list)  # listener, relay, redrive (dailyfeed.background)
    shutting_down: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: /readyz answers 503

    def relay(self, checkpoint: Checkpoint = no_checkpoint) -> PublicationRelay:
        """A relay of this container's outstanding publications (the serving process's, the CLI's)."""
        if self.publications is None:
            raise RuntimeError("the event publication registry is off (outbox.enabled = false)")
        service = self.content_service
        return PublicationRelay(
            self.publications,
            service.repo,
            service.publisher,
            batch=self.settings["outbox.batch"],
            checkpoint=checkpoint,
        )

    def close(self) -> None:
        for item in reversed(self.background):
            item.stop()
        for transport in {id(t): t for t in self.transports.values()}.values():
            transport.close()


def bootstrap(
    overrides: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    transports: Mapping[Service, Transport] | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> Container:
    """Build the container. `overrides` change settings by their dotted names (on top of `settings`, or of the
    files and environment); `transports` (by service) replace the configured ones. The feign transport sends
    record calls to hosts.own_base_url(settings), fixed here once: no request can move it. `checkpoint` is called
    between the steps of each write (content/outbox.py: tests crash there)."""
    if settings is None:
        settings = load_settings(overrides)
    elif overrides:
        settings = settings.with_overrides(overrides)
    db = connect(settings["mongo.uri"], settings["mongo.database"])
    ensure_indexes(db)
    activity_url = own_base_url(settings)
    dead_letters = DeadLetterStore(db, lease_seconds=settings["deadletters.lease-s"])
    built = (
        {Service(name): t for name, t in transports.items()}
        if transports is not None
        else build_transports(settings, lambda: activity_url)
    )
    publications = (
        PublicationRegistry(db, grace_s=settings["outbox.grace-s"], lease_s=settings["outbox.lease-s"])
        if settings["outbox.enabled"]
        else None
    )
    content = ContentService(ContentRepository(db), ActivityPublisher(built, dead_letters), publications, checkpoint)
    return Container(
        settings=settings,
        db=db,
        transports=built,
        dead_letters=dead_letters,
        activity_service=ActivityService(ActivityRepository(db), FollowRepository(db)),
        content_service=content,
        publications=publications,
    )
