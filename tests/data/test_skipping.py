"""The skip-and-retry loop: unusable entries are passed over, warned once, remembered, and a run of them stops."""

import pytest

from fourd.data.skipping import first_usable


def load(position: int) -> str:
    if position in (1, 2):
        raise ValueError(f"entry {position} is broken")
    return f"item {position}"


def test_unusable_entries_are_passed_over_wrapping_round_and_remembered():
    unusable = {"e0": "dropped while listing"}
    with pytest.warns(UserWarning) as warned:
        assert first_usable(1, 4, 8, unusable, "e{}".format, load, (ValueError,), "things") == ("item 3", 3, 2)
    assert [str(w.message) for w in warned] == [f"things: skipping e{i}: entry {i} is broken" for i in (1, 2)]
    assert set(unusable) == {"e0", "e1", "e2"}
    assert first_usable(3, 4, 8, unusable, "e{}".format, load, (ValueError,), "things") == ("item 3", 3, 0)
    assert first_usable(0, 4, 8, unusable, "e{}".format, load, (ValueError,), "things") == ("item 3", 3, 3)


def test_a_run_of_unusable_entries_stops_with_the_last_reason():
    with pytest.raises(RuntimeError, match=r"2 consecutive unusable things from item 1 \(last: entry 2 is broken\)"):
        with pytest.warns(UserWarning):
            first_usable(1, 4, 2, {}, "e{}".format, load, (ValueError,), "things")
    with pytest.raises(KeyError):  # an error that is not the entry's fault is not skipped
        first_usable(0, 4, 2, {}, "e{}".format, lambda p: {}["x"], (ValueError,), "things")
