"""What running a replay as a task costs beside the restore job it runs: M listener dead letters restored by
ListenerRestore directly (the baseline, as `dailyfeed restore-listener` runs it), and M more by a replay task at its
highest rate (chunks of tasks.MAX_CHUNK, a lease renewal and a progress write after each), on the real
MongoDB-compatible server. Prints both rates and their ratio; both are measured in this run.

    python -m bench.tasks [M]        (DAILYFEED_MONGO_URI: the server; default 2000 dead letters)
"""

from __future__ import annotations

import sys
import time
import uuid

from bench import common
from bench.app import services


def main(m: int = 2000) -> None:
    from dailyfeed.deadletters import Selection
    from dailyfeed.restore.jobs import ListenerRestore, RestoreOptions
    from dailyfeed.restore.tasks import MAX_RATE, TaskRunner, task_store

    def with_dead_letters(label: str):
        """Services on a database of their own holding M pending listener dead letters."""
        dailyfeed = services({"mongo.uri": common.MONGO_URI, "mongo.database": f"bench_{label}_{uuid.uuid4().hex[:8]}"})
        for i, event in enumerate(common.make_events(m)):
            dailyfeed.dead_letters.record_listener_failure(
                origin={
                    "topic": "member-activity-20261122",
                    "partition": 0,
                    "offset": i,
                    "key": event.message_key,
                    "value": event.to_bytes(),
                },
                error=RuntimeError("bench: store down"),
                event=event,
            )
        return dailyfeed

    made = []
    try:
        baseline = with_dead_letters("job")
        made.append(baseline)
        t = time.perf_counter()
        summary = ListenerRestore(baseline.dead_letters, baseline.activity_service, RestoreOptions()).run()
        job_rate = m / (time.perf_counter() - t)

        dailyfeed = with_dead_letters("task")
        made.append(dailyfeed)
        tasks = task_store(dailyfeed)
        doc = tasks.start(
            "replay",
            Selection(collections=("kafka_listener_dead_letters",)),
            total=m,
            actor="bench",
            via="bench",
            rate=MAX_RATE,
        )
        t = time.perf_counter()
        TaskRunner(dailyfeed, tasks, owner="bench").run(tasks.acquire(tasks.get(doc["_id"]), owner="bench"))
        task_rate = m / (time.perf_counter() - t)
        done = tasks.get(doc["_id"])
        print(f"restore job: {job_rate:,.0f} dead letters/s ({summary.line()})")
        print(f"replay task: {task_rate:,.0f} dead letters/s ({done['state']}, moved {done['moved']} of {m})")
        print(f"task / job: {task_rate / job_rate:.2f}x")
    finally:
        for dailyfeed in made:
            dailyfeed.close()
            dailyfeed.db.client.drop_database(dailyfeed.db.name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
