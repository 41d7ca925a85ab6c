"""The deployment files: app.json, the Python pin, the Procfile and gunicorn's settings, checked against the code."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baton.domain.settings import ENVIRONMENT as SETTINGS_ENVIRONMENT
from baton.infrastructure.config import _VARIABLES, load_config
from baton.operator.devstack import read_procfile

REQUIRED = {"TWILIO_ACCOUNT_SID": "AC" + "a" * 32, "TWILIO_AUTH_TOKEN": "auth-token",
            "TWILIO_WORKSPACE_SID": "WS" + "b" * 32, "TRANSFER_WORKFLOW_SID": "WW" + "c" * 32,
            "PUBLIC_BASE_URL": "https://baton.example.com"}
# Read by the Procfile's shell, not by Baton's code.
PROCFILE_VARIABLES = {"CELERY_CONCURRENCY"}
# Set by Heroku or by the Procfile, never by the operator: app.json does not ask for them.
PLATFORM_VARIABLES = {"PORT", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "TWILIO_API_BASE"}


@pytest.fixture
def root() -> Path:
    """The repository's top folder (Procfile, app.json, gunicorn.conf.py)."""
    return Path(__file__).resolve().parents[2]


@pytest.fixture
def app_json(root: Path) -> dict:
    return json.loads((root / "app.json").read_text())


def gunicorn_settings(root: Path, **env: str) -> subprocess.CompletedProcess:
    """gunicorn's own account of its settings, from gunicorn.conf.py with ``env`` as the whole environment."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.run([str(gunicorn), "--config", "gunicorn.conf.py", "--print-config", "app:create_app()"],
                          cwd=root, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60)


def test_app_json_asks_for_every_variable_baton_requires_and_only_for_variables_it_reads(app_json):
    """Every variable load_config requires is required in app.json; each one app.json sets is read by Baton or
    the Procfile; the secrets are generated; each has a description."""
    env = app_json["env"]
    required_by_code = {name for name, (_, _, required) in _VARIABLES.items() if required}
    assert {name for name, spec in env.items() if spec.get("required", True) and "generator" not in spec} \
        == required_by_code
    assert set(env) <= set(_VARIABLES) | set(SETTINGS_ENVIRONMENT) | PROCFILE_VARIABLES
    assert set(_VARIABLES) - set(env) - PLATFORM_VARIABLES == set()
    assert {name for name, spec in env.items() if spec.get("generator") == "secret"} == {
        "ADMIN_TOKEN", "SECRET_KEY", "METRICS_TOKEN"}
    assert all(spec["description"] for spec in env.values())
    # The defaults it proposes are ones Baton accepts.
    load_config({**REQUIRED, **{name: spec["value"] for name, spec in env.items() if "value" in spec}})


def test_app_json_formation_has_one_beat_and_a_redis(app_json):
    """web, worker and exactly one beat (more would run the reconciliation twice over); Heroku Redis."""
    assert set(app_json["formation"]) == set(read_procfile()) == {"web", "worker", "beat"}
    assert app_json["formation"]["beat"]["quantity"] == 1
    assert [addon["plan"].split(":")[0] for addon in app_json["addons"]] == ["heroku-redis"]


def test_python_is_pinned_to_the_version_baton_supports(root):
    """.python-version (Heroku's current convention, runtime.txt is deprecated) names the version setup.cfg asks for,
    and requirements.txt (which the buildpack needs) installs the project itself."""
    pinned = (root / ".python-version").read_text().strip()
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    assert setup["options"]["python_requires"] == f">={pinned}"
    assert re.fullmatch(r"3\.\d+", pinned) and not (root / "runtime.txt").exists()
    assert "--editable ." in (root / "requirements.txt").read_text().splitlines()


def test_procfile_runs_gunicorn_with_its_settings_and_celery_with_sigterm_remapped():
    """web: gunicorn.conf.py, metrics folder set in the shell; worker: SIGTERM is a warm shutdown (SIGQUIT)."""
    processes = read_procfile()
    assert processes["web"].startswith("PROMETHEUS_MULTIPROC_DIR=") and "--config gunicorn.conf.py" in processes["web"]
    assert processes["worker"].startswith("REMAP_SIGTERM=SIGQUIT celery")
    assert " beat " in processes["beat"]


def test_gunicorn_takes_its_settings_from_the_environment(root):
    """WEB_CONCURRENCY workers on $PORT, WEB_TIMEOUT_S for requests and graceful stops, no access log."""
    printed = gunicorn_settings(root, **REQUIRED, WEB_CONCURRENCY="3", PORT="8123", WEB_TIMEOUT_S="15")
    assert printed.returncode == 0, printed.stderr
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed.stdout, re.MULTILINE))
    assert (settings["workers"], settings["bind"], settings["accesslog"]) == ("3", "['0.0.0.0:8123']", "None")
    assert settings["timeout"] == settings["graceful_timeout"] == "15"

    defaults = dict(re.findall(r"^(\w+)\s+= (.*)$", gunicorn_settings(root, **REQUIRED).stdout, re.MULTILINE))
    assert int(defaults["timeout"]) < 30 and int(defaults["graceful_timeout"]) < 30 and defaults["workers"] == "2"


def test_gunicorn_refuses_a_timeout_the_router_would_cut(root):
    """A WEB_TIMEOUT_S over 25 stops gunicorn at boot, naming the variable."""
    refused = gunicorn_settings(root, **REQUIRED, WEB_TIMEOUT_S="40")
    assert refused.returncode != 0 and "WEB_TIMEOUT_S must be a number of seconds between 1 and 25" in refused.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("WEB_CONCURRENCY", "0"), ("WEB_TIMEOUT_S", "30"), ("LOG_LEVEL", "verbose"), ("PROMETHEUS_MULTIPROC_DIR", "tmp/m"),
    ("METRICS_TOKEN", "short"), ("CORS_ORIGINS", "flex.twilio.com"), ("CORS_ORIGINS", "https://flex.twilio.com/x"),
])
def test_operator_variables_are_validated(name, value):
    """A malformed operations variable is refused at start-up by name."""
    with pytest.raises(ValueError, match=name):
        load_config({**REQUIRED, name: value})


def test_operator_variables_are_parsed():
    """The operations variables reach the configuration, with the Flex UI's origin as the default CORS origin."""
    assert load_config(REQUIRED).cors_origins == ("https://flex.twilio.com",)
    config = load_config({**REQUIRED, "WEB_CONCURRENCY": "4", "WEB_TIMEOUT_S": "12", "LOG_LEVEL": "debug",
                          "PROMETHEUS_MULTIPROC_DIR": "/tmp/m", "METRICS_TOKEN": "metrics-token-0123456789",
                          "CORS_ORIGINS": "https://flex.twilio.com, https://flex.example.com/"})
    assert (config.web_concurrency, config.web_timeout_s, config.log_level, config.metrics_dir) == (4, 12, "DEBUG",
                                                                                                    "/tmp/m")
    assert config.metrics_token == "metrics-token-0123456789"
    assert config.cors_origins == ("https://flex.twilio.com", "https://flex.example.com")
