"""The one registry pattern: names, decorator and import-path entries, clear errors."""

import pytest

from neuralsight.registry import Registry


def test_decorated_and_path_entries_are_listed_sorted_and_resolved():
    things = Registry("thing")

    @things.register("b")
    def b() -> str:
        return "b"

    things.add("a", "os.path:join")
    assert things.names() == ("a", "b")
    assert list(things) == ["a", "b"]
    assert len(things) == 2 and "a" in things and "c" not in things
    assert things.get("b") is b
    assert things.get("a")("x", "y") == "x/y"


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (lambda r: r.get("nope"), ValueError, r"unknown thing 'nope'; known: one"),
        (lambda r: r.add("one", object()), ValueError, r"thing 'one' is registered already"),
    ],
)
def test_bad_lookups_and_duplicates_are_clear_errors(action, error, match):
    things = Registry("thing")
    things.add("one", object())
    with pytest.raises(error, match=match):
        action(things)
