"""Settings from environment variables and an optional env file (API.md §1.8).

A missing or invalid value raises ConfigError naming the variable; the process entry point turns
it into one line on stderr and exit status 2, before anything is served.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


class ConfigError(ValueError):
    """A configuration variable is missing or invalid."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"configuration error: {variable}: {problem}")
        self.variable = variable
        self.problem = problem


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (comments, blank lines, `export`, single/double quotes)."""
    values: dict[str, str] = {}
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as error:
        raise ConfigError("ENV_FILE", f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    except UnicodeDecodeError as error:  # never its text: the line may hold a password
        line_number = data.count(b"\n", 0, error.start) + 1
        raise ConfigError("ENV_FILE", f"{path}:{line_number} is not UTF-8 text") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError("ENV_FILE", f"{path}:{number} is not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The effective variables: the env file first, real environment variables override it."""
    environ = dict(os.environ if environ is None else environ)
    env_file = environ.get("ENV_FILE")
    path = Path(env_file) if env_file else Path(".env")
    merged: dict[str, str] = {}
    if path.is_file():
        merged.update(read_env_file(path))
    elif env_file and not path.exists():
        raise ConfigError("ENV_FILE", f"file {env_file} does not exist")
    merged.update(environ)
    return merged


def _int(name: str, raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")
    return value


def _decimal(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(name, f"expected a decimal number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(name, f"must be a finite number >= 0, got {raw!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(name, f"expected true/false, got {raw!r}")


def _origins(name: str, raw: str) -> tuple[str, ...]:
    text = raw.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(name, "expected a JSON list of origins") from None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise ConfigError(name, "expected a JSON list of origin strings")
        return tuple(parsed)
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _proxies(name: str, raw: str) -> tuple[str, ...]:
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    for entry in entries:
        if entry == "unix":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(name, f"expected addresses, networks or 'unix', got {entry!r}") from None
    return entries


DATABASE_URL_FORMS = (
    "postgres://user[:password]@host[:port]/database, or "
    "postgres://user[:password]@[:port]/database?host=/socket/folder "
    "(percent-encode / # ? @ : in the password, e.g. / as %2F)"
)


def _database_port(parsed: Any) -> int | None:
    """The URL's port; a URL that has none readable is a ConfigError that never quotes it.

    urllib's own ValueError quotes what it read as the port: in a URL whose password holds an
    unencoded / # or ?, that is the start of the password (postgres://app:Ab3x/9k@host/db).
    """
    try:
        return parsed.port
    except ValueError:
        raise ConfigError("DATABASE_URL", "expected " + DATABASE_URL_FORMS) from None


def database_address(database_url: str) -> tuple[str, int]:
    """(host, port) of a DATABASE_URL, the one reading shared by the pool, the probes and libpq.

    A `host` query parameter names the folder of PostgreSQL's Unix-domain socket, as in libpq's
    URIs (`postgres://app:pw@/clicknback?host=/var/run/postgresql`): asyncpg and libpq take a
    host that starts with "/" as that folder, and the port picks the socket file
    (.s.PGSQL.<port>). On a host that runs its own PostgreSQL the socket skips the TCP stack,
    which costs both sides CPU on every query (docs/benchmarks.md).
    """
    parsed = urlparse(database_url)
    socket_folder = parse_qs(parsed.query).get("host", [""])[0]
    return socket_folder or parsed.hostname or "127.0.0.1", _database_port(parsed) or 5432


def validated_database_url(name: str, raw: str) -> str:
    value = raw.strip()
    # Never echo the value in an error: it may carry a password.
    try:
        parsed = urlparse(value)
    except ValueError:
        raise ConfigError(name, "expected " + DATABASE_URL_FORMS) from None
    _database_port(parsed)
    socket_folders = parse_qs(parsed.query).get("host", [])
    if socket_folders and not all(folder.startswith("/") for folder in socket_folders):
        raise ConfigError(name, "the host parameter must be the absolute path of PostgreSQL's socket folder")
    if (
        parsed.scheme not in {"postgres", "postgresql"}
        or not (parsed.hostname or socket_folders)
        or not parsed.path.strip("/")
    ):
        raise ConfigError(name, "expected " + DATABASE_URL_FORMS)
    return value


# The largest MAX_PAGE_SIZE: server/pagination.py writes every page size up to it into the SQL (ADR 0048).
PAGE_SIZE_CEILING = 1000


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    oauth_hash_key: str = field(repr=False)
    access_token_ttl_minutes: int = 15
    refresh_token_ttl_minutes: int = 43200
    max_cashback_percentage: Decimal = Decimal("20")
    default_page_size: int = 20
    max_page_size: int = 100
    max_body_bytes: int = 1048576
    login_max_failures: int = 5
    login_window_minutes: int = 15
    payout_minimum_amount: Decimal = Decimal("10.00")
    purchase_confirmation_interval_seconds: float = 60
    purchase_max_verification_attempts: int = 3
    purchase_job_batch_size: int = 500
    purchase_job_enabled: bool = True
    rejection_merchant_id: str = ""
    cors_allowed_origins: tuple[str, ...] = ("https://clicknback.com",)
    slow_query_ms: int = 1000
    db_pool_min_size: int = 2
    db_pool_max_size: int = 20
    # How long a starting instance waits for a PostgreSQL that is not accepting connections yet
    # (after a host reboot it can finish its recovery after supervisor has started the instances).
    db_startup_wait_seconds: int = 60
    # Bounded waits (API.md §1.9): for a pooled connection, a row lock, one statement.
    db_pool_timeout_seconds: float = 5.0
    db_lock_timeout_ms: int = 2000
    db_statement_timeout_ms: int = 10000
    graceful_shutdown_seconds: float = 15.0
    log_format: str = "json"
    log_level: str = "INFO"
    log_file: str = ""
    # Two hashes at once per process (each argon2id hash uses one lane), with a few waiting; more
    # than that answer 503 SERVICE_BUSY at once (API.md §2.3). One thread refuses too many logins
    # under the normal mix (docs/adr/0010).
    password_hash_threads: int = 2
    password_hash_queue: int = 16
    # argon2id cost for new hashes: OWASP's recommendation is the floor (API.md §2.3).
    password_hash_memory_kib: int = 19456
    password_hash_iterations: int = 2
    password_hash_parallelism: int = 1
    # Peers whose X-Real-IP names the client (addresses or networks, "unix" for the Unix socket):
    # nginx on the same host, as production runs it. Anyone else is named by their own address.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1", "unix")

    def safe_summary(self) -> dict[str, Any]:
        """Settings without secrets, for the startup log line."""
        hidden = {"database_url", "oauth_hash_key"}
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name not in hidden}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = load_environment(environ)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    database_url = get("DATABASE_URL")
    if database_url is None:
        raise ConfigError("DATABASE_URL", "is required (postgres://user@host:port/database)")
    key = get("OAUTH_HASH_KEY")
    if key is None:
        raise ConfigError("OAUTH_HASH_KEY", "is required (an HS256 secret of at least 32 bytes)")
    if len(key.encode()) < 32:
        raise ConfigError("OAUTH_HASH_KEY", "must be at least 32 bytes long")

    values: dict[str, Any] = {
        "database_url": validated_database_url("DATABASE_URL", database_url),
        "oauth_hash_key": key,
    }
    integer_settings = {
        "OAUTH_ACCESS_TOKEN_TTL": ("access_token_ttl_minutes", 1, None),
        "OAUTH_REFRESH_TOKEN_TTL": ("refresh_token_ttl_minutes", 1, None),
        "DEFAULT_PAGE_SIZE": ("default_page_size", 1, 100),
        "MAX_PAGE_SIZE": ("max_page_size", 1, PAGE_SIZE_CEILING),
        "MAX_BODY_BYTES": ("max_body_bytes", 1024, None),
        "LOGIN_MAX_FAILURES": ("login_max_failures", 1, None),
        "LOGIN_WINDOW_MINUTES": ("login_window_minutes", 1, None),
        "PURCHASE_MAX_VERIFICATION_ATTEMPTS": ("purchase_max_verification_attempts", 1, None),
        "PURCHASE_JOB_BATCH_SIZE": ("purchase_job_batch_size", 1, 10_000),
        "SLOW_QUERY_MS": ("slow_query_ms", 1, None),
        "DB_POOL_MIN_SIZE": ("db_pool_min_size", 0, None),
        "DB_POOL_MAX_SIZE": ("db_pool_max_size", 1, None),
        "DB_STARTUP_WAIT_SECONDS": ("db_startup_wait_seconds", 0, 3600),
        "PASSWORD_HASH_THREADS": ("password_hash_threads", 1, 64),
        "DB_LOCK_TIMEOUT_MS": ("db_lock_timeout_ms", 1, 3_600_000),
        "DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", 1, 3_600_000),
        "PASSWORD_HASH_QUEUE": ("password_hash_queue", 0, 10_000),
        "PASSWORD_HASH_MEMORY_KIB": ("password_hash_memory_kib", 19456, 4 * 1024 * 1024),
        "PASSWORD_HASH_ITERATIONS": ("password_hash_iterations", 2, 100),
        "PASSWORD_HASH_PARALLELISM": ("password_hash_parallelism", 1, 64),
    }
    for variable, (attribute, minimum, maximum) in integer_settings.items():
        raw = get(variable)
        if raw is not None:
            values[attribute] = _int(variable, raw, minimum, maximum)
    for variable, attribute in {
        "MAX_CASHBACK_PERCENTAGE": "max_cashback_percentage",
        "PAYOUT_MINIMUM_AMOUNT": "payout_minimum_amount",
    }.items():
        raw = get(variable)
        if raw is not None:
            values[attribute] = _decimal(variable, raw)
    if values.get("max_cashback_percentage", Decimal(0)) > 100:
        raise ConfigError("MAX_CASHBACK_PERCENTAGE", "must be at most 100")
    for variable, attribute in {
        "PURCHASE_CONFIRMATION_INTERVAL_SECONDS": "purchase_confirmation_interval_seconds",
        "GRACEFUL_SHUTDOWN_SECONDS": "graceful_shutdown_seconds",
        "DB_POOL_TIMEOUT_SECONDS": "db_pool_timeout_seconds",
    }.items():
        raw = get(variable)
        if raw is not None:
            try:
                number = float(raw)
            except ValueError:
                raise ConfigError(variable, f"expected a number of seconds, got {raw!r}") from None
            if not number > 0:
                raise ConfigError(variable, "must be greater than 0")
            values[attribute] = number
    raw = get("PURCHASE_JOB_ENABLED")
    if raw is not None:
        values["purchase_job_enabled"] = _bool("PURCHASE_JOB_ENABLED", raw)
    rejection = env.get("REJECTION_MERCHANT_ID", "").strip()
    if rejection:
        import uuid

        try:
            rejection = str(uuid.UUID(rejection))
        except ValueError:
            raise ConfigError("REJECTION_MERCHANT_ID", "expected a UUID or an empty value") from None
    values["rejection_merchant_id"] = rejection
    raw = get("CORS_ALLOWED_ORIGINS")
    if raw is not None:
        values["cors_allowed_origins"] = _origins("CORS_ALLOWED_ORIGINS", raw)
    raw = get("TRUSTED_PROXIES")
    if raw is not None:
        values["trusted_proxies"] = _proxies("TRUSTED_PROXIES", raw)
    raw = get("LOG_FORMAT")
    if raw is not None:
        if raw not in {"json", "console"}:
            raise ConfigError("LOG_FORMAT", f"expected json or console, got {raw!r}")
        values["log_format"] = raw
    raw = get("LOG_LEVEL")
    if raw is not None:
        if raw.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("LOG_LEVEL", f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
        values["log_level"] = raw.upper()
    values["log_file"] = env.get("LOG_FILE", "").strip()
    settings = Settings(**values)
    if settings.default_page_size > settings.max_page_size:
        raise ConfigError("DEFAULT_PAGE_SIZE", "must not exceed MAX_PAGE_SIZE")
    if settings.db_pool_min_size > settings.db_pool_max_size:
        raise ConfigError("DB_POOL_MIN_SIZE", "must not exceed DB_POOL_MAX_SIZE")
    return settings
