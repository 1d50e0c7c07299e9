"""`dailyfeed tasks start | list | show | cancel | resume` and the audit of CLI actions (`--as`, default the
operating-system user), through the CLI runner, on both store backends."""

from __future__ import annotations

import getpass

from dailyfeed.store import AUDIT, DEAD_LETTER_TASKS, MEMBER_ACTIVITIES

from ..support.deadletters import KAFKA_LISTENER_DEAD_LETTERS, documents, listener_dead_letter, post_event, snapshot


def listener_dead_letters(dead_letters, count):
    for n in range(count):
        listener_dead_letter(dead_letters, post_event(n), offset=n)


def test_start_waits_for_the_task_running_it_here_and_prints_how_it_ended(db, dead_letters, runner):
    listener_dead_letters(dead_letters, 3)
    result = runner.invoke(
        args=[
            "tasks",
            "start",
            "replay",
            "--collection",
            "listener",
            "--rate",
            "100",
            "--yes",
            "--as",
            "carol",
            "--reason",
            "after the outage",
        ]
    )
    assert result.exit_code == 0, result.output
    [task] = db[DEAD_LETTER_TASKS].find()
    assert f"task {task['_id']} started: replay 3 (collection {KAFKA_LISTENER_DEAD_LETTERS})" in result.output
    assert "completed" in result.output and "moved 3 of 3, failed 0" in result.output
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 3
    assert [(e["actor"], e["outcome"], e["via"], e["reason"]) for e in db[AUDIT].find().sort("at", 1)] == [
        ("carol", "started", "cli", "after the outage"),
        ("carol", "completed", "task", "after the outage"),
    ]


def test_detach_returns_at_once_and_list_show_cancel_resume_follow_the_task(db, dead_letters, runner):
    listener_dead_letters(dead_letters, 2)
    before = snapshot(db)
    started = runner.invoke(args=["tasks", "start", "replay", "--all", "--yes", "--detach"])
    assert started.exit_code == 0 and "detached" in started.output
    assert snapshot(db) == before  # nothing moved: the serving processes run it
    [task] = db[DEAD_LETTER_TASKS].find()
    listed = runner.invoke(args=["tasks", "list", "--state", "running"])
    assert str(task["_id"]) in listed.output and "0 / 2" in listed.output
    cancelled = runner.invoke(args=["tasks", "cancel", str(task["_id"])])
    assert cancelled.exit_code == 0 and ", cancelled" in cancelled.output
    resumed = runner.invoke(args=["tasks", "resume", str(task["_id"])])
    assert resumed.exit_code == 0 and "moved 2 of 2" in resumed.output, resumed.output
    shown = runner.invoke(args=["tasks", "show", str(task["_id"])])
    assert ", completed" in shown.output
    assert {d["status"] for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)} == {"completed"}
    user = getpass.getuser()
    assert [(e["actor"], e["outcome"]) for e in db[AUDIT].find().sort("at", 1)] == [
        (user, "started"),
        (user, "cancel-requested"),
        (user, "cancelled"),
        (user, "resumed"),
        (user, "completed"),
    ]


def test_start_refuses_no_filter_without_all_and_says_when_nothing_matches(db, dead_letters, runner):
    refused = runner.invoke(args=["tasks", "start", "discard", "--yes"])
    assert refused.exit_code == 2 and "add --all" in refused.output
    nothing = runner.invoke(args=["tasks", "start", "requeue", "--all", "--yes"])
    assert nothing.exit_code == 0 and "nothing to requeue" in nothing.output
    assert db[DEAD_LETTER_TASKS].count_documents({}) == 0
    missing = runner.invoke(args=["tasks", "show", "0123456789abcdef01234567"])
    assert missing.exit_code == 1 and "no task has the id" in missing.output


def test_cli_actions_are_audited_with_as_or_the_os_user(db, dead_letters, runner):
    listener_dead_letters(dead_letters, 2)
    [first, second] = documents(db, KAFKA_LISTENER_DEAD_LETTERS)
    assert runner.invoke(args=["deadletters", "discard", str(first["_id"]), "--yes", "--as", "dave"]).exit_code == 0
    assert runner.invoke(args=["deadletters", "undiscard", str(first["_id"]), "--reason", "mistake"]).exit_code == 0
    assert runner.invoke(args=["deadletters", "retry", second["message_key"], "--as", "erin"]).exit_code == 0
    assert runner.invoke(args=["deadletters", "purge", "--completed-older-than", "1"]).exit_code == 0
    user = getpass.getuser()
    assert [(e["actor"], e["action"], e["result_count"], e["reason"]) for e in db[AUDIT].find().sort("at", 1)] == [
        ("dave", "discard", 1, None),
        (user, "undiscard", 1, "mistake"),
        ("erin", "replay", 1, None),
        (user, "purge", 0, None),
    ]
    assert documents(db, KAFKA_LISTENER_DEAD_LETTERS)[0]["status"] == "pending"  # the discard undone


def test_a_restore_run_that_moved_anything_is_audited_once(db, dead_letters, runner):
    listener_dead_letters(dead_letters, 2)
    done = runner.invoke(args=["restore-listener", "--as", "frank", "--reason", "nightly"])
    assert done.exit_code == 0, done.output
    nothing = runner.invoke(args=["restore-listener"])
    assert nothing.exit_code == 0
    assert [
        (e["actor"], e["action"], e["outcome"], e["result_count"], e["reason"], e["detail"]) for e in db[AUDIT].find()
    ] == [("frank", "restore-listener", "done", 2, "nightly", "restored 2, skipped 0, failed 0")]
