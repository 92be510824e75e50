"""Settings: defaults < TOML file < `PICHUB_SECTION__KEY` env < explicit overrides.

Sections and key names are part of the contract (config.example.toml documents
them). Unknown keys in the TOML file are refused (they are typos); unknown
`PICHUB_*` variables are ignored.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse_many
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pichub import hosts


def _networks(v: list[str]) -> list[str]:
    for cidr in v:
        ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
    return v


#: IP networks in CIDR notation (a bare address is a /32 or /128).
Networks = Annotated[list[str], AfterValidator(_networks)]

EXIT_CONFIG = 2  # the exit status of `pichub` when the configuration is bad
STORAGE_SCHEMES = frozenset({"memory", "redis", "rediss", "redis+unix"})  # rate_limits


class ConfigError(Exception):
    """A bad config, reported as one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    trusted_proxies: Networks = []
    shutdown_timeout_s: float = Field(30.0, ge=0)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    keepalive_timeout_s: float = Field(15.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    allowed_hosts: list[str] = []
    log_level: str = "info"
    session_days: int = Field(30, ge=1)

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [hosts.normalize(entry) for entry in v]

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return v.lower()


class S3Settings(_Section):
    """`[storage.s3]`: the bucket originals live in when `storage.backend = "s3"`.

    Keys left unset fall back to the standard AWS sources (`AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ~/.aws), as the AWS SDKs do.
    """

    endpoint_url: str | None = None  # unset: AWS S3 itself
    bucket: str = ""
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = ""  # every key starts with it, e.g. "pichub/"
    path_style: bool = False  # http://host/bucket/key (MinIO, SeaweedFS, Garage)
    serve: Literal["proxy", "redirect"] = "proxy"  # originals: streamed, or 302 to a presigned URL
    presign_ttl_s: int = Field(300, ge=1, le=604_800)
    local_cache_mb: int = Field(2048, ge=0)  # local copies of originals kept for transforms

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        return v + "/" if v else ""


class StorageSettings(_Section):
    backend: Literal["filesystem", "s3"] = "filesystem"
    s3: S3Settings = S3Settings()
    data_dir: Path = Path("./pichub-data")
    max_upload_mb: int = Field(50, ge=1)
    max_pixels: int = Field(100_000_000, ge=1)
    max_frames: int = Field(500, ge=1)
    max_decode_mb: int = Field(400, ge=1)
    min_free_mb: int = Field(512, ge=0)
    max_files_per_request: int = Field(20, ge=1)
    loader_files: int = Field(500, ge=1)
    loader_sleep_ms: float = Field(10.0, ge=0)
    fetch_allow_private_networks: bool = False
    fetch_allowed_networks: Networks = []
    fetch_timeout_s: float = Field(30.0, gt=0)
    fetch_read_timeout_s: float = Field(10.0, gt=0)

class DatabaseSettings(_Section):
    """`[database]`: unset `url` is the SQLite file in `storage.data_dir`."""

    url: str = ""  # "sqlite:///path/to/pichub.db" or "postgresql://user:pass@host:5432/name"
    pool_size: int = Field(10, ge=3, le=1000)  # PostgreSQL connections per process (a write
    # transaction holds one, reads beside it need others: fewer than 3 starves them)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if v and scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return v


class ImageSettings(_Section):
    default_quality: int = Field(85, ge=1, le=100)
    max_dimension: int = Field(4096, ge=1)
    cache_max_mb: int = Field(1024, ge=0)
    cache_max_files: int = Field(250_000, ge=0)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    queue_size: int = Field(32, ge=0)
    upload_memory_mb: int = Field(320, ge=1)
    signing_key: SecretStr | None = None


class RateLimitSettings(_Section):
    enabled: bool = True
    api: str = "60/minute;1000/hour;10000/day"
    upload: str = "10/minute"
    img_miss: str = "120/minute"
    login: str = "10/minute"
    two_factor: str = "5/minute;20/hour"
    signup: str = "5/hour"
    storage_uri: str = "memory://"

    @field_validator("storage_uri")
    @classmethod
    def _storage(cls, v: str) -> str:
        scheme = urllib.parse.urlsplit(v).scheme.removeprefix("async+")
        if scheme not in STORAGE_SCHEMES:
            raise ValueError(f"unsupported scheme {scheme!r} (use memory:// or "
                             "redis://host:port/db)")
        if scheme != "memory":
            try:
                import redis.asyncio  # noqa: F401
            except ImportError:
                raise ValueError("redis:// needs the 'redis' package, which this "
                                 "installation lacks") from None
        return v

    @property
    def in_memory(self) -> bool:
        """Whether the counters live in this process only (`memory://`)."""
        return urllib.parse.urlsplit(self.storage_uri).scheme.removeprefix("async+") == "memory"

    @field_validator("api", "upload", "img_miss", "login", "two_factor", "signup")
    @classmethod
    def _limits(cls, v: str) -> str:
        try:
            parse_many(v)
        except ValueError as exc:
            raise ValueError(f"not a rate limit string ({exc})") from None
        return v


class WebhookSettings(_Section):
    url: str | None = None
    secret: SecretStr | None = None
    allow_private_networks: bool = False
    timeout_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    backoff_base_s: float = Field(30.0, ge=0)
    concurrency: int = Field(4, ge=1)
    retention_days: int = Field(30, ge=1)


class AuthSettings(_Section):
    require_totp_for_admins: bool = False
    registration: Literal["closed", "invite", "open"] = "closed"
    secret_key: SecretStr | None = None  # unset: generated once into <data_dir>/secret.key

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return v


class OidcSettings(_Section):
    """Single sign-on with an OpenID Connect provider (README: Single sign-on)."""

    enabled: bool = False
    issuer: str = ""  # discovery at {issuer}/.well-known/openid-configuration
    discovery_url: str = ""  # set only when the document lives elsewhere
    client_id: str = ""
    client_secret: SecretStr | None = None
    scopes: str = "openid profile email"
    button_label: str = "Sign in with single sign-on"
    auto_create: bool = True
    link_by_email: bool = False
    groups_claim: str = "groups"
    admin_group: str = ""  # set: the admin flag follows membership at every sign-in
    password_login: bool = True  # false (with `enabled`): the password form is gone
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("issuer", "discovery_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: str) -> str:
        if "openid" not in v.split():
            raise ValueError("must include openid")
        return " ".join(v.split())

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if self.enabled and not (self.issuer or self.discovery_url):
            raise ValueError("enabled needs issuer (or discovery_url)")
        if self.enabled and not self.client_id:
            raise ValueError("enabled needs client_id")
        return self

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or self.issuer + "/.well-known/openid-configuration"

    @property
    def password_form(self) -> bool:
        """Whether /login offers the password form (always, unless SSO replaces it)."""
        return self.password_login or not self.enabled


class Settings(BaseSettings):
    """All of PicHub's configuration; tests build it directly."""

    model_config = SettingsConfigDict(
        env_prefix="PICHUB_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    database: DatabaseSettings = DatabaseSettings()
    images: ImageSettings = ImageSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    webhooks: WebhookSettings = WebhookSettings()
    auth: AuthSettings = AuthSettings()
    oidc: OidcSettings = OidcSettings()

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


    @property
    def shared_database(self) -> bool:
        """Whether `database.url` names a server (PostgreSQL) that processes on several
        machines may share (docs/scale-out.md), rather than a SQLite file."""
        return self.database.url.startswith(("postgresql://", "postgres://"))


def check_shared(settings: Settings) -> None:
    """What `pichub serve` refuses when processes on several machines may share the
    database: a secret key each would generate for itself (docs/scale-out.md)."""
    if settings.shared_database and settings.auth.secret_key is None:
        raise ConfigError("config: auth.secret_key: must be set when database.url is "
                          "PostgreSQL (every process must use the same key)")


#: The driver each engine needs, and the install that has it (the `scale` extra).
_DRIVERS = {"asyncpg": "PostgreSQL (database.url)", "aiobotocore": "S3 (storage.backend)"}


def check_engines(settings: Settings) -> None:
    """Refuse, in one line, engines whose driver this PicHub lacks (the everyday zipapp
    leaves them out: docs/scale-out.md)."""
    if settings.shared_database:
        require_driver("asyncpg")
    if settings.storage.backend == "s3":
        require_driver("aiobotocore")


def require_driver(module: str) -> None:
    """ConfigError unless the driver `module` (a key of `_DRIVERS`) can be imported."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"config: {_DRIVERS[module]} needs {module}, which this PicHub "
                          "lacks: run pichub-full.pyz, or pip install 'pichub[scale]'")


SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
}


def find_config(path: str | Path | None) -> Path | None:
    """`--config`, else `$PICHUB_CONFIG`, else `./config.toml` if present."""
    if path:
        return Path(path)
    env = os.environ.get("PICHUB_CONFIG")
    if env:
        return Path(env)
    default = Path("config.toml")
    return default if default.is_file() else None


def _check_unknown_keys(data: dict[str, Any]) -> None:
    for section, values in data.items():
        model = SECTIONS.get(section)
        if model is None:
            raise ConfigError(f"config: unknown section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"config: [{section}] must be a table")
        for key in values:
            if key not in model.model_fields:
                raise ConfigError(f"config: unknown key {section}.{key}")


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load the settings; raises ConfigError with one line naming the bad key."""
    config_path = find_config(path)
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config: cannot read {config_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {config_path} is not valid TOML: {exc}") from None
        _check_unknown_keys(data)

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=config_path)

    try:
        settings: Settings = _FileSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config: {key}: {err['msg']}") from None
    return settings
