"""Baton's core: configuration, the Twilio gateway, the Redis store and the transfer logic.

The HTTP edge lives in ``app``, the Celery workers in ``workers``, the local Twilio in ``simulator``.
"""
