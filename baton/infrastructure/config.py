"""Baton's configuration: the environment contract of docs/contracts.md §3.3, read and validated once.

``load_config(os.environ)`` is the only place that reads the environment. Every problem is
collected and reported together, by variable name, so an operator fixes a deployment in one go
and nothing starts half-configured. Tests build ``Config`` objects directly.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from marshmallow import ValidationError, fields

from baton.domain.settings import ENVIRONMENT as SETTINGS_ENVIRONMENT
from baton.domain.settings import Settings, validated_settings

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
SUMMARY_PROVIDERS = ("extractive", "openai")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The Flex UI's own origin: its plugins call the agent API from there.
DEFAULT_CORS_ORIGINS = ("https://flex.twilio.com",)
# ADMIN_TOKEN signs in to the admin page and changes the settings: long and random, or refused at start-up.
MIN_ADMIN_TOKEN_LENGTH = 32
MIN_ADMIN_TOKEN_BITS = 128
MIN_ADMIN_TOKEN_DIFFERENT_CHARACTERS = 8
GENERATE_ADMIN_TOKEN = "generate one with `openssl rand -hex 32`"
# The kinds of characters a token may mix; a character of none of them counts as punctuation.
CHARACTER_KINDS = (string.ascii_lowercase, string.ascii_uppercase, string.digits, string.punctuation)
# Twilio's documented request limits, per second, per account, by the gateway's name of the endpoint
# (docs/twilio-behaviour.md §11): the Interactions API takes 20 requests/s on each endpoint; a TaskRouter list
# filtered by an expression (``tasks.list`` with EvaluateTaskAttributes) 3. TaskRouter's other limits are shown
# only in each workspace's Limits page in Console: an operator adds them with TWILIO_RATE_LIMITS.
DOCUMENTED_TWILIO_RATE_LIMITS: Mapping[str, float] = {
    "interactions.create": 20, "interaction_channels.update": 20, "invites.create": 20, "invites.list": 20,
    "participants.list": 20, "participants.update": 20, "tasks.list": 3,
}
# A paced call waits at most this long for its turn before it is handed back to be tried later.
DEFAULT_TWILIO_PACING_MAX_WAIT_S = 1.0
_ENDPOINT_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")


class ConfigError(ValueError):
    """The environment does not describe a runnable deployment; ``problems`` names each variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Baton is not configured correctly:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Config:
    """Everything Baton reads from its environment.

    twilio_api_base: set only for the simulator and tests; every Twilio request then goes to
        ``{twilio_api_base}/{product}/{path}`` instead of ``https://{product}.twilio.com/{path}``.
    fallback_queue_sid: the queue re-routed transfers go to; None means the original task's queue.
    redis_url: the Celery broker and Baton's store.
    retention_days: how long a finished transfer's record is kept.
    lock_timeout_s: how long a transfer's lock outlives a worker that died holding it (its holder
        renews it before each Twilio call, which the gateway's read timeout bounds).
    reconcile_every_s/reconcile_after_s: how often the reconciliation looks for transfers that stopped
        moving, and after how long without progress a transfer is caught up from Twilio.
    settings: the transfer settings until an administrator changes them (they then live in Redis).
    worker_soft_shutdown_s: how long a stopping worker lets running (and countdown) tasks finish
        before requeueing them; under Heroku's 30 s between SIGTERM and SIGKILL.
    web_concurrency/web_timeout_s: gunicorn's worker processes, and how long one request may take (and
        a stopping worker may finish its requests): under the 30 s after which Heroku's router gives up.
    metrics_dir: prometheus-client's multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``), where every
        gunicorn worker writes its metrics; None in a single process (tests, ``flask run``).
    metrics_token: the bearer token ``/metrics`` asks for.
    metrics_public: without ``metrics_token``, serve ``/metrics`` to anyone; otherwise only to this host.
    trust_forwarded_for: a proxy that appends the client's address to X-Forwarded-For (Heroku's router)
        stands in front of the web: the client is that header's last address, not the TCP peer.
        Unless set, true on Heroku (where ``DYNO`` is set).
    cors_origins: the browser origins allowed to call the agent API (the Flex UI's).
    twilio_rate_limits: requests per second Baton allows itself on each Twilio endpoint (by the gateway's name,
        e.g. ``invites.create``), shared by all its processes; an endpoint not named is not paced.
    twilio_pacing_max_wait_s: the longest a Twilio call waits for its turn; a longer wait is not waited for: the
        call fails as retryable, with the wait as its Retry-After.
    """

    twilio_account_sid: str
    twilio_auth_token: str
    twilio_workspace_sid: str
    transfer_workflow_sid: str
    public_base_url: str
    redis_url: str = DEFAULT_REDIS_URL
    fallback_queue_sid: str | None = None
    twilio_api_base: str | None = None
    admin_token: str | None = None
    secret_key: str | None = None
    summary_provider: str = "extractive"
    summary_llm_url: str | None = None
    summary_llm_api_key: str | None = None
    summary_llm_model: str | None = None
    port: int = 5000
    worker_soft_shutdown_s: float = 20.0
    retention_days: int = 30
    lock_timeout_s: float = 15.0
    reconcile_every_s: float = 30.0
    reconcile_after_s: float = 60.0
    log_level: str = "INFO"
    web_concurrency: int = 2
    web_timeout_s: int = 20
    metrics_dir: str | None = None
    metrics_token: str | None = None
    metrics_public: bool = False
    trust_forwarded_for: bool = False
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    twilio_rate_limits: Mapping[str, float] = field(default_factory=lambda: dict(DOCUMENTED_TWILIO_RATE_LIMITS))
    twilio_pacing_max_wait_s: float = DEFAULT_TWILIO_PACING_MAX_WAIT_S
    settings: Settings = Settings()


def sid_parser(prefix: str) -> Callable[[str], str]:
    """A parser accepting a Twilio sid of one resource type: the prefix and 32 hex digits."""
    pattern = re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$")

    def parse(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"must be a sid: '{prefix}' followed by 32 hex digits")
        return value

    return parse


def parse_url(value: str) -> str:
    """An absolute http(s) URL, without a trailing slash (Baton appends paths to it)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value.rstrip("/")


def parse_redis_url(value: str) -> str:
    """A redis:// or rediss:// URL; Heroku's TLS Redis uses a self-signed certificate.

    Without ``ssl_cert_reqs`` in a rediss:// URL both Celery and redis-py refuse to connect, so the
    value Heroku documents (``none``) is added when the operator did not choose one.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise ValueError("must be a redis:// or rediss:// URL")
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in query:
        query["ssl_cert_reqs"] = "none"
        return urlunsplit(parts._replace(query=urlencode(query)))
    return value


def parse_port(value: str) -> int:
    port = int(value) if value.isdigit() else -1
    if not 0 < port < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return port


def parse_shutdown_seconds(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds <= 25:
        raise ValueError("must be between 0 and 25 seconds (Heroku kills a dyno 30 s after SIGTERM)")
    return seconds


def parse_retention_days(value: str) -> int:
    days = int(value) if value.isdigit() else 0
    if not 1 <= days <= 3650:
        raise ValueError("must be a number of days between 1 and 3650")
    return days


def parse_interval(value: str) -> float:
    seconds = float(value)
    if not 0.1 <= seconds <= 3600:
        raise ValueError("must be a number of seconds between 0.1 and 3600")
    return seconds


def parse_lock_timeout(value: str) -> float:
    seconds = float(value)
    # Above the gateway's read timeout, so one Twilio call never outlives the lock.
    if not 11 <= seconds <= 300:
        raise ValueError("must be a number of seconds between 11 and 300")
    return seconds


def parse_summary_provider(value: str) -> str:
    if value not in SUMMARY_PROVIDERS:
        raise ValueError(f"must be one of: {', '.join(SUMMARY_PROVIDERS)}")
    return value


def parse_secret(value: str) -> str:
    """A secret of 16 characters or more, without whitespace: a bearer token cannot carry any."""
    if len(value) < 16:
        raise ValueError("must be at least 16 characters long")
    if any(character.isspace() for character in value):
        raise ValueError("must not contain spaces or other whitespace")
    return value


def parse_admin_token(value: str) -> str:
    """A token hard to guess: at least 32 characters, about 128 bits by its length and kinds of characters
    (``openssl rand -hex 32`` gives 330), and no short pattern repeated (8 different characters at least)."""
    if len(value) < MIN_ADMIN_TOKEN_LENGTH:
        raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters long; {GENERATE_ADMIN_TOKEN}")
    if (estimated_bits(value) < MIN_ADMIN_TOKEN_BITS
            or len(set(value)) < MIN_ADMIN_TOKEN_DIFFERENT_CHARACTERS):
        raise ValueError(f"is too easy to guess (too few kinds of characters, or too few different ones); "
                         f"{GENERATE_ADMIN_TOKEN}")
    return value


def estimated_bits(token: str) -> float:
    """What guessing ``token`` takes at worst, in bits: its length times log2 of the alphabet that its kinds of
    characters (lowercase, uppercase, digits, punctuation) span. Blind to words and patterns."""
    kinds = {next((kind for kind in CHARACTER_KINDS if character in kind), string.punctuation) for character in token}
    return len(token) * math.log2(sum(len(kind) for kind in kinds))


def parse_boolean(value: str) -> bool:
    """``true`` or ``false`` (and the other spellings the settings accept: 1/0, yes/no, on/off)."""
    if value.lower() in fields.Boolean.truthy:
        return True
    if value.lower() in fields.Boolean.falsy:
        return False
    raise ValueError("must be true or false")


def parse_log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of: {', '.join(LOG_LEVELS)}")
    return value.upper()


def parse_web_concurrency(value: str) -> int:
    workers = int(value) if value.isdigit() else 0
    if not 1 <= workers <= 64:
        raise ValueError("must be a number of processes between 1 and 64")
    return workers


def parse_web_timeout(value: str) -> int:
    seconds = int(value) if value.isdigit() else 0
    if not 1 <= seconds <= 25:
        raise ValueError("must be a number of seconds between 1 and 25 (Heroku's router gives up after 30 s)")
    return seconds


def parse_directory(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def parse_origins(value: str) -> tuple[str, ...]:
    """Comma-separated origins (``https://flex.twilio.com``): a scheme and a host, no path."""
    origins = tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise ValueError(f"must be origins like https://flex.twilio.com, separated by commas: not {origin!r}")
    return origins


def parse_rate_limits(value: str) -> dict[str, float]:
    """``off`` (no pacing at all), or comma-separated ``endpoint=requests per second`` pairs that change the
    documented limits (``invites.create=10,tasks.update=25``); 0 leaves that endpoint unpaced."""
    if value.lower() == "off":
        return {}
    limits = dict(DOCUMENTED_TWILIO_RATE_LIMITS)
    for pair in filter(None, (part.strip() for part in value.split(","))):
        endpoint, _, rate = (piece.strip() for piece in pair.partition("="))
        try:
            per_second = float(rate)
        except ValueError:
            per_second = -1.0
        if not _ENDPOINT_NAME.match(endpoint) or not 0 <= per_second <= 10_000:
            raise ValueError(f"must be off, or endpoint=requests per second pairs separated by commas "
                             f"(invites.create=20): not {pair!r}")
        limits[endpoint] = per_second
    return {endpoint: per_second for endpoint, per_second in limits.items() if per_second > 0}


def parse_pacing_wait(value: str) -> float:
    seconds = float(value)
    # Far under the transfer lock's timeout and the web's request timeout: a worker or a web request waits this
    # long at most for its turn at Twilio.
    if not 0 <= seconds <= 5:
        raise ValueError("must be a number of seconds between 0 and 5")
    return seconds


def _text(value: str) -> str:
    return value


# variable -> (Config field, parser, required)
_VARIABLES: dict[str, tuple[str, Callable[[str], object], bool]] = {
    "TWILIO_ACCOUNT_SID": ("twilio_account_sid", sid_parser("AC"), True),
    "TWILIO_AUTH_TOKEN": ("twilio_auth_token", _text, True),
    "TWILIO_WORKSPACE_SID": ("twilio_workspace_sid", sid_parser("WS"), True),
    "TRANSFER_WORKFLOW_SID": ("transfer_workflow_sid", sid_parser("WW"), True),
    "PUBLIC_BASE_URL": ("public_base_url", parse_url, True),
    "FALLBACK_QUEUE_SID": ("fallback_queue_sid", sid_parser("WQ"), False),
    "TWILIO_API_BASE": ("twilio_api_base", parse_url, False),
    "ADMIN_TOKEN": ("admin_token", parse_admin_token, False),
    "SECRET_KEY": ("secret_key", parse_secret, False),
    "SUMMARY_PROVIDER": ("summary_provider", parse_summary_provider, False),
    "SUMMARY_LLM_URL": ("summary_llm_url", parse_url, False),
    "SUMMARY_LLM_API_KEY": ("summary_llm_api_key", _text, False),
    "SUMMARY_LLM_MODEL": ("summary_llm_model", _text, False),
    "PORT": ("port", parse_port, False),
    "WORKER_SOFT_SHUTDOWN_S": ("worker_soft_shutdown_s", parse_shutdown_seconds, False),
    "RETENTION_DAYS": ("retention_days", parse_retention_days, False),
    "LOCK_TIMEOUT_S": ("lock_timeout_s", parse_lock_timeout, False),
    "RECONCILE_EVERY_S": ("reconcile_every_s", parse_interval, False),
    "RECONCILE_AFTER_S": ("reconcile_after_s", parse_interval, False),
    "LOG_LEVEL": ("log_level", parse_log_level, False),
    "WEB_CONCURRENCY": ("web_concurrency", parse_web_concurrency, False),
    "WEB_TIMEOUT_S": ("web_timeout_s", parse_web_timeout, False),
    "PROMETHEUS_MULTIPROC_DIR": ("metrics_dir", parse_directory, False),
    "METRICS_TOKEN": ("metrics_token", parse_secret, False),
    "METRICS_PUBLIC": ("metrics_public", parse_boolean, False),
    "TRUST_X_FORWARDED_FOR": ("trust_forwarded_for", parse_boolean, False),
    "CORS_ORIGINS": ("cors_origins", parse_origins, False),
    "TWILIO_RATE_LIMITS": ("twilio_rate_limits", parse_rate_limits, False),
    "TWILIO_PACING_MAX_WAIT_S": ("twilio_pacing_max_wait_s", parse_pacing_wait, False),
}


def load_config(environ: Mapping[str, str]) -> Config:
    """Read and validate the environment; raise ConfigError naming every bad or missing variable."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for name, (field_name, parse, required) in _VARIABLES.items():
        raw = environ.get(name, "").strip()
        if not raw:
            if required:
                problems.append(f"{name} is missing")
            continue
        try:
            values[field_name] = parse(raw)
        except ValueError as exc:
            problems.append(f"{name} {exc}")

    # Heroku's Redis add-on names its TLS endpoint REDIS_TLS_URL; prefer it when both are set.
    redis_name = "REDIS_TLS_URL" if environ.get("REDIS_TLS_URL", "").strip() else "REDIS_URL"
    try:
        values["redis_url"] = parse_redis_url(environ.get(redis_name, "").strip() or DEFAULT_REDIS_URL)
    except ValueError as exc:
        problems.append(f"{redis_name} {exc}")

    if values.get("summary_provider") == "openai":
        problems += [
            f"{name} is missing (SUMMARY_PROVIDER is openai)"
            for name in ("SUMMARY_LLM_URL", "SUMMARY_LLM_MODEL")
            if not environ.get(name, "").strip()
        ]
    # Heroku's router appends the client's address to X-Forwarded-For; it sets DYNO in every dyno.
    values.setdefault("trust_forwarded_for", bool(environ.get("DYNO", "").strip()))
    if "admin_token" in values and not environ.get("SECRET_KEY", "").strip():
        problems.append("SECRET_KEY is missing (ADMIN_TOKEN is set: the admin page signs its sessions with it)")

    seeds = {field: environ[name].strip() for name, field in SETTINGS_ENVIRONMENT.items()
             if environ.get(name, "").strip()}
    try:
        values["settings"] = validated_settings(seeds, Settings())
    except ValidationError as exc:
        problems += [f"{field.upper()} {' '.join(messages)}" for field, messages in sorted(exc.messages.items())]

    if problems:
        raise ConfigError(problems)
    return Config(**values)  # type: ignore[arg-type]
