"""The forked executor: results in order, errors raised in the parent, shared memory."""

from __future__ import annotations

import os

import numpy as np
import pytest

from socialcredit.engine import forked
from socialcredit.errors import ScoreOverflow

pytestmark = pytest.mark.skipif(not forked.available(), reason="needs fork")


def test_results_come_back_in_order_from_every_process() -> None:
    parent = os.getpid()
    got = forked.map_forked(lambda x: (x * x, os.getpid() != parent), list(range(10)), 3)
    assert [v for v, _ in got] == [x * x for x in range(10)]
    # the first two groups ran in children, the last here
    assert [child for _, child in got] == [True] * 7 + [False] * 3


def test_children_write_into_shared_memory() -> None:
    out = forked.shared_empty((2, 6), np.int64)

    def fill(k: int) -> None:
        out[:, k] = k + 1

    forked.map_forked(fill, list(range(6)), 2)
    np.testing.assert_array_equal(out, np.tile(np.arange(1, 7), (2, 1)))


@pytest.mark.parametrize("failing", [0, 5])  # in a child, and in this process
def test_an_error_in_any_group_is_raised_here(failing: int) -> None:
    def work(x: int) -> int:
        if x == failing:
            raise ScoreOverflow(f"item {x}")
        return x

    with pytest.raises(ScoreOverflow, match=f"item {failing}"):
        forked.map_forked(work, list(range(6)), 2)


def test_a_child_that_dies_is_an_error() -> None:
    def work(x: int) -> int:
        if x == 0:
            os._exit(3)
        return x

    with pytest.raises(RuntimeError, match="ended without a result"):
        forked.map_forked(work, list(range(4)), 2)
