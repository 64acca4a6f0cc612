"""Schemes newly in force: the records already in the ledger get their notices first.

Under SCHEME.md an adverse record takes effect ``notice_days`` after its ``recorded_at``,
and the service writes its notice when an agency sends it. A record that was in the
ledger before the service ran a scheme -- imported with ``socialcredit records import``,
or sent while other schemes were active -- got no notice of that scheme, and would count
under it at once. So the service keeps, in ``svc_schemes_in_force`` (append-only), the
day it first ran each scheme, and what it did then with the records already there, as
the ``existing_records`` setting says:

* ``notify`` (the default): the scheme is *in force from* that day. Each record already
  there that the scheme would count once it takes effect
  (:meth:`~socialcredit.service.schemes.ActiveScheme.takes_effect`, and no record
  recorded by then ends it) gets its notice now, and takes effect ``notice_days`` after
  that day: the engine is given the day (:class:`~socialcredit.engine.Engine`'s
  ``in_force``), and a record counts from ``max(recorded_at, in force) + notice_days``.
  Its subject may contest it for ``appeal_days`` from that day too
  (:func:`~socialcredit.service.notices.appeal_until_column`).
* ``count``: the records already there count as recorded, at once, with no notice (a
  ledger whose subjects were notified otherwise). The choice is kept in the table.

The first process that opens the service with a scheme to answer requests decides, in
one transaction of the service tables that takes the notices' turn (a second process
waits, then finds the row); later starts, with the same or another version of the
scheme, keep its day, and the command line's tools that open the service decide
nothing. Each version run is kept with its text (``svc_scheme_versions``, a row each time
the service starts on a version other than the one it ran last); under ``notify`` such a
version that would treat the records already there worse than the notices of the one
run last stated (:func:`widening`) is refused.
A database upgraded from before ``svc_schemes_in_force`` ran its schemes over
every record as recorded: its first start keeps the schemes it runs that way
(:data:`UPGRADED`). Records imported into the ledger later are not noticed: agencies
send records through the API.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit.errors import RefusedScheme, SocialCreditError
from socialcredit.scheme import load_scheme_text
from socialcredit.scheme.model import Rule, Scheme
from socialcredit.service.core import Service
from socialcredit.service.errors import Outdated
from socialcredit.service.notices import (
    NOTICE_WRITERS,
    NOTICES_SCHEMA,
    NoticeTexts,
    lists_fed,
    noticed_when_in_force,
    reads,
    stated_deadlines,
    whole,
    write_notices,
)
from socialcredit.service.schemes import ActiveScheme, reach
from socialcredit.store.base import Guard, Query
from socialcredit.store.files import AGENCY_PREFIX
from socialcredit.store.service_db import ServiceDB

IN_FORCE_VERSION = 7
"""The version of the service tables that made ``svc_schemes_in_force``."""
UPGRADED = "*upgraded"
"""The row version 7 writes in a database upgraded from an earlier version: the schemes the
service runs when it next starts ran before, over every record as recorded."""
TAKEN = "*upgraded-taken"
"""The row that the first start after the upgrade writes, having taken those schemes."""

logger = logging.getLogger(__name__)

__all__ = [
    "Activation",
    "SchemeVersion",
    "activate",
    "existing_notices",
    "first_version",
    "guard",
    "in_force",
    "noticed_records",
    "notifying",
    "outdated",
    "refuse_outdated",
    "retire",
    "versions",
    "widening",
]


class Activation:
    """A scheme's row of ``svc_schemes_in_force``."""

    def __init__(
        self, scheme: str, version: str, since: str | None, existing: str, notices: int, at: str
    ) -> None:
        self.scheme = scheme
        self.version = version
        self.since = None if since is None else dt.date.fromisoformat(since)
        self.existing = existing  # notify, count, or before (ran before the table)
        self.notices = notices
        self.at = at


@dataclass(frozen=True)
class SchemeVersion:
    """A row of ``svc_scheme_versions``: a version of a scheme the service has run, its
    text, how it was taken (``existing``), and when it began to run. ``existing``:
    ``notify``, compared with the version run before it and treating the records already
    there no worse than that one's notices stated; ``count``, not compared, by the
    ``existing_records`` setting; ``unchecked``, no earlier version kept to compare it with
    (the first version run, the first after an upgrade from before the table, or one run
    after a version whose text cannot be read)."""

    version: str
    text: str
    existing: str
    at: str


def _rows(query: Query) -> dict[str, Activation]:
    rows = query("SELECT scheme, version, since, existing, notices, at FROM svc_schemes_in_force")
    return {str(r[0]): Activation(*r) for r in rows}


def in_force(db: ServiceDB) -> dict[str, Activation]:
    """Every scheme the service has run, by id."""
    return {k: v for k, v in _rows(db.query).items() if not k.startswith("*")}


def notifying(target: str | Path) -> dict[str, dt.date]:
    """The schemes a service runs on the ledger at ``target`` that gave notice of the
    records already there when they came into force (``existing_records = notify``), with
    that day; none when the ledger has no service tables."""
    db = ServiceDB.connect(target)
    try:
        if db.version() < IN_FORCE_VERSION:
            return {}
        retired = _retired(_last_versions(db.query))
        return {
            a.scheme: a.since
            for a in in_force(db).values()
            if a.since is not None and a.scheme not in retired
        }
    finally:
        db.close()


def activate(svc: Service, *, decide: bool = True) -> int:
    """Give every active scheme its day in force. With ``decide``, first record each
    active scheme the service runs for the first time (with the notices of the records
    already there, under ``existing_records = notify``); without, such a scheme counts
    every record as recorded in this process, and nothing is written. How many notices
    were written (the caller delivers them)."""
    written = 0
    known = {} if decide else _rows(svc.db.query)  # a start that decides reads them with the turn
    if decide:
        today = svc.today()
        notify = svc.settings.existing_records == "notify"
        with svc.db.transaction() as db:
            db.take_turn(NOTICE_WRITERS)  # one process decides; the others find its rows
            # and no record is appended meanwhile: one appended before is read below (and
            # noticed), one appended after finds the rows written here (outdated)
            db.hold_ledger()
            known, last = _rows(db.query), _last_versions(db.query)
            _refuse_partial(svc, known, last)
            switched = _switched(svc, last)
            compared: set[str] = set()
            if notify:  # refused before anything is written
                compared = _refuse_widening(svc, db, [sid for sid in switched if sid in known])
            stamp = svc.stamp()
            for sid in switched:
                taken = "notify" if sid in compared else "unchecked"
                _insert_version(db, svc.schemes[sid], "count" if not notify else taken, stamp)
            upgraded = UPGRADED in known and TAKEN not in known
            new = [sid for sid in svc.schemes if sid not in known]
            since = today if notify and not upgraded else None
            # every scheme's day first: a notice states the appeal windows of them all
            _set_days(svc, known, since)
            chosen: dict[str, pa.Table] = {}
            senders: dict[str, pa.Array] = {}
            if new and since is not None:  # read with the turn held: an ingest waits
                subjects, records, sources = svc.ledger.read(
                    lambda lg: (lg.subjects(), lg.records(), lg.record_sources())
                )
                kinds = subjects["kind"].take(
                    pc.index_in(records["subject"], value_set=subjects["code"])
                )
                for sid in new:
                    at = noticed_records(svc.schemes[sid], whole(kinds), records)
                    chosen[sid] = records.take(at)
                    senders[sid] = _senders(svc, chosen[sid], sources, at, records.num_rows)
            for sid in new:
                active, count = svc.schemes[sid], 0
                if sid in chosen:
                    notices = existing_notices(svc, active, chosen[sid], chosen, senders[sid])
                    count = write_notices(db, notices)
                    written += count
                existing = "before" if upgraded else svc.settings.existing_records
                _insert(db, sid, active.version, since, existing, count, stamp)
            if upgraded:  # the first start after the upgrade has taken the schemes it ran
                _insert(db, TAKEN, "", None, "before", 0, stamp)
            known = _rows(db.query)
    _set_days(svc, known, None)
    return written


RETIRED = "retired"
"""The version (and ``existing``) of the row that retires a scheme (:func:`retire`)."""


def _last_versions(query: Query) -> dict[str, tuple[str, str]]:
    """Each scheme's last row of ``svc_scheme_versions``: its version, and when."""
    rows = query("SELECT scheme, version, at FROM svc_scheme_versions ORDER BY id")
    return {str(scheme): (str(version), str(at)) for scheme, version, at in rows}


def _retired(last: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The schemes retired, with when, by their last versions (:func:`_last_versions`)."""
    return {sid: at for sid, (version, at) in last.items() if version == RETIRED}


def _refuse_partial(
    svc: Service, known: dict[str, Activation], last: dict[str, tuple[str, str]]
) -> None:
    """Refuse to run a scheme retired here, or to run without a scheme in force here
    that is not retired: the records this server is sent would get no notice of it, yet
    the servers that run it would count them. The schemes a database upgraded from
    before version 7 ran then (``existing`` ``before``) are not asked for: which of them
    still run was not kept."""
    retired = _retired(last)
    back = [sid for sid in svc.schemes if sid in retired]
    if back:
        raise RefusedScheme(
            "; ".join(f"scheme {sid!r} was retired here on {retired[sid][:10]}" for sid in back)
            + ": the records sent since got no notice of it. Give it a scheme id of its own "
            "(it then comes into force with a notice of each record already there)"
        )
    missing = _missing(svc, known, retired)
    if missing:
        raise RefusedScheme(
            f"scheme(s) {', '.join(repr(sid) for sid in missing)} are in force on this "
            "database and this server does not run them: the records it is sent would get no "
            "notice of them, yet a server that runs them would count them. Run them too, or "
            "retire them (socialcredit db retire SCHEME)"
        )


def _missing(svc: Service, known: dict[str, Activation], retired: Collection[str]) -> list[str]:
    """The schemes in force (``known``, :func:`_rows`) that ``svc`` does not run, but for
    those retired and those a database upgraded from before version 7 ran then."""
    return sorted(
        sid
        for sid, row in known.items()
        if not sid.startswith("*")
        and row.existing != "before"
        and sid not in svc.schemes
        and sid not in retired
    )


def outdated(svc: Service, query: Query) -> str | None:
    """What makes the schemes ``svc`` runs no longer those its database has in force
    (read with ``query``), or None when they still are: a scheme in force there that it
    does not run, one it runs that was retired, or one whose last version is not its own
    (another server began to run another). Records it took would get notices that the
    other servers do not follow, and its answers would not be theirs."""
    known, last = _rows(query), _last_versions(query)
    retired = _retired(last)
    found = [
        f"scheme {sid!r} is in force there and this server does not run it"
        for sid in _missing(svc, known, retired)
    ]
    for sid, active in svc.schemes.items():
        version, at = last.get(sid, (active.version, ""))
        if version == RETIRED:
            found.append(f"scheme {sid!r} was retired there on {at[:10]}")
        elif version != active.version:
            found.append(
                f"this server runs version {active.version} of scheme {sid!r}, and "
                f"version {version} began to run there on {at[:10]}"
            )
    if not found:
        return None
    return (
        "the schemes this server runs are no longer those in force on its database ("
        + "; ".join(found)
        + "): it takes no record and answers nothing by them until it is started again "
        "with the schemes in force"
    )


def refuse_outdated(svc: Service, db: ServiceDB) -> None:
    """Inside a write transaction of the service tables, before it writes by the schemes:
    take the notices' turn (a start putting a scheme in force holds it until its rows are
    committed, so they are seen here), then refuse (:class:`Outdated`) when
    :func:`outdated`."""
    db.take_turn(NOTICE_WRITERS)
    guard(svc)(db.query)


def guard(svc: Service) -> Guard:
    """The check of an agency's batch inside the ledger's write transaction: refused
    (:class:`~socialcredit.service.errors.Outdated`) when :func:`outdated`."""

    def check(query: Query) -> None:
        reason = outdated(svc, query)
        if reason is not None:
            raise Outdated(reason)

    return check


def retire(db: ServiceDB, scheme: str, stamp: str) -> None:
    """Retire a scheme in force on ``db``: servers may then run without it, and none runs
    it again under its id (``svc_scheme_versions`` gets a row :data:`RETIRED`)."""
    with db.transaction() as tx:
        tx.take_turn(NOTICE_WRITERS)  # after any start deciding at the same time
        row = _rows(tx.query).get(scheme)
        if row is None or scheme.startswith("*"):
            raise SocialCreditError(f"no scheme {scheme!r} has been in force on this database")
        if _last_versions(tx.query).get(scheme, ("", ""))[0] == RETIRED:
            raise SocialCreditError(f"scheme {scheme!r} is retired already")
        tx.execute(
            "INSERT INTO svc_scheme_versions (scheme, version, text, existing, at) "
            "VALUES (?, ?, '', ?, ?)",
            (scheme, RETIRED, RETIRED, stamp),
        )


def _switched(svc: Service, last: dict[str, tuple[str, str]]) -> list[str]:
    """The active schemes whose version is not the one ``svc_scheme_versions`` names last
    (or that it does not name): ``last``, :func:`_last_versions`."""
    return [sid for sid, a in svc.schemes.items() if last.get(sid, ("", ""))[0] != a.version]


def _insert_version(db: ServiceDB, active: ActiveScheme, existing: str, stamp: str) -> None:
    db.execute(
        "INSERT INTO svc_scheme_versions (scheme, version, text, existing, at) "
        "VALUES (?, ?, ?, ?, ?)",
        (active.id, active.version, active.loaded.text, existing, stamp),
    )


def versions(db: ServiceDB, scheme: str) -> list[SchemeVersion]:
    """The versions of ``scheme`` the service has run, in the order it began to run
    them: a row each time it started on a version other than the one it ran last."""
    rows = db.query(
        "SELECT version, text, existing, at FROM svc_scheme_versions WHERE scheme = ? ORDER BY id",
        (scheme,),
    )
    return [SchemeVersion(str(v), str(t), str(e), str(a)) for v, t, e, a in rows]


def first_version(db: ServiceDB, scheme: str) -> str | None:
    """The version of ``scheme`` the service ran when it first ran it, as
    ``svc_schemes_in_force`` keeps it (None: never run, or run before the table)."""
    row = in_force(db).get(scheme)
    return row.version or None if row is not None else None


def _refuse_widening(svc: Service, db: ServiceDB, schemes: list[str]) -> set[str]:
    """Refuse a version of a scheme in force, other than the one run last, that would
    treat the records already there worse than the notices of that one stated
    (:func:`widening`); the schemes compared so (the others had no readable version
    kept)."""
    refusals: list[str] = []
    compared: set[str] = set()
    held: tuple[set[str], set[str]] | None = None
    for sid in schemes:
        run = versions(db, sid)
        if not run:  # none kept: a database upgraded from before the table
            continue
        earlier = run[-1]
        try:
            before = load_scheme_text(earlier.text, f"version {earlier.version}")
        except SocialCreditError:  # a text this program no longer reads
            logger.warning(
                "scheme %r: version %s, run before, is not readable here; the new version "
                "is not compared with it",
                sid,
                earlier.version,
            )
            continue
        compared.add(sid)
        active = svc.schemes[sid]
        if not widening(before, active.scheme):
            continue
        if held is None:
            held = svc.ledger.read(lambda lg: lg.holdings())
        changes = widening(before, active.scheme, *held)
        if changes:
            refusals.append(
                f"scheme {sid!r} version {active.version} ({active.loaded.source}) would "
                f"treat the records already there worse than the notices of version "
                f"{earlier.version}, run since {earlier.at[:10]}, stated: " + "; ".join(changes)
            )
    if refusals:
        raise RefusedScheme(
            "; and ".join(refusals) + ". Give the new version a scheme id of its own (it "
            "then comes into force with a notice of each record already there), or start "
            "with existing_records = count (SOCIALCREDIT_EXISTING_RECORDS=count) to let it "
            "treat them so, with no notice"
        )
    return compared


def _insert(
    db: ServiceDB,
    scheme: str,
    version: str,
    since: dt.date | None,
    existing: str,
    notices: int,
    stamp: str,
) -> None:
    db.execute(
        "INSERT INTO svc_schemes_in_force (scheme, version, since, existing, notices, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (scheme, version, None if since is None else since.isoformat(), existing, notices, stamp),
    )


def _set_days(svc: Service, known: dict[str, Activation], new: dt.date | None) -> None:
    """Give each active scheme its day in force: its row's, or ``new`` for one without."""
    svc.schemes = {
        sid: active.since(known[sid].since if sid in known else new)
        for sid, active in svc.schemes.items()
    }


def noticed_records(
    active: ActiveScheme, kinds: pa.Array, records: pa.Table
) -> npt.NDArray[np.intp]:
    """The rows of the records already in the ledger (``kinds``: the kind of each one's
    subject) that ``active``, in force from its day, would count once they take effect:
    those :meth:`ActiveScheme.takes_effect` names, less those a record recorded by the day
    they would take effect ends (SCHEME.md section 3, clause 5). They are given notice."""
    if not records.num_rows:
        return np.zeros(0, np.intp)
    able, effective = active.takes_effect(
        whole(records["type"]),
        kinds,
        whole(records["occurred_at"]),
        whole(records["recorded_at"]),
    )
    enders = records.filter(pc.is_valid(records["ref"]))
    if enders.num_rows:
        # the first day each ended record is ended on
        first = enders.group_by("ref").aggregate([("recorded_at", "min")])
        at = pc.index_in(records["id"], value_set=first["ref"])
        ended = first["recorded_at_min"].take(at).cast(pa.int32())
        ended_on = np.asarray(pc.fill_null(ended, np.iinfo(np.int32).max).to_numpy(), np.int64)
        able &= ended_on > effective
    return np.flatnonzero(able)


def _senders(
    svc: Service, chosen: pa.Table, sources: pa.Array, at: npt.NDArray[np.intp], n: int
) -> pa.Array:
    """Who a notice names as the sender of each of ``chosen``, the rows ``at`` of the
    ``n`` records read: from the sources of the records in ledger order (read beside them:
    more when records were appended since, fewer only when a write is missing from the
    log of batches, when each record is looked up by id instead)."""
    if len(sources) >= n:
        given = sources.take(pa.array(at)).to_pylist()
    else:
        found = svc.ledger.read(lambda lg: lg.sources(chosen["id"].to_pylist()))
        given = [found.get(rid, "") for rid in chosen["id"].to_pylist()]
    return pa.array([_sender(source or "") for source in given], pa.string())


def existing_notices(
    svc: Service,
    active: ActiveScheme,
    chosen: pa.Table,
    now_noticed: dict[str, pa.Table],
    agency: pa.Array,
) -> pa.Table:
    """The notices of ``chosen``, the records :func:`noticed_records` gives for ``active``
    (:data:`NOTICES_SCHEMA`). ``now_noticed``: the records each scheme put in force with it
    gives notice of; for the schemes in force before, the notices table says which of
    ``chosen`` they gave notice of (each notice states the one deadline of a record's
    appeals, which the windows of them all make). ``agency``: who each record's notice
    names as its sender."""
    if not chosen.num_rows:
        return NOTICES_SCHEMA.empty_table()
    ids = chosen["id"]
    noticed = noticed_when_in_force(svc, ids.to_pylist(), but=list(now_noticed))
    for sid, rows in now_noticed.items():
        noticed[sid] = np.asarray(pc.is_in(ids, value_set=rows["id"]).to_numpy(), np.bool_)
    return NoticeTexts(svc, "").adverse(
        chosen,
        active.scheme,
        svc.stamp(),
        active.in_force,
        noticed,
        senders=agency,
        stated=stated_deadlines(svc, ids.to_pylist()),
    )


def _sender(source: str) -> str:
    """Who a notice names as the record's sender: the agency that sent it, or, for an
    import, the name of the file (not its path on the operator's machine)."""
    if source.startswith(AGENCY_PREFIX):
        return source.removeprefix(AGENCY_PREFIX)
    return f"imported from {PurePath(source).name or source}"


def _days(days: int | None) -> str:
    return "no window" if days is None else f"{days} days"


def _delay(scheme: Scheme, t: str) -> int:
    """Days from its recording to a record's effect: ``notice_days`` for an adverse type."""
    spec = scheme.records.get(t)
    return (scheme.notice_days or 0) if spec is not None and spec.adverse else 0


def _longer(days: int | None, than: int | None) -> bool:
    """Whether a window of ``days`` is longer than one of ``than`` (None: no window)."""
    return than is not None and (days is None or days > than)


def _form(rule: Rule) -> tuple[object, ...]:
    """What a rule does with the records it reads (``per`` 1 written out or not)."""
    return (
        rule.measure,
        rule.per or 1,
        rule.points,
        rule.bins,
        rule.cap,
        rule.window_days,
        rule.none_points,
    )


def _heavier(old: Rule, new: Rule, read: bool) -> str | None:
    """How rule ``new`` could give a subject's records a lower contribution than ``old``
    did, or None when it gives none a lower one. A rule with points gives ``points`` per
    ``per`` of its measure over its window, clipped to ``[-cap, cap]`` (SCHEME.md section
    4): with a count or amount measure, more records never lower the measure, so more
    points, a lower cap on a negative side and a higher one on a positive side, a
    shorter window for negative points and a longer one for positive points lower no
    record's contribution. Any other change of a rule (a table of points, days since the
    last record, ratings) is taken as weighing more; so is a longer window of a rule a
    condition of a list or measure reads (``read``), whose measure then grows."""
    new_points, old_points = new.points, old.points
    monotone = ("count", "amount")
    if (
        new_points is None
        or old_points is None
        or (new.measure, new.per or 1) != (old.measure, old.per or 1)
        or new.measure not in monotone
    ):
        if _form(new) != _form(old):
            return f"rule {new.id} measures or weighs its records otherwise"
        return None
    if new_points < old_points:
        return f"rule {new.id} gives {new_points:+d} points, {old_points:+d} under the earlier"
    low = new_points < 0 and _longer(new.cap, old.cap)  # a lower floor
    high = old_points > 0 and _longer(old.cap, new.cap)  # a lower ceiling
    if low or high:
        return f"rule {new.id} is capped at {new.cap}, at {old.cap} under the earlier"
    if (new_points < 0 or read) and _longer(new.window_days, old.window_days):
        return (
            f"rule {new.id} counts for {_days(new.window_days)}, for {_days(old.window_days)} "
            "under the earlier: records that left its window would count again"
        )
    if new_points > 0 and _longer(old.window_days, new.window_days):
        return (
            f"rule {new.id} counts for {_days(new.window_days)}, for {_days(old.window_days)} "
            "under the earlier: records would stop counting in its subject's favour sooner"
        )
    return None


def widening(
    before: Scheme,
    after: Scheme,
    types: Collection[str] | None = None,
    kinds: Collection[str] | None = None,
) -> list[str]:
    """How a later version ``after`` of a scheme would treat the records already in the
    ledger worse than the notices of ``before`` stated them: each way, in words; none when
    it treats them as stated or better. A notice of an adverse record names the rules that
    count it (points, cap, window), the lists it may place the subject on, the day it
    takes effect (:func:`~socialcredit.service.notices.effect_of`); the deadline to contest
    it that a notice stated is kept whatever the schemes say later
    (:func:`~socialcredit.service.notices.appeal_until_column`). ``types`` and ``kinds``:
    the record types and subject kinds the ledger holds (None: any)."""
    out: list[str] = []
    scored = [
        k for k in after.subjects if k not in before.subjects and (kinds is None or k in kinds)
    ]
    if scored and reach(after):
        out.append(f"it scores {' and '.join(scored)} subjects, which the earlier did not")
    old_rules = {r.id: r for r in before.rules}
    conditions = [x.when for x in after.lists] + [x.when for x in after.measures]
    conditioned = {r.id for r in after.rules if any(reads(c, {r.id}) for c in conditions)}
    for t in sorted({*before.records, *after.records}):
        adverse = any(s.records[t].adverse for s in (before, after) if t in s.records)
        if not adverse or (types is not None and t not in types):
            continue
        reading = [r for r in after.rules if t in r.types]
        if reading and _delay(after, t) < _delay(before, t):
            out.append(
                f"{t} takes effect {_delay(after, t)} days after it is recorded, "
                f"{_delay(before, t)} under the earlier"
            )
        for rule in reading:
            old = old_rules.get(rule.id)
            if old is None or t not in old.types:
                out.append(f"rule {rule.id} counts {t}, which the earlier's did not")
            elif (how := _heavier(old, rule, rule.id in conditioned)) is not None:
                out.append(f"{t}: {how}")
        added = [x for x in lists_fed(after, t) if x not in lists_fed(before, t)]
        if added:
            out.append(
                f"{t} may place its subject on {', '.join(added)}, which the earlier did not"
            )
    return out
