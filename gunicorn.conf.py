"""gunicorn's settings for Baton's web process (the Procfile's ``web``), from the environment Baton reads.

``baton.infrastructure.config`` reads and validates the variables, so a misconfigured deployment stops here, in the
master, with every problem named. Heroku's router gives up on a request after 30 s: requests, and a
graceful stop, get ``WEB_TIMEOUT_S`` (default 20). ``WEB_CONCURRENCY`` workers (default 2; Heroku's
Python buildpack sets it from the dyno size). Logs are JSON lines (``baton.infrastructure.logs``); there is no access
log: the app writes one line per request, with its request id.

Metrics: every worker writes prometheus-client's files into ``PROMETHEUS_MULTIPROC_DIR``, which the
Procfile sets before Python starts; the files of a previous run are removed at boot, and a worker
that exits is marked dead (``baton.infrastructure.metrics``).
"""

import glob
import os

from prometheus_client import multiprocess

from baton.infrastructure.config import load_config
from baton.infrastructure.logs import gunicorn_logconfig

_config = load_config(os.environ)

bind = [f"0.0.0.0:{_config.port}"]
workers = _config.web_concurrency
timeout = _config.web_timeout_s
graceful_timeout = _config.web_timeout_s
keepalive = 5
accesslog = None
# No gunicornc control socket: nothing uses it, and two servers on one machine would share its default path.
control_socket_disable = True
loglevel = _config.log_level.lower()
logconfig_dict = gunicorn_logconfig(_config.log_level)


def on_starting(server):
    """Before any worker starts: the metrics folder exists, without the files of a previous run."""
    if _config.metrics_dir:
        os.makedirs(_config.metrics_dir, exist_ok=True)
        for path in glob.glob(os.path.join(_config.metrics_dir, "*.db")):
            os.remove(path)


def child_exit(server, worker):
    """A worker is gone: its live gauges stop counting (its counters and histograms stay in the sums)."""
    if _config.metrics_dir:
        multiprocess.mark_process_dead(worker.pid, _config.metrics_dir)
