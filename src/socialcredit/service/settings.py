"""The service's settings: one object, read from ``SOCIALCREDIT_*`` environment variables
and a TOML file, each setting declared once with its default and its help.

Precedence, highest first: values given in code (the command line's options), environment
variables, the file named by ``SOCIALCREDIT_CONFIG`` (or ``--config``), the defaults.
docs/service.md lists every setting; a test checks that the list and this class agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from socialcredit.errors import SocialCreditError
from socialcredit.records import DOTTED_NAME, MAX_NAME

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything the service can be told; see docs/service.md."""

    model_config = SettingsConfigDict(env_prefix="SOCIALCREDIT_", extra="forbid")
    # SOCIALCREDIT_CONFIG names the file; it is not a setting of its own.

    database: str = Field(
        "socialcredit.ledger",
        description="The ledger and the service tables: an SQLite file, or a "
        "postgresql:// URL (with ?schema=NAME).",
    )
    host: str = Field("127.0.0.1", description="The address the server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="The port the server listens on.")
    schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["rongcheng", "court_dishonest_debtors"],
        description="The active schemes: preset names or YAML files (comma-separated in "
        "the environment). A scheme with a critical rights-audit finding is refused.",
    )
    opaque_codes: bool = Field(
        False, description="Accept any subject code, not only Chinese identity codes."
    )
    max_batch: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="The most records one POST /v1/records may carry (at most 1,000,000).",
    )
    public_rate: int = Field(30, ge=1, description="Public lookups a client may make per minute.")
    public_burst: int = Field(
        10, ge=1, description="Public lookups a client may make at once before the rate applies."
    )
    signin_minutes: int = Field(
        15, ge=1, description="How long a one-time sign-in token stays valid."
    )
    session_hours: int = Field(12, ge=1, description="How long a subject's session lasts.")
    review_days: int = Field(
        30,
        ge=1,
        description="Days a reviewer has to decide an appeal; after them the "
        "contested record is voided automatically.",
    )
    void_type: str = Field(
        "appeal.upheld",
        pattern=DOTTED_NAME,
        max_length=MAX_NAME,
        description="The record type of the record that voids an upheld or lapsed appeal.",
    )
    existing_records: Literal["notify", "count"] = Field(
        "notify",
        description="What a scheme the service runs for the first time does with the "
        "records already in the ledger: `notify` writes their notices and counts the adverse "
        "ones from `notice_days` after that day; `count` counts them as recorded, at once, "
        "with no notice (a ledger whose subjects were notified otherwise). Under `notify` "
        "another version of a scheme in force that would treat the records already there "
        "worse than the notices of the version run last stated is refused; `count` lets it.",
    )
    notice_sink: Literal["console", "file", "webhook", "smtp"] = Field(
        "file",
        description="Where notices are delivered: `file` (JSON lines), `console`, "
        "`webhook` (a signed POST of each) or `smtp` (a mail of each, through a relay).",
    )
    notice_file: Path = Field(Path("notices.jsonl"), description="The file of the `file` sink.")
    notice_webhook_url: str | None = Field(
        None, pattern=r"^https?://", description="The URL of the `webhook` sink."
    )
    notice_webhook_secret: str = Field(
        "", description="The key that signs the `webhook` sink's posts (HMAC-SHA256)."
    )
    notice_smtp_host: str | None = Field(None, description="The relay of the `smtp` sink.")
    notice_smtp_port: int = Field(25, ge=1, le=65535, description="The relay's port.")
    notice_smtp_from: str = Field(
        "notices@socialcredit.invalid", description="The sender of the `smtp` sink's mails."
    )
    notice_smtp_to: str = Field(
        "{subject}@notices.invalid",
        description="The address of a subject's mails; `{subject}` is the subject's code.",
    )
    workers: int = Field(
        1, ge=1, le=64, description="Server processes answering on the port (`serve`)."
    )

    @model_validator(mode="after")
    def _sink_complete(self) -> Settings:
        if self.notice_sink == "webhook" and (
            not self.notice_webhook_url or not self.notice_webhook_secret
        ):
            raise ValueError(
                "notice_sink webhook needs notice_webhook_url and notice_webhook_secret"
            )
        if self.notice_sink == "smtp" and not self.notice_smtp_host:
            raise ValueError("notice_sink smtp needs notice_smtp_host")
        return self

    @field_validator("schemes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("schemes")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one scheme is needed")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config: Path | None = None, **given: Any) -> Settings:
    """The settings, from ``given`` values (None values are ignored), the environment and
    the TOML file ``config`` (or ``$SOCIALCREDIT_CONFIG``). Bad values raise
    :class:`~socialcredit.errors.SocialCreditError` naming each setting."""
    values = {k: v for k, v in given.items() if v is not None}
    named = "--config"
    if config is None and os.environ.get("SOCIALCREDIT_CONFIG"):
        config, named = Path(os.environ["SOCIALCREDIT_CONFIG"]), "SOCIALCREDIT_CONFIG"
    cls: type[Settings] = Settings
    if config is not None:
        if not config.is_file():
            raise SocialCreditError(f"no settings file at {config} ({named})")
        cls = type(
            "FileSettings",
            (Settings,),
            {
                "model_config": SettingsConfigDict(
                    **{**Settings.model_config, "toml_file": config}
                ),
            },
        )
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SocialCreditError(f"invalid settings: {problems}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise SocialCreditError(f"cannot read the settings file {config}: {exc}") from None
