"""The environment contract of docs/contracts.md §3.3."""

import secrets

import pytest

from baton.infrastructure.config import Config, ConfigError, load_config

VALID = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "secret-token",
    "TWILIO_WORKSPACE_SID": "WS" + "b" * 32,
    "TRANSFER_WORKFLOW_SID": "WW" + "c" * 32,
    "PUBLIC_BASE_URL": "https://baton.example.com/",
}
ADMIN_TOKEN = "b2f0e6c1d4a39857e1c0f2a6b9d83e47"  # 32 hex digits: `openssl rand -hex 16`


def problems_of(environ):
    with pytest.raises(ConfigError) as caught:
        load_config(environ)
    return caught.value.problems


def test_minimal_environment_gives_defaults():
    """The five required variables are enough; the rest take their documented defaults."""
    config = load_config(VALID)
    assert config == Config(
        twilio_account_sid=VALID["TWILIO_ACCOUNT_SID"],
        twilio_auth_token="secret-token",
        twilio_workspace_sid=VALID["TWILIO_WORKSPACE_SID"],
        transfer_workflow_sid=VALID["TRANSFER_WORKFLOW_SID"],
        public_base_url="https://baton.example.com",
    )
    assert config.redis_url == "redis://localhost:6379/0"


def test_every_problem_is_reported_at_once_by_name():
    """A broken environment names each missing and malformed variable in one error."""
    problems = problems_of({"TWILIO_ACCOUNT_SID": "AC123", "PUBLIC_BASE_URL": "baton.example.com", "PORT": "http"})
    assert problems == [
        "TWILIO_ACCOUNT_SID must be a sid: 'AC' followed by 32 hex digits",
        "TWILIO_AUTH_TOKEN is missing",
        "TWILIO_WORKSPACE_SID is missing",
        "TRANSFER_WORKFLOW_SID is missing",
        "PUBLIC_BASE_URL must be an absolute http:// or https:// URL",
        "PORT must be a port number between 1 and 65535",
    ]
    assert "TWILIO_AUTH_TOKEN is missing" in str(ConfigError(problems))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_WORKSPACE_SID", "WW" + "b" * 32),
        ("TRANSFER_WORKFLOW_SID", "WW" + "z" * 32),
        ("FALLBACK_QUEUE_SID", "WQ123"),
        ("TWILIO_API_BASE", "ftp://sim"),
        ("REDIS_URL", "http://localhost:6379"),
        ("SUMMARY_PROVIDER", "gpt"),
        ("ADMIN_TOKEN", "short"),
        ("METRICS_TOKEN", "a metrics token with spaces"),
        ("WORKER_SOFT_SHUTDOWN_S", "30"),
    ],
)
def test_malformed_values_are_refused(name, value):
    """A sid of the wrong type or shape, a URL of the wrong scheme or a bad choice is refused by name."""
    (problem,) = problems_of({**VALID, name: value})
    assert problem.startswith(f"{name} ")


def test_openai_summary_needs_its_endpoint_and_model():
    """Choosing the openai summarizer without its URL and model is a configuration error."""
    assert problems_of({**VALID, "SUMMARY_PROVIDER": "openai"}) == [
        "SUMMARY_LLM_URL is missing (SUMMARY_PROVIDER is openai)",
        "SUMMARY_LLM_MODEL is missing (SUMMARY_PROVIDER is openai)",
    ]


def test_admin_token_needs_a_secret_key():
    """The admin page cannot sign sessions without SECRET_KEY."""
    (problem,) = problems_of({**VALID, "ADMIN_TOKEN": ADMIN_TOKEN})
    assert problem.startswith("SECRET_KEY is missing")


@pytest.mark.parametrize(("token", "why"), [
    ("admin-token-for-the-tests", "must be at least 32 characters long"),
    ("a" * 31 + "1", "is too easy to guess"),  # two kinds of characters, but one repeated
    ("12" * 20, "is too easy to guess"),
    ("0123456789" * 3 + "01", "is too easy to guess"),  # digits only: 106 bits at 32 characters
])
def test_a_short_or_guessable_admin_token_stops_start_up(token, why):
    """ADMIN_TOKEN shorter than 32 characters, of too small an alphabet or of a few characters repeated is refused,
    naming the variable, what is wrong and how to generate a good one; the token itself is not repeated."""
    (problem,) = problems_of({**VALID, "ADMIN_TOKEN": token, "SECRET_KEY": "s" * 32})
    assert problem.startswith(f"ADMIN_TOKEN {why}") and problem.endswith("generate one with `openssl rand -hex 32`")
    assert token not in problem


@pytest.mark.parametrize("token", [secrets.token_hex(32), secrets.token_hex(16), secrets.token_urlsafe(32),
                                   "0123456789" * 4, "e2e-admin-token-0123456789abcdef0123456789"])
def test_a_random_admin_token_is_accepted(token):
    """What `openssl rand -hex 32` (or -hex 16, or -base64) and Heroku's generator make is accepted."""
    assert load_config({**VALID, "ADMIN_TOKEN": token, "SECRET_KEY": "s" * 32}).admin_token == token


def test_metrics_stay_private_and_x_forwarded_for_is_trusted_only_on_heroku():
    """By default /metrics is not public, and X-Forwarded-For is trusted only in a Heroku dyno (DYNO is set) or when
    TRUST_X_FORWARDED_FOR says so."""
    config = load_config(VALID)
    assert (config.metrics_public, config.trust_forwarded_for) == (False, False)
    assert load_config({**VALID, "DYNO": "web.1"}).trust_forwarded_for is True
    assert load_config({**VALID, "DYNO": "web.1", "TRUST_X_FORWARDED_FOR": "false"}).trust_forwarded_for is False
    assert load_config({**VALID, "TRUST_X_FORWARDED_FOR": "true", "METRICS_PUBLIC": "true"}) == Config(
        **{**load_config(VALID).__dict__, "metrics_public": True, "trust_forwarded_for": True})
    assert problems_of({**VALID, "METRICS_PUBLIC": "sure"}) == ["METRICS_PUBLIC must be true or false"]


def test_heroku_tls_redis_is_preferred_and_accepts_its_certificate():
    """REDIS_TLS_URL wins over REDIS_URL and gets ssl_cert_reqs=none for Heroku's self-signed certificate."""
    config = load_config({**VALID, "REDIS_URL": "redis://h:1/0", "REDIS_TLS_URL": "rediss://:pw@h:2/0"})
    assert config.redis_url == "rediss://:pw@h:2/0?ssl_cert_reqs=none"
    kept = load_config({**VALID, "REDIS_URL": "rediss://h:2/0?ssl_cert_reqs=required"})
    assert kept.redis_url == "rediss://h:2/0?ssl_cert_reqs=required"


def test_optional_values_are_parsed():
    """Optional variables land in their typed fields."""
    config = load_config({**VALID, "FALLBACK_QUEUE_SID": "WQ" + "d" * 32, "TWILIO_API_BASE": "http://127.0.0.1:9/",
                          "PORT": "8080", "ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": "s" * 32})
    assert (config.fallback_queue_sid, config.twilio_api_base, config.port) == (
        "WQ" + "d" * 32, "http://127.0.0.1:9", 8080)


def test_settings_are_seeded_from_the_environment():
    """Transfer settings take their starting values from like-named variables."""
    config = load_config({**VALID, "MAX_ATTEMPTS": "3", "NOTES_ENABLED": "false", "CLOSE_SENDER_ON": "queued"})
    assert (config.settings.max_attempts, config.settings.notes_enabled, config.settings.close_sender_on) == (
        3, False, "queued")


def test_bad_setting_seeds_are_reported_by_variable():
    """A setting seed out of range is named by its variable, with the reason."""
    assert problems_of({**VALID, "MAX_ATTEMPTS": "0", "CLOSE_SENDER_ON": "never"}) == [
        "CLOSE_SENDER_ON Must be one of: accepted, queued.",
        "MAX_ATTEMPTS Must be greater than or equal to 1 and less than or equal to 20.",
    ]
