"""The dead-letter actions, one module for every surface: the CLI (`deadletters discard | retry`), the admin API
and the console page all call these, so the rules are written once: a bulk action refuses an empty selection
unless asked for all; a replay takes pending dead letters through the restore job of their collection; a discard
past its dry run must confirm the count the dry run answered.

Each action has a dry run that changes nothing and answers the count it would act on. Answers are ActionAnswer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from ..deadletters import LISTENER_DEAD_LETTERS, PUBLISHER_DEAD_LETTERS, SHORT_NAMES, Selection, Status, audit
from ..deadletters.bulk import DISCARDABLE, REQUEUEABLE, UNDISCARDABLE, PurgeResult
from ..errors import Conflict, InvalidInput
from ..events import utcnow
from .jobs import ListenerRestore, Mode, Outcome, PublisherRestore, RecordResult, RestoreJob, RestoreOptions, Summary

if TYPE_CHECKING:
    from ..bootstrap import Container

DETAILS_SHOWN = 100  # per-dead-letter lines an action answers with
#: `expected` of a discard whose count was confirmed when its task started: each chunk acts on what is left
CONFIRMED = -1


class ReplayMode:
    REPUBLISH = "republish"  # publisher dead letters through their transport (restore-publisher --mode republish)
    RECORD = "record"  # hand off to the listener side and record here (restore-publisher --mode handoff, then
    # restore-listener): for when the transport is still down, e.g. on the embedded store
    ALL = (REPUBLISH, RECORD)


@dataclass
class ActionAnswer:
    action: str
    dry_run: bool
    counts: dict[str, int]
    selection: str
    details: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dryRun": self.dry_run,
            **self.counts,
            "selection": self.selection,
            "details": self.details,
        }

    @property
    def matching(self) -> int:
        """What the dry run found to act on."""
        return self.counts.get("matching", sum(self.counts.get(k, 0) for k in ("restored", "skipped", "failed")))

    @property
    def done(self) -> int:
        """What the action changed (restored, discarded, re-queued, undone)."""
        return sum(self.counts.get(k, 0) for k in ("restored", "discarded", "requeued", "undone"))


def check_bulk(selection: Selection, everything: bool) -> None:
    """Bulk actions refuse an empty filter unless asked for all."""
    if selection.is_empty and not everything:
        raise InvalidInput(
            "no filter and no ids: this would act on every dead letter; give a filter or ids, "
            'or ask for all explicitly ("all": true)'
        )


def restore_jobs(
    container: Container, selection: Selection, *, mode: str = ReplayMode.REPUBLISH, limit: int | None = None
) -> list[RestoreJob]:
    """The restore job of each side the selection takes: publisher dead letters republished (or handed off, for
    a "record" replay), listener dead letters recorded."""
    options = RestoreOptions(selection=selection, limit=limit, batch_size=min(50, limit) if limit else 50)
    jobs: list[RestoreJob] = []
    if selection.of(PUBLISHER_DEAD_LETTERS):
        jobs.append(
            PublisherRestore(
                container.dead_letters,
                container.transports,
                options,
                mode=Mode.HANDOFF if mode == ReplayMode.RECORD else Mode.REPUBLISH,
            )
        )
    if selection.of(LISTENER_DEAD_LETTERS):
        jobs.append(ListenerRestore(container.dead_letters, container.activity_service, options))
    return jobs


def check_replay(selection: Selection, mode: str) -> None:
    if mode not in ReplayMode.ALL:
        raise InvalidInput(f"mode must be one of {', '.join(ReplayMode.ALL)}, got {mode!r}")
    if selection.status not in (None, Status.PENDING):
        raise InvalidInput("a replay takes pending dead letters; re-queue failed ones first")


def replay(
    container: Container,
    selection: Selection,
    *,
    dry_run: bool,
    mode: str = ReplayMode.REPUBLISH,
    limit: int | None = None,
    report: Callable[[RecordResult], None] | None = None,
) -> ActionAnswer:
    """Restore the pending dead letters that match, through the restore jobs (their claims keep a CLI restore
    running at once off the same dead letters). A dry run changes nothing and says what a replay would do."""
    check_replay(selection, mode)
    summary = Summary()
    details: list[dict[str, str]] = []

    def noted(result: RecordResult) -> None:
        if len(details) < DETAILS_SHOWN:
            details.append(
                {
                    "outcome": result.outcome.value,
                    "collection": SHORT_NAMES.get(result.collection, result.collection),
                    "key": result.key,
                    "detail": result.detail,
                }
            )
        if report is not None:
            report(result)

    for job in restore_jobs(container, selection, mode=mode, limit=limit):
        if dry_run:
            summary.merge(job.preview(report=noted))
        elif isinstance(job, PublisherRestore) and job.mode is Mode.HANDOFF:
            summary.merge(_hand_off_and_record(container, job, noted))
        else:
            summary.merge(job.run(report=noted))
    return ActionAnswer(
        "replay",
        dry_run,
        {"restored": summary.restored, "skipped": summary.skipped, "failed": summary.failed},
        selection.described(),
        details,
    )


def _hand_off_and_record(container: Container, job: PublisherRestore, report) -> Summary:
    """A "record" replay: hand the publisher dead letters off to the listener side, then record those copies
    here. A copy that cannot be recorded stays a pending listener dead letter with the reason, never lost.

    The answer counts what this call moved: an activity is "restored" by the call that recorded it. A copy this
    call handed off but another replay running at once recorded first counts there, and here as skipped (so that
    concurrent replays add up to the dead letters there were, not more)."""
    handed: list[str] = []
    summary = Summary()

    def handed_off(result: RecordResult) -> None:
        if result.outcome is Outcome.RESTORED:
            handed.append(result.key)
        else:
            summary.add(result)
            report(result)

    job.run(report=handed_off)
    if handed:
        settled: set[str] = set()

        def recorded(result: RecordResult) -> None:
            settled.add(result.key)
            report(result)

        summary.merge(
            ListenerRestore(
                container.dead_letters,
                container.activity_service,
                RestoreOptions(selection=Selection(collections=LISTENER_DEAD_LETTERS, keys=tuple(handed))),
            ).run(report=recorded)
        )
        for key in handed:
            if key not in settled:
                result = RecordResult(
                    Outcome.SKIPPED,
                    LISTENER_DEAD_LETTERS[0],
                    key,
                    "handed off here, recorded by another restore running at once",
                )
                summary.add(result)
                report(result)
    return summary


def discard(
    container: Container, selection: Selection, *, dry_run: bool, expected: int | None, limit: int | None = None
) -> ActionAnswer:
    """Discard the pending or failed dead letters that match. Past a dry run, `expected` must be the count the
    dry run answered (what the operator confirmed): a different count now is a 409, and nothing is changed."""
    matching = container.dead_letters.count(selection, DISCARDABLE)
    if dry_run:
        return ActionAnswer("discard", True, {"matching": matching}, selection.described())
    if expected is None:
        raise InvalidInput("expectedCount is required: the count a dry run answered, as confirmed")
    if expected != CONFIRMED and expected != matching:
        raise Conflict(
            f"the selection now matches {matching} dead letters to discard, not {expected}; "
            "look again and confirm the new count"
        )
    done = container.dead_letters.discard_matching(selection, limit=limit)
    return ActionAnswer(
        "discard", False, {"discarded": done.done, "skipped": done.skipped, "failed": 0}, selection.described()
    )


def requeue(container: Container, selection: Selection, *, dry_run: bool, limit: int | None = None) -> ActionAnswer:
    """Put the failed dead letters that match back to pending (their error and attempts stay)."""
    if dry_run:
        return ActionAnswer(
            "requeue", True, {"matching": container.dead_letters.count(selection, REQUEUEABLE)}, selection.described()
        )
    done = container.dead_letters.requeue_matching(selection, limit=limit)
    return ActionAnswer(
        "requeue", False, {"requeued": done.done, "skipped": done.skipped, "failed": 0}, selection.described()
    )


def undo_discard(
    container: Container, selection: Selection, *, dry_run: bool, limit: int | None = None
) -> ActionAnswer:
    """Put discarded dead letters that are still kept back to pending (a discard undone)."""
    if dry_run:
        return ActionAnswer(
            "undiscard",
            True,
            {"matching": container.dead_letters.count(selection, UNDISCARDABLE)},
            selection.described(),
        )
    done = container.dead_letters.undiscard_matching(selection, limit=limit)
    return ActionAnswer(
        "undiscard", False, {"undone": done.done, "skipped": done.skipped, "failed": 0}, selection.described()
    )


#: every action by name, called alike: (container, selection, dry_run, options) -> ActionAnswer
ACTIONS: dict[str, Callable[..., ActionAnswer]] = {
    "replay": lambda c, s, dry_run, o: replay(
        c, s, dry_run=dry_run, mode=o.get("mode") or ReplayMode.REPUBLISH, limit=o.get("limit"), report=o.get("report")
    ),
    "discard": lambda c, s, dry_run, o: discard(
        c, s, dry_run=dry_run, expected=o.get("expected"), limit=o.get("limit")
    ),
    "requeue": lambda c, s, dry_run, o: requeue(c, s, dry_run=dry_run, limit=o.get("limit")),
    "undiscard": lambda c, s, dry_run, o: undo_discard(c, s, dry_run=dry_run, limit=o.get("limit")),
}


def act(name: str, container: Container, selection: Selection, *, dry_run: bool, **options: Any) -> ActionAnswer:
    """The action `name` (one of ACTIONS) on `selection`; `options`: mode and report (replay), expected (discard),
    limit (at most this many: a task's chunk). InvalidInput for an unknown name."""
    check_name(name)
    return ACTIONS[name](container, selection, dry_run, options)


def perform(
    name: str,
    container: Container,
    selection: Selection,
    *,
    actor: str,
    via: str,
    reason: str | None = None,
    **options: Any,
) -> ActionAnswer:
    """The action `name` done for real by `actor`, and recorded in the audit trail (a refusal too: a count that
    changed since the dry run). `options` as for `act`; `expected` is also the audit's dry-run count."""
    try:
        answer = act(name, container, selection, dry_run=False, **options)
    except Conflict as exc:
        audit.record(
            container.db,
            actor=actor,
            action=name,
            outcome="refused",
            via=via,
            selection=selection,
            dry_run_count=options.get("expected"),
            reason=reason,
            detail=exc.message,
        )
        raise
    audit.record(
        container.db,
        actor=actor,
        action=name,
        outcome="done",
        via=via,
        selection=selection,
        dry_run_count=options.get("expected"),
        result_count=answer.done,
        reason=reason,
        detail=", ".join(f"{k} {v}" for k, v in answer.counts.items()),
    )
    return answer


def purge_by_retention(container: Container, *, now: datetime | None = None) -> PurgeResult | None:
    """The retention purge the serving process runs: completed and discarded dead letters older than
    deadletters.retention-days (0: never, None answered) are deleted; audited when it deleted anything. The audit
    trail itself is kept."""
    days = container.settings["deadletters.retention-days"]
    if not days:
        return None
    return purge(
        container, (now or utcnow()) - timedelta(days=days), discarded=True, actor="retention", via="retention"
    )


def purge(
    container: Container,
    older_than: datetime,
    *,
    actor: str,
    via: str,
    discarded: bool = False,
    dry_run: bool = False,
    reason: str | None = None,
) -> PurgeResult:
    """Delete completed (and with `discarded`, discarded) dead letters finished before `older_than`; audited."""
    result = container.dead_letters.purge_completed(older_than, dry_run=dry_run, discarded=discarded)
    if not dry_run and (result.dead_letters or via != "retention"):
        audit.record(
            container.db,
            actor=actor,
            action="purge",
            outcome="done",
            via=via,
            result_count=result.dead_letters,
            reason=reason,
            detail=f"{'completed and discarded' if discarded else 'completed'} before "
            f"{older_than:%Y-%m-%d %H:%M:%S}Z; {result.claims} claims",
        )
    return result


def check_name(name: str) -> None:
    if name not in ACTIONS:
        raise InvalidInput(f"unknown action {name!r}; actions are {', '.join(ACTIONS)}")


def count(name: str, container: Container, selection: Selection, *, mode: str | None = None) -> int:
    """How many dead letters the action `name` would take now: its dry-run count, without a replay's per-dead-letter
    preview (what a task starts with, and what its progress counts against)."""
    check_name(name)
    if name == "replay":
        check_replay(selection, mode or ReplayMode.REPUBLISH)
        return container.dead_letters.count_claimable(PUBLISHER_DEAD_LETTERS + LISTENER_DEAD_LETTERS, selection)
    return act(name, container, selection, dry_run=True).matching
