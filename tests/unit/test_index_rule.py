"""The index coverage check's own rule (tests/support/index_coverage.py): how a command reduces to its shape, and
when an index serves a shape (MongoDB's equality-sort-range rule)."""

from __future__ import annotations

from tests.support.index_coverage import Index, Shape, _app_origin, _reduce, declared_indexes, serves, shapes_of

FEED = Index("member_newest", (("member_id", 1), ("created_at", -1), ("_id", -1)))


def shape(query, sort=()):
    (only,) = shapes_of(query, sort)
    return only


def test_a_filter_reduces_to_equality_range_and_sort_fields():
    s = shape(
        {"status": "pending", "category": {"$in": ["POST"]}, "created_at": {"$gte": 1}, "n": {"$ne": 2}},
        [("created_at", 1), ("_id", 1)],
    )
    assert s == Shape(
        frozenset({"status", "category"}), (("created_at", 1), ("_id", 1)), frozenset({"created_at", "n"})
    )
    assert str(s) == "eq(category, status) sort(created_at, _id) range(created_at, n)"


def test_or_gives_one_shape_per_branch_with_the_fields_around_it():
    shapes = shapes_of({"status": "pending", "$or": [{"created_at": {"$gt": 1}}, {"created_at": 1, "_id": {"$gt": 2}}]})
    assert [str(s) for s in shapes] == ["eq(status) range(created_at)", "eq(created_at, status) range(_id)"]


def test_equality_then_sort_then_range_in_the_index_order_is_served():
    assert serves(FEED, shape({"member_id": {"$in": [1, 2]}}, [("created_at", -1), ("_id", -1)]))
    assert serves(FEED, shape({"member_id": 1}, [("created_at", 1), ("_id", 1)]))  # walked backwards
    assert serves(FEED, shape({"member_id": 1, "created_at": {"$lt": 5}}))
    assert serves(FEED, shape({"member_id": 1}))  # a prefix


def test_a_shape_the_index_does_not_serve_in_that_order_is_not_served():
    assert not serves(FEED, shape({"member_id": 1}, [("created_at", -1)] + [("_id", 1)]))  # mixed directions
    assert not serves(FEED, shape({"member_id": 1}, [("_id", -1)]))  # sort skips created_at
    assert not serves(
        FEED, shape({"member_id": 1, "member_activity_type": "POST_CREATE"}, [("created_at", -1), ("_id", -1)])
    )  # an equality field the index lacks
    assert not serves(FEED, shape({"created_at": {"$gt": 1}}))  # not the leading key
    assert not serves(FEED, shape({}))  # a collection scan
    assert not serves(FEED, shape({"$expr": {"$gt": ["$a", "$b"]}, "member_id": 1}))


def test_a_unique_index_serves_any_shape_that_binds_all_its_keys():
    unique = Index("uniq_message_key", (("message_key", 1),), unique=True)
    assert serves(unique, shape({"message_key": "k", "status": {"$ne": "x"}}, [("created_at", 1)]))
    assert not serves(Index("by_key", (("message_key", 1),)), shape({"message_key": "k"}, [("created_at", 1)]))


def test_commands_reduce_to_the_shapes_of_their_filters():
    assert _reduce("find", {"find": "posts", "filter": {"author_id": 1}, "sort": {"_id": -1}}) == [
        ("posts", shape({"author_id": 1}, [("_id", -1)]))
    ]
    count = {"aggregate": "post_likes", "pipeline": [{"$match": {"post_id": 3}}, {"$group": {"_id": 1}}]}
    assert _reduce("aggregate", count) == [("post_likes", shape({"post_id": 3}))]
    update = {"update": "c", "updates": [{"q": {"_id": {"$in": [1]}}, "u": {}}, {"q": {"a": 1}, "u": {}}]}
    assert _reduce("update", update) == [("c", shape({"_id": {"$in": [1]}})), ("c", shape({"a": 1}))]
    assert _reduce("findAndModify", {"findAndModify": "counters", "query": {"_id": "posts"}}) == [
        ("counters", shape({"_id": "posts"}))
    ]
    assert _reduce("insert", {"insert": "posts", "documents": []}) == []


def test_a_command_sent_by_a_test_itself_is_not_the_apps():
    assert _app_origin(skip=1) is None  # the calling frame is this test's


def test_an_unindexed_query_on_a_declared_collection_is_served_by_none_of_its_indexes():
    posts = declared_indexes()["posts"]
    assert not any(serves(index, shape({"content": "hello"})) for index in posts)
    assert any(serves(index, shape({"author_id": 1, "is_deleted": False}, [("_id", -1)])) for index in posts)
