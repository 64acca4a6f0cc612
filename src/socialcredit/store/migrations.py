"""The versioned migrations of the service's own tables (agencies, keys, appeals, ...).

The service keeps its tables beside the ledger: in the same SQLite file, or in the same
PostgreSQL schema, with names that start with ``svc_``. Each migration has a version
number, a name and its SQL for each store; :func:`~socialcredit.store.service_db.upgrade`
applies the missing ones in order, each in its own transaction, and records it in
``svc_migrations``. A migration, once released, is never edited: a change is a new one.

Plain SQL in a table rather than Alembic: the ledger speaks to its two stores through
their own drivers (``sqlite3`` and ``psycopg``) and the project has no SQLAlchemy models
for Alembic to compare against; a numbered list of statements per store is all the
service needs, and reads as the schema it builds.

The tables that are records of due process -- notices, appeals, their decisions, the
access log and the rounds that delivered the notices -- are append-only, like the
ledger: triggers refuse updates and deletes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["APPEND_ONLY", "MIGRATIONS", "Migration", "latest"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its SQL per store."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]
    # statements run after the others only when the database was at an earlier version
    # before this upgrade began (not when it is made from nothing), with the time as their
    # one parameter
    upgrading: tuple[str, ...] = ()

    def statements(self, dialect: str) -> tuple[str, ...]:
        """The SQL of this step for ``dialect`` (``sqlite`` or ``postgres``)."""
        return self.sqlite if dialect == "sqlite" else self.postgres


_APPEND_ONLY_1 = ("svc_notices", "svc_appeals", "svc_appeal_decisions", "svc_access_log")
APPEND_ONLY = (
    *_APPEND_ONLY_1,
    "svc_notice_rounds",
    "svc_schemes_in_force",
    "svc_scheme_versions",
)
"""The service's append-only tables (the last three made by versions 4, 7 and 8)."""
_REFUSAL = (
    "is append-only: rows are never changed or deleted; a due-process record is "
    "corrected by a new one"
)


def _tables(serial: str) -> tuple[str, ...]:
    """The tables of version 1; ``serial`` is the store's auto-numbered key."""
    return (
        "CREATE TABLE svc_keys (hash text PRIMARY KEY, role text NOT NULL, "
        "owner text NOT NULL, created_at text NOT NULL, revoked_at text)",
        "CREATE TABLE svc_agencies (name text PRIMARY KEY, types text NOT NULL, "
        "created_at text NOT NULL)",
        "CREATE TABLE svc_submissions (record_id text PRIMARY KEY, agency text NOT NULL, "
        "subject text NOT NULL, type text NOT NULL, submitted_at text NOT NULL)",
        f"CREATE TABLE svc_notices (id {serial}, subject text NOT NULL, "
        "record_id text NOT NULL, scheme text NOT NULL, kind text NOT NULL, "
        "created_at text NOT NULL, effective_on text NOT NULL, body text NOT NULL, "
        "UNIQUE (record_id, scheme, kind))",
        "CREATE INDEX svc_notices_by_subject ON svc_notices (subject)",
        f"CREATE TABLE svc_outbox (id {serial}, notice_id bigint NOT NULL, "
        "created_at text NOT NULL, delivered_at text, attempts integer NOT NULL DEFAULT 0, "
        "last_error text)",
        f"CREATE TABLE svc_appeals (id {serial}, subject text NOT NULL, "
        "record_id text NOT NULL UNIQUE, reason text NOT NULL, filed_on text NOT NULL, "
        "filed_at text NOT NULL)",
        "CREATE INDEX svc_appeals_by_subject ON svc_appeals (subject)",
        "CREATE TABLE svc_appeal_decisions (appeal_id bigint PRIMARY KEY, "
        "outcome text NOT NULL, reason text NOT NULL, reviewer text NOT NULL, "
        "decided_at text NOT NULL, void_record text)",
        f"CREATE TABLE svc_access_log (id {serial}, at text NOT NULL, subject text NOT NULL, "
        "actor text NOT NULL, role text NOT NULL, purpose text NOT NULL, what text NOT NULL)",
        "CREATE INDEX svc_access_log_by_subject ON svc_access_log (subject, at)",
        "CREATE TABLE svc_signin_tokens (hash text PRIMARY KEY, subject text NOT NULL, "
        "expires_at text NOT NULL, used_at text)",
        "CREATE TABLE svc_sessions (hash text PRIMARY KEY, subject text NOT NULL, "
        "expires_at text NOT NULL)",
    )


def _sqlite_triggers(tables: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} {_REFUSAL}'); END"
        for table in tables
        for verb in ("UPDATE", "DELETE")
    )


def _no_replace(table: str, key: str) -> str:
    """SQLite's trigger refusing an insert over a row of ``table`` with the same ``key``: a
    REPLACE deletes the row it replaces, which the delete trigger sees only on connections
    with recursive triggers; this refuses it on any connection."""
    return (
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN EXISTS (SELECT 1 "
        f"FROM {table} WHERE {key}) BEGIN SELECT RAISE(ABORT, '{table} {_REFUSAL}'); END"
    )


def _postgres_triggers(tables: tuple[str, ...]) -> tuple[str, ...]:
    """The triggers of ``tables`` (the function they call is made by version 1)."""
    return tuple(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION svc_refuse_change()"
        for table in tables
    )


_REFUSE_CHANGE = (
    "CREATE FUNCTION svc_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION integrity_constraint_violation USING MESSAGE = TG_TABLE_NAME || "
    f"' {_REFUSAL}'; END $$"
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "service tables: keys, agencies, submissions, notices, outbox, appeals, access log, "
        "sign-in",
        sqlite=(*_tables("INTEGER PRIMARY KEY AUTOINCREMENT"), *_sqlite_triggers(_APPEND_ONLY_1)),
        postgres=(
            *_tables("bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
            _REFUSE_CHANGE,
            *_postgres_triggers(_APPEND_ONLY_1),
        ),
    ),
)


def _webhooks(serial: str) -> tuple[str, ...]:
    """The tables of version 2: subscriptions to lists, their events and deliveries."""
    return (
        "CREATE INDEX svc_outbox_by_notice ON svc_outbox (notice_id)",
        f"CREATE TABLE svc_subscriptions (id {serial}, owner text NOT NULL, "
        "scheme text NOT NULL, list text NOT NULL, url text NOT NULL, purpose text NOT NULL, "
        "secret text NOT NULL, created_at text NOT NULL, deleted_at text)",
        "CREATE TABLE svc_list_members (scheme text NOT NULL, list text NOT NULL, "
        "subject text NOT NULL, PRIMARY KEY (scheme, list, subject))",
        f"CREATE TABLE svc_events (id {serial}, scheme text NOT NULL, list text NOT NULL, "
        "created_at text NOT NULL, body text NOT NULL)",
        f"CREATE TABLE svc_deliveries (id {serial}, event_id bigint NOT NULL, "
        "subscription_id bigint NOT NULL, created_at text NOT NULL, next_at text NOT NULL, "
        "attempts integer NOT NULL DEFAULT 0, delivered_at text, last_error text)",
        "CREATE INDEX svc_deliveries_pending ON svc_deliveries (delivered_at, next_at)",
    )


MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        2,
        "webhooks: subscriptions to lists, list events and their deliveries; outbox index",
        sqlite=_webhooks("INTEGER PRIMARY KEY AUTOINCREMENT"),
        postgres=_webhooks("bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    ),
)

_PENDING = ("CREATE INDEX svc_outbox_pending ON svc_outbox (id) WHERE delivered_at IS NULL",)
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        3,
        "the pending rows of the outbox, indexed (delivery reads them, not the delivered)",
        sqlite=_PENDING,
        postgres=_PENDING,
    ),
)


def latest() -> int:
    """The version the service needs: the last migration's."""
    return MIGRATIONS[-1].version


def _rounds(serial: str, now: str) -> tuple[str, ...]:
    """Version 4: the notices table is the outbox. A log of delivery rounds, append-only,
    whose last row is the point delivery has reached (the next round takes the notices
    numbered after it), replaces an outbox row per notice that each delivery rewrote. It
    starts where the outbox's first pending row was (at least once: a notice delivered
    after a pending one is delivered again), and the outbox goes."""
    return (
        f"CREATE TABLE svc_notice_rounds (id {serial}, up_to bigint NOT NULL, "
        "sent integer NOT NULL, failed integer NOT NULL, error text, at text NOT NULL)",
        "INSERT INTO svc_notice_rounds (up_to, sent, failed, at) SELECT "
        "coalesce((SELECT min(notice_id) - 1 FROM svc_outbox WHERE delivered_at IS NULL), "
        f"(SELECT max(notice_id) FROM svc_outbox), 0), 0, 0, {now}",
        "DROP TABLE svc_outbox",
    )


MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        4,
        "the notices are the outbox: a log of delivery rounds instead of an outbox row per notice",
        sqlite=(
            *_rounds("INTEGER PRIMARY KEY AUTOINCREMENT", "strftime('%Y-%m-%dT%H:%M:%S+00:00')"),
            *_sqlite_triggers(("svc_notice_rounds",)),
        ),
        postgres=(
            *_rounds(
                "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')",
            ),
            *_postgres_triggers(("svc_notice_rounds",)),
        ),
    ),
)

# The ledger's log of batches names the agency of each write (``agency:`` and its name):
# who sent a record is read there, and the service's copy of it goes.
_SUBMISSIONS = ("DROP TABLE svc_submissions",)
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        5,
        "who sent each record is read from the ledger's log of batches: no table of it",
        sqlite=_SUBMISSIONS,
        postgres=_SUBMISSIONS,
    ),
)

# The notices of a subject are found by the ids of its records (the key by record): the
# index by subject, which each batch of notices updated row by row, goes.
_NOTICES_BY_SUBJECT = ("DROP INDEX svc_notices_by_subject",)
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        6,
        "the notices of a subject are found by its records' ids: no index by subject",
        sqlite=_NOTICES_BY_SUBJECT,
        postgres=_NOTICES_BY_SUBJECT,
    ),
)

# The day each scheme came into force in the service (socialcredit.service.activation). In
# a database upgraded from an earlier version, the schemes it ran were in force before the
# table, over every record as recorded: those whose adverse notices it holds, and (a row
# named *upgraded) those the service runs when it next starts. A new database has neither.
_IN_FORCE = (
    "CREATE TABLE svc_schemes_in_force (scheme text PRIMARY KEY, version text NOT NULL, "
    "since text, existing text NOT NULL, notices bigint NOT NULL, at text NOT NULL)",
)
_UPGRADED = (
    "INSERT INTO svc_schemes_in_force (scheme, version, since, existing, notices, at) "
    "SELECT DISTINCT scheme, '', NULL, 'before', 0, ? FROM svc_notices "
    "WHERE kind = 'adverse'",
    "INSERT INTO svc_schemes_in_force (scheme, version, since, existing, notices, at) "
    "VALUES ('*upgraded', '', NULL, 'before', 0, ?)",
)
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        7,
        "the day each scheme came into force, and what became of the records already there",
        sqlite=(
            *_IN_FORCE,
            *_sqlite_triggers(("svc_schemes_in_force",)),
            _no_replace("svc_schemes_in_force", "scheme = NEW.scheme"),
        ),
        postgres=(*_IN_FORCE, *_postgres_triggers(("svc_schemes_in_force",))),
        upgrading=_UPGRADED,
    ),
)


# The versions of each scheme the service has run, with their texts: a row each time it
# started on a version other than the one it ran last (socialcredit.service.activation),
# which may not treat the records already there worse than the notices of that one stated.
# A database upgraded from an earlier version starts with none: they were not kept. And
# the last day to contest its record that each notice states (none: no appeal, or a
# notice written before), which no later scheme or version shortens.
def _versions(serial: str) -> tuple[str, ...]:
    return (
        f"CREATE TABLE svc_scheme_versions (id {serial}, scheme text NOT NULL, "
        "version text NOT NULL, text text NOT NULL, existing text NOT NULL, "
        "at text NOT NULL)",
        "ALTER TABLE svc_notices ADD COLUMN appeal_until text",
    )


MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        8,
        "the versions of the schemes the service has run, with their texts; the appeal "
        "deadline each notice states",
        sqlite=(
            *_versions("INTEGER PRIMARY KEY AUTOINCREMENT"),
            *_sqlite_triggers(("svc_scheme_versions",)),
            _no_replace("svc_scheme_versions", "id = NEW.id"),
        ),
        postgres=(
            *_versions("bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
            *_postgres_triggers(("svc_scheme_versions",)),
        ),
    ),
)
