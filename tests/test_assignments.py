"""gross.utils.assignments: the one KEY=VALUE parser."""

import pytest

from gross.utils.assignments import parse_assignments, parse_value


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("1e-5", 1e-5), ('"cpu"', "cpu"), ("[4, 16]", [4, 16]), ("true", True), ("True", True),
    ("(1, 2)", (1, 2)), ("cpu", "cpu"), ("/data/x", "/data/x"), ("", ""), (" 7 ", 7),
])
def test_parse_value_toml_then_literal_then_text(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_parse_value_none_words_only_when_asked():
    assert [parse_value(t, none_words=True) for t in ("none", "NULL", "")] == [None] * 3
    assert parse_value("none") == "none"


def test_parse_assignments_keeps_order_and_names_a_bad_item():
    assert parse_assignments(["b=1", "a = x"]) == {"b": 1, "a": "x"}
    assert list(parse_assignments(["b=1", "a=2"])) == ["b", "a"]
    with pytest.raises(ValueError, match=r"'repeats' must look like KEY=VALUE, e.g. seed=1"):
        parse_assignments(["repeats"], example="seed=1")
    with pytest.raises(ValueError, match="must look like KEY=VALUE"):
        parse_assignments(["=3"])
