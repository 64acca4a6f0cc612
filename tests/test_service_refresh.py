"""After a write, the server's publisher scores again only the subjects the write touched
(socialcredit.service.published): what it publishes is what scoring the whole ledger
publishes. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from conftest import ServiceEnv, person_codes

from socialcredit.records import RECORDS_SCHEMA
from socialcredit.service.published import Publisher
from socialcredit.service.states import StateCache
from socialcredit.store import Ledger


def published(where: Path) -> dict[str, Any]:
    """Every array of the current publication in ``where``, and its meta data."""
    now = where / (where / "current").read_text()
    found: dict[str, Any] = {"meta": json.loads((now / "meta.json").read_text())}
    for path in sorted(now.glob("*.npy")):
        found[path.stem] = np.load(path)
    return found


def assert_same(ours: dict[str, Any], whole: dict[str, Any]) -> None:
    assert ours["meta"] == whole["meta"]
    assert set(ours) == set(whole)
    for name, values in whole.items():
        if name != "meta":
            assert ours[name].dtype == values.dtype, name
            assert np.array_equal(ours[name], values), name


def records(rows: list[tuple[str, str, str, str, str, int, str | None]]) -> pa.Table:
    """Records as the store takes them (recorded in the past)."""
    columns = list(zip(*rows, strict=True))
    return pa.table(
        {
            "id": pa.array(columns[0], pa.string()),
            "subject": pa.array(columns[1], pa.string()),
            "type": pa.array(columns[2], pa.string()),
            "occurred_at": pa.array([dt.date.fromisoformat(d) for d in columns[3]]),
            "recorded_at": pa.array([dt.date.fromisoformat(d) for d in columns[4]]),
            "amount": pa.array(columns[5], pa.int64()),
            "ref": pa.array(columns[6], pa.string()),
        },
        schema=RECORDS_SCHEMA,
    )


def append(env: ServiceEnv, table: pa.Table, subjects: pa.Table | None = None) -> None:
    def write(ledger: Ledger) -> None:
        ledger.append(table, source="test", subjects=subjects)

    env.svc.ledger.call(write)


def test_a_refresh_after_a_write_scores_the_touched_subjects_as_a_whole_scoring_does(
    service_env: ServiceEnv, tmp_path: Path
) -> None:
    env = service_env
    # the records appended below count as recorded once the scheme's notice period from
    # its day in force (the fixture's first day) is over
    env.clock.advance(days=7)
    svc = env.svc
    p, o = env.persons, env.orgs
    append(
        env,
        records(
            [
                ("j1", p[0], "court.unfulfilled", "2025-01-05", "2025-01-06", 0, None),
                ("j2", o[0], "court.unfulfilled", "2025-01-05", "2025-01-06", 0, None),
                ("t1", p[1], "traffic.red_light", "2025-01-05", "2025-01-06", 0, None),
                ("d1", o[1], "charity.donation", "2025-01-05", "2025-01-06", 900, None),
                ("j5", p[3], "court.unfulfilled", "2025-01-05", "2025-01-06", 0, None),
            ]
        ),
    )
    states = svc.states
    assert isinstance(states, StateCache)
    (tmp_path / "ours").mkdir()
    ours = Publisher(
        states, svc.day, tmp_path / "ours", tmp_path / "ours.sock", database=env.database
    )
    try:
        assert ours.publish() and ours.scored_whole == 1
        first = published(tmp_path / "ours")
        assert not ours.publish()  # nothing written since
        # a write: a new subject with its records, a judgment ended by a later record, a
        # subject on no list put on one, a donation for another and for a listed subject
        # (who stays listed: by its earlier record); the others untouched
        newcomer = person_codes(8, seed=11)[-1]
        append(
            env,
            records(
                [
                    ("j1-done", p[0], "court.fulfilled", "2025-01-20", "2025-01-21", 0, "j1"),
                    ("j3", p[2], "court.unfulfilled", "2025-01-20", "2025-01-21", 0, None),
                    ("d2", o[2], "charity.donation", "2025-01-20", "2025-01-21", 3000, None),
                    ("j4", newcomer, "court.unfulfilled", "2025-01-20", "2025-01-21", 0, None),
                    ("d3", p[3], "charity.donation", "2025-01-20", "2025-01-21", 100, None),
                ]
            ),
            subjects=pa.table({"code": [newcomer], "kind": ["person"]}),
        )
        assert ours.publish()
        assert ours.scored_whole == 1  # the touched subjects only
        second = published(tmp_path / "ours")
        assert second["meta"]["mark"] > first["meta"]["mark"]
        assert len(second["codes"]) == len(first["codes"]) + 1
        assert not np.array_equal(
            second["lists-0"][np.isin(second["codes"], first["codes"])], first["lists-0"]
        )  # the write changed who is listed
        # a second write on top of the first
        append(
            env,
            records([("t2", p[1], "traffic.red_light", "2025-01-25", "2025-01-26", 0, None)]),
        )
        assert ours.publish() and ours.scored_whole == 1
        (tmp_path / "whole").mkdir()
        whole = Publisher(states, svc.day, tmp_path / "whole", tmp_path / "whole.sock")
        try:
            assert whole.publish() and whole.scored_whole == 1
            assert_same(published(tmp_path / "ours"), published(tmp_path / "whole"))
        finally:
            whole.close()
        # the scheme's view of the subjects agrees too: j1 ended; j3, j4 and j5 listed
        day = svc.day()
        scheme = states.current(day).scheme("town")
        assert scheme.lists(p[0]) == [False]
        assert scheme.lists(p[2]) == [True] and scheme.lists(newcomer) == [True]
        assert scheme.lists(p[3]) == [True]
        # another day: every subject is scored again
        env.clock.advance(days=1)
        assert ours.publish() and ours.scored_whole == 2
    finally:
        ours.close()
