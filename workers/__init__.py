"""Baton's Celery workers: every side effect on Twilio happens here, idempotently."""
