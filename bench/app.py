"""The bench's one door into the app's object graph: every section that needs the app's services in the bench
process (restore, the read path's seeding, the profiles) gets them here, from dailyfeed.bootstrap, without Flask.
"""

from __future__ import annotations

from typing import Any, Mapping

from dailyfeed.bootstrap import Container, bootstrap
from dailyfeed.events import Service
from dailyfeed.transport.base import Transport


def services(settings: Mapping[str, Any], *, transports: Mapping[Service, Transport] | None = None) -> Container:
    """Store, transports, dead letters, activity and content services from settings overrides (dotted names),
    with nothing started in the background. The caller closes it (`.close()`)."""
    return bootstrap(dict(settings), transports=transports)
