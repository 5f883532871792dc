"""Offsets are acknowledged in order per partition, whatever order the handlers finish in."""

from __future__ import annotations

import random

import pytest

from docsight.agents.in_order import InOrderAcks


def test_a_later_event_done_first_is_held_until_the_earlier_one_is_done():
    acks = InOrderAcks()
    first = acks.started("p0", 5, "e5")
    second = acks.started("p0", 6, "e6")
    assert acks.finished("p0", second) == []  # 5 still in flight: acking 6 would let a commit pass it
    assert len(acks) == 2
    assert acks.finished("p0", first) == ["e5", "e6"]
    assert len(acks) == 0


def test_partitions_are_independent():
    acks = InOrderAcks()
    a = acks.started("p0", 1, "a")
    b = acks.started("p1", 1, "b")
    assert acks.finished("p1", b) == ["b"]
    assert acks.finished("p0", a) == ["a"]


def test_a_rewind_abandons_what_was_pending_on_that_partition():
    acks = InOrderAcks()
    old_head = acks.started("p0", 7, "e7")
    old_done = acks.started("p0", 8, "e8")
    other = acks.started("p1", 3, "f3")
    # Faust sought back to the committed offset 7 after a rebalance: 7 and 8 come again
    again = acks.started("p0", 7, "e7 again")
    assert len(acks) == 2
    assert acks.finished("p0", old_done) == [] and acks.finished("p0", old_head) == []  # never acked
    assert acks.finished("p0", again) == ["e7 again"]
    assert acks.finished("p1", other) == ["f3"]
    assert len(acks) == 0


@pytest.mark.parametrize("seed", range(20))
def test_any_finishing_order_acks_each_event_once_and_never_past_an_unfinished_one(seed):
    rnd = random.Random(seed)
    acks = InOrderAcks()
    entries = {(tp, offset): acks.started(tp, offset, (tp, offset)) for tp in ("p0", "p1") for offset in range(30)}
    order = list(entries)
    rnd.shuffle(order)
    acked: dict[str, list[int]] = {"p0": [], "p1": []}
    finished: set = set()
    for key in order:
        finished.add(key)
        for tp, offset in acks.finished(key[0], entries[key]):
            acked[tp].append(offset)
        for tp in acked:
            # what is acked is exactly the finished prefix: a commit can never pass an unfinished event
            prefix = 0
            while (tp, prefix) in finished:
                prefix += 1
            assert acked[tp] == list(range(prefix))
    assert acked == {"p0": list(range(30)), "p1": list(range(30))}
    assert len(acks) == 0
