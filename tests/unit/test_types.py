"""The shared value types (dailyfeed/types.py) as a client meets them: the sentence of a 400 for each kind of problem a
model can have (contract.validate_body and events parsing answer with `describe`), the text types' limits and the
JSON Schema they publish. The API tests (tests/api) show the same sentences through the endpoints; the models here
are small ones, built for one kind of problem each, because the app's own models do not have every kind."""

from __future__ import annotations

from typing import Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from dailyfeed import types


class Author(BaseModel):
    name: str


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=5)
    count: int = Field(1, ge=1, le=9)
    above: int = Field(1, gt=0)
    below: int = Field(1, lt=10)
    author: Author | None = None
    labels: dict[str, int] | None = None
    tags: list[int] = Field([], max_length=2)
    choice: Union[int, str] = 0
    label: Union[str, int] = ""


def problem(model, document, *args, **kwargs) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document, **kwargs)
    return types.describe(caught.value, *args)


@pytest.mark.parametrize(
    "document, sentence",
    [
        ({"title": "abcdef"}, "title must be at most 5 characters (got 6)"),
        ({"count": "x"}, "count must be an integer, got 'x'"),
        ({"count": [1]}, "count must be an integer, got [1]"),
        ({"count": 1.5}, "count must be an integer, got 1.5"),
        ({"count": 0}, "count must be greater than or equal to 1"),
        ({"count": 10}, "count must be less than or equal to 9"),
        ({"above": 0}, "above must be greater than 0"),
        ({"below": 10}, "below must be less than 10"),
        ({"author": 5}, "author must be a JSON object"),
        ({"author": {}}, "author.name is required"),
        ({"labels": 5}, "labels must be a JSON object"),
        ({"tags": [1, 2, 3]}, "tags List should have at most 2 items after validation, not 3"),
        ({"colour": "red"}, "colour is not a known field"),
        # a union fails once per member, each located under a tag that is not a field: the field alone is named
        ({"choice": [1]}, "choice must be an integer, got [1]"),
        ({"label": [1]}, "label Input should be a valid string"),
    ],
)
def test_each_kind_of_problem_is_one_sentence_naming_the_field(document, sentence):
    assert problem(Body, document) == sentence


def test_the_whole_input_is_named_when_no_field_is_at_fault():
    assert problem(Body, [1]) == "request body must be a JSON object"
    assert problem(Body, [1], "record value") == "record value must be a JSON object"
    assert problem(Author, 5, from_attributes=True) == "request body must be a JSON object"


def test_an_over_long_integer_is_quoted_only_in_part():
    sentence = problem(Body, {"count": "x" * 500})
    assert sentence.startswith("count must be an integer, got 'xxx") and len(sentence) == 200


def test_the_count_of_other_problems_is_per_field():
    assert (
        problem(Body, {"title": "abcdef", "count": 0})
        == "title must be at most 5 characters (got 6) (and 1 more problem)"
    )
    assert (
        problem(Body, {"title": "abcdef", "count": 0, "tags": [1, 2, 3]})
        == "title must be at most 5 characters (got 6) (and 2 more problems)"
    )
    assert (
        problem(Body, {"title": "abcdef", "count": 0, "tags": [1, 2, 3], "author": {}})
        == "title must be at most 5 characters (got 6) (and 3 more problems)"
    )
    assert (
        problem(Body, {"title": 5, "author": {"name": 1}}) == "title Input should be a valid string "
        "(and 1 more problem)"
    )


def test_a_field_that_must_be_null_is_named_only_when_nothing_else_is_wrong():
    nullable = create_model("Nullable", gone=(None, None), count=(int, 1))
    assert problem(nullable, {"gone": 1, "count": "x"}) == "count must be an integer, got 'x'"
    assert problem(nullable, {"gone": 1}) == "gone Input should be None"


def test_ids_in_text_say_how_they_are_spelt():
    query = create_model("Query", authorId=(types.IdText | None, None))
    for raw in ("01", "-1", "+1", " 1", "١", "9223372036854775808", "0"):
        assert problem(query, {"authorId": raw}, "query") == (
            "authorId must be an integer id: ASCII digits, 1 … 9223372036854775807, no sign, blanks or leading zeros"
        )
    assert query.model_validate({"authorId": "9223372036854775807"}).authorId == 2**63 - 1


def model_of(text_type):
    return create_model("Note", note=(text_type, ...))


def test_text_is_bounded_and_made_of_unicode_scalar_values():
    note = model_of(types.text(5))
    assert note.model_validate({"note": "héllo"}).note == "héllo"
    assert note.model_validate({"note": "  "}).note == "  "  # blank is allowed unless refused
    assert note.model_validate({"note": ""}).note == ""
    assert problem(note, {"note": "abcdef"}) == "note must be at most 5 characters (got 6)"
    assert problem(note, {"note": 5}) == "note must be a string"
    assert (
        problem(note, {"note": "ab\ud800"})
        == "note must be valid Unicode text (a lone surrogate U+D800 at character 2)"
    )
    assert TypeAdapter(types.text(5)).json_schema() == {"type": "string", "maxLength": 5}


def test_text_that_must_not_be_blank_refuses_every_blank():
    note = model_of(types.text(5, blank=False))
    assert note.model_validate({"note": " a "}).note == " a "
    for blank in ("", " ", "\t\n", "\u3000", "\ufeff"):
        assert problem(note, {"note": blank}) == "note must not be blank", repr(blank)
    assert problem(note, {"note": "abcdef"}) == "note must be at most 5 characters (got 6)"
    assert problem(note, {"note": 5}) == "note must be a string"
    assert (
        problem(note, {"note": "\udfff"}) == "note must be valid Unicode text (a lone surrogate U+DFFF at character 0)"
    )
    assert TypeAdapter(types.text(5, blank=False)).json_schema() == {
        "type": "string",
        "minLength": 1,
        "maxLength": 5,
        "pattern": types.NOT_BLANK_PATTERN,
    }


def test_ids_in_json_say_their_range():
    body = create_model("Like", postId=(types.Id, ...))
    for raw in (0, -1, 2**63):
        assert problem(body, {"postId": raw}) == "postId must be a positive long (1 … 9223372036854775807)"
    for raw in ("1", 1.0, True):
        assert problem(body, {"postId": raw}) == "postId must be an integer"


def test_a_count_in_text_has_at_most_18_ascii_digits():
    assert types.count_from_text("9" * 18) == 10**18 - 1
    assert types.count_from_text("0") == 0
    for raw in ("1" + "0" * 18, "", "-1", "²", "١", " 1", None):
        assert types.count_from_text(raw) is None, raw


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_json_up_to_32_levels_deep_is_read_and_deeper_is_refused():
    assert types.load_json(nested(32)) == eval(nested(32))
    assert types.load_json(b'{"a": ' * 31 + b"{}" + b"}" * 31) is not None
    # brackets and closers inside strings, and many values side by side, are no nesting
    wide = '["[[[[", "]]]]", ' + ", ".join(['"x"'] * 40) + ", " + nested(30) + "]"
    assert len(types.load_json(wide)) == 43
    assert len(types.load_json("[" + ", ".join(["[[]]"] * 40) + "]")) == 40  # many closed arrays side by side
    # depth counts only what is open: closed siblings and strings before the deep part do not lower it
    siblings = "[" * 20 + "[], [[]], " + nested(13) + "]" * 20
    after_strings = '["a", "b", "c", ' + nested(32) + "]"
    for deep in (nested(33), '{"a": ' * 32 + "{}" + "}" * 32, nested(100_000), siblings, after_strings):
        with pytest.raises(types.BadJson, match="^nested deeper than 32 levels$"):
            types.load_json(deep)


def test_json_that_cannot_be_read_says_why():
    with pytest.raises(types.BadJson, match=r"^not UTF-8 \(invalid start byte at byte 2\)$"):
        types.load_json(b'{"\xff": 1}')
    with pytest.raises(types.BadJson, match=r"^Expecting property name enclosed in double quotes: line 1 column 2"):
        types.load_json("{not json")


@pytest.fixture
def tokyo(monkeypatch):
    """The machine's clock in another timezone: every time read must still be UTC."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    "value, utc",
    [
        ([2026, 1, 2], "2026-01-02T00:00:00+00:00"),
        ([2026, 1, 2, 3, 4, 5, 6_000_000], "2026-01-02T03:04:05.006000+00:00"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T03:04:05z", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T12:04:05+09:00", "2026-01-02T03:04:05+00:00"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59+00:00"),
        ("2026-01-02T03:04:05." + "1" * 38 + "+00:00", "2026-01-02T03:04:05.111111+00:00"),  # 64 characters
    ],
)
def test_times_are_read_as_utc_whatever_the_machines_timezone(tokyo, value, utc):
    assert types.parse_timestamp(value).isoformat() == utc


@pytest.mark.parametrize(
    "value, problem",
    [
        ("1969-12-31T23:59:59Z", "date '1969-12-31T23:59:59Z' is outside the years 1970-9999 (UTC)"),
        ("2026-01-02T03:04:05." + "1" * 39 + "+00:00", "is not ISO-8601"),  # 65 characters
        ("2026-01-02\u00e903:04:05", "date '2026-01-02\u00e903:04:05' is not ISO-8601"),  # Python takes any separator
        ("2026-01-02T03:04:05" + "0" * 100, "date '2026-01-02T03:04:05" + "0" * 61 + "' is not ISO-8601"),
    ],
)
def test_times_that_are_not_iso_nor_in_range_are_refused_quoting_them(value, problem):
    with pytest.raises(types.BadTimestamp) as refused:
        types.parse_timestamp(value)
    assert str(refused.value).endswith(problem) and str(refused.value).startswith("date '")
