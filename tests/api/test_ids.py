"""Post and comment ids under concurrency, on both backends: FerretDB v1's $inc is not atomic, so ids must not
depend on it being so."""

from concurrent.futures import ThreadPoolExecutor

from dailyfeed.store import POSTS, insert_with_next_id


def test_concurrent_writers_all_get_distinct_ids(db):
    def write(i):
        return insert_with_next_id(db, POSTS, {"n": i})["_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(write, range(240)))

    assert len(set(ids)) == 240 and min(ids) >= 1
    assert db[POSTS].count_documents({}) == 240


def test_another_process_drawing_the_same_block_is_skipped(db):
    from dailyfeed.store import COUNTERS

    first = insert_with_next_id(db, POSTS, {"n": 1})["_id"]
    db[POSTS].insert_one({"_id": first + 1, "n": "taken by another process"})
    second = insert_with_next_id(db, POSTS, {"n": 2})["_id"]
    assert second not in (first, first + 1)
    assert db[COUNTERS].find_one({"_id": POSTS})["value"] >= second
