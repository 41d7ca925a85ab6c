"""The worker's entry point (``celery -A workers.main worker``), configured from the environment."""

import os

from baton.infrastructure.config import load_config
from workers.celery_app import create_celery

celery = create_celery(load_config(os.environ))
