"""Baton's core, in three layers, each importing only those below it (setup.cfg's import-linter contracts).

``baton.domain``: transfers, settings, redaction and attributes, with no I/O.
``baton.infrastructure``: Redis, Twilio, the LLM, Prometheus, and the engine that drives transfers through them.
``baton.operator``: the ``baton`` command, setup, doctor, the live check, the dev stack and the load test.

The HTTP edge lives in ``app``, the Celery workers in ``workers``, the local Twilio in ``simulator``.
"""
