"""``socialcredit serve | db | agency | key | subject token | appeals | notices``: the
service and its administration."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from socialcredit.cli.app import app, domain_errors, err, out
from socialcredit.errors import SocialCreditError

if TYPE_CHECKING:
    from socialcredit.service import Service, Settings
    from socialcredit.store.service_db import ServiceDB

db_app = typer.Typer(
    help="The service's database: migrations, schemes retired.", no_args_is_help=True
)
agency_app = typer.Typer(help="Agencies that send records, and their keys.", no_args_is_help=True)
key_app = typer.Typer(help="API keys of operators, reviewers and auditors.", no_args_is_help=True)
subject_app = typer.Typer(help="Subjects' sign-in.", no_args_is_help=True)
appeals_app = typer.Typer(help="Appeals.", no_args_is_help=True)
notices_app = typer.Typer(help="Notices and their delivery.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(agency_app, name="agency")
app.add_typer(key_app, name="key")
app.add_typer(subject_app, name="subject")
app.add_typer(appeals_app, name="appeals")
app.add_typer(notices_app, name="notices")

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="The ledger: an SQLite file or a postgresql:// "
        "URL (default: the setting database, $SOCIALCREDIT_DATABASE).",
    ),
]
SchemeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scheme",
        "-s",
        help="An active scheme (preset or YAML file); repeat for "
        "several (default: the setting schemes).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="A TOML file of settings (default: $SOCIALCREDIT_CONFIG)."),
]


def _settings(database: str | None, config: Path | None, **more: object) -> Settings:
    from socialcredit.service.settings import load_settings

    return load_settings(config, database=database, **more)


def _service(database: str | None, config: Path | None, scheme: list[str] | None) -> Service:
    from socialcredit.service import Service

    # only a server puts a scheme in force (and gives notice of the records already there)
    return Service.open(_settings(database, config, schemes=scheme or None), activate=False)


@app.command()
@domain_errors
def serve(
    database: DatabaseOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
    scheme: Annotated[
        list[str] | None,
        typer.Option(
            "--scheme",
            "-s",
            help="An active scheme (preset or YAML file); repeat for several "
            "(default: rongcheng and court_dishonest_debtors).",
        ),
    ] = None,
    config: ConfigOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes answering on the port (default 1).")
    ] = None,
) -> None:
    """Run the HTTP service (docs/service.md) until interrupted."""
    import os
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from socialcredit.api.app import RUNTIME_VARIABLE, SETTINGS_VARIABLE, SUPERVISOR_VARIABLE
    from socialcredit.service import Service
    from socialcredit.service.access import AccessLogServer
    from socialcredit.service.published import Publisher, publishable
    from socialcredit.service.states import StateCache

    settings = _settings(
        database, config, host=host, port=port, schemes=scheme or None, workers=workers
    )
    _can_listen(settings.host, settings.port)  # before anything is opened or said
    # This process supervises: it delivers the outbox (and checkpoints SQLite's log),
    # scores the ledger for every process and publishes the states, and starts the
    # processes that answer requests; they share the port and reach it through files and
    # sockets in ``runtime``.
    shm = Path("/dev/shm")
    runtime = Path(
        tempfile.mkdtemp(prefix="socialcredit-", dir=shm if os.access(shm, os.W_OK) else None)
    )
    try:
        svc = Service.open(settings, background=True, listen=runtime / "wake")
        publisher = None
        if publishable(svc.schemes) and isinstance(svc.states, StateCache):
            (runtime / "states").mkdir()
            publisher = Publisher(
                svc.states,
                svc.day,
                runtime / "states",
                runtime / "publish",
                database=settings.database,
            )
        log_server = None
        if svc.db.dialect == "sqlite":  # one writer: the access log of every process here
            log_server = AccessLogServer(svc.access_log, runtime / "access")
        try:
            out.print(
                f"serving {len(svc.schemes)} scheme(s) on http://{settings.host}:{settings.port}"
                + (f" with {settings.workers} processes" if settings.workers > 1 else ""),
                markup=False,
            )
            os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
            os.environ[RUNTIME_VARIABLE] = str(runtime)
            os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())
            server = uvicorn.Config(
                "socialcredit.api.app:from_environment",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level="warning",
                access_log=False,
            )
            sock = server.bind_socket()
            try:
                Multiprocess(server, sockets=[sock]).run()
            finally:
                sock.close()
        finally:
            if publisher is not None:
                publisher.close()
            if log_server is not None:
                log_server.close()
            svc.close()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _can_listen(host: str, port: int) -> None:
    """Refuse, naming the settings, an address this process cannot listen on (a port in
    use, a host that is no address of this machine)."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SocialCreditError(
            f"cannot listen on host {host!r} (setting host): {exc.strerror}"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise SocialCreditError(
                f"cannot listen on {host}:{port} (settings host and port): {exc.strerror}"
            ) from None


@db_app.command("upgrade")
@domain_errors
def db_upgrade(database: DatabaseOpt = None, config: ConfigOpt = None) -> None:
    """Create the ledger if there is none, and apply the missing migrations of the service
    tables, each in its own transaction."""
    from socialcredit.store.backends import printable
    from socialcredit.store.service_db import upgrade

    settings = _settings(database, config)
    done = upgrade(settings.database)
    where = printable(settings.database)
    if done.created:
        out.print(f"created ledger {where}", markup=False)
    if done.applied:
        out.print(f"upgraded {where} from version {done.before} to {done.after}", markup=False)
    else:
        out.print(f"{where} is at version {done.after}, the latest", markup=False)


@db_app.command("version")
@domain_errors
def db_version(database: DatabaseOpt = None, config: ConfigOpt = None) -> None:
    """Print the version of the service tables and the latest this program knows."""
    from socialcredit.store.migrations import latest
    from socialcredit.store.service_db import ServiceDB

    db = ServiceDB.connect(_settings(database, config).database)
    try:
        out.print(f"version {db.version()} (latest {latest()})", markup=False)
    finally:
        db.close()


@db_app.command("retire")
@domain_errors
def db_retire(
    scheme: Annotated[str, typer.Argument(help="The id of a scheme in force on the database.")],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Retire a scheme: servers may then run without it, and none runs it again under
    its id."""
    from socialcredit.service.activation import retire

    db = _db(database, config)
    try:
        retire(db, scheme, _now())
    finally:
        db.close()
    out.print(
        f"retired {scheme}: servers may run without it, and a server started with it is "
        "refused (give a new version a scheme id of its own)",
        markup=False,
    )


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _db(database: str | None, config: Path | None) -> ServiceDB:
    from socialcredit.store.service_db import open_service_db

    return open_service_db(_settings(database, config).database)


@agency_app.command("add")
@domain_errors
def agency_add(
    name: Annotated[str, typer.Argument(help="The agency's name.")],
    types: Annotated[
        str, typer.Option("--types", help="The record types it may send, comma-separated.")
    ],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Register an agency and print its API key: shown once, stored only hashed."""
    from socialcredit.service.credentials import add_agency

    db = _db(database, config)
    try:
        key = add_agency(db, name, types.split(","), _now())
    finally:
        db.close()
    out.print(key, markup=False)


@key_app.command("add")
@domain_errors
def key_add(
    name: Annotated[str, typer.Argument(help="Whose key it is (an operator, a reviewer...).")],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="operator, reviewer or auditor; agency: a new key of an agency."
        ),
    ],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make an API key and print it: shown once, stored only hashed."""
    from socialcredit.service.credentials import add_key

    db = _db(database, config)
    try:
        key = add_key(db, role, name, _now())
    finally:
        db.close()
    out.print(key, markup=False)


@key_app.command("revoke")
@domain_errors
def key_revoke(
    name: Annotated[str, typer.Argument(help="Whose keys to revoke.")],
    role: Annotated[str, typer.Option("--role", help="agency, operator, reviewer or auditor.")],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke every key of a name in a role."""
    from socialcredit.service.credentials import revoke

    db = _db(database, config)
    try:
        n = revoke(db, role, name, _now())
    finally:
        db.close()
    out.print(f"revoked {n} key(s)", markup=False)


@subject_app.command("token")
@domain_errors
def subject_token(
    code: Annotated[str, typer.Argument(help="The registered subject's code.")],
    database: DatabaseOpt = None,
    scheme: SchemeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print a one-time sign-in token for a subject (the stand-in for a national e-ID)."""
    from socialcredit.ids import normal_code
    from socialcredit.service.identity import OneTimeTokens

    with _service(database, config, scheme) as svc:
        if not isinstance(svc.identity, OneTimeTokens):
            raise SocialCreditError("the identity provider issues no tokens")
        out.print(svc.identity.issue(normal_code(code)), markup=False)


@appeals_app.command("sweep")
@domain_errors
def appeals_sweep(
    database: DatabaseOpt = None, scheme: SchemeOpt = None, config: ConfigOpt = None
) -> None:
    """Void the records of appeals undecided for review_days (the server does this on the
    first request of each day)."""
    from socialcredit.service.appeals import sweep

    with _service(database, config, scheme) as svc:
        out.print(f"{sweep(svc)} appeal(s) lapsed", markup=False)


@notices_app.command("deliver")
@domain_errors
def notices_deliver(
    database: DatabaseOpt = None, scheme: SchemeOpt = None, config: ConfigOpt = None
) -> None:
    """Hand pending notices to the sink, round after round until none is left."""
    from socialcredit.service.notices import DELIVER_BATCH, deliver

    delivered = failed = 0
    with _service(database, config, scheme) as svc:
        while True:
            sent, failed = deliver(svc)
            delivered += sent
            if failed or sent < DELIVER_BATCH:
                break
    # on standard error: with the console sink, standard output is the notices themselves
    err.print(f"{delivered} notice(s) delivered, {failed} failed", markup=False)
    if failed:
        raise typer.Exit(1)
