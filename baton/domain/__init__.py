"""Baton's domain: what a transfer is and how it moves, with no I/O.

The transfer state machine and the actions it asks for (``transfers``), the admin settings
(``settings``), redaction of personal data (``redaction``), the transfer task's attributes and
the budget that fits them (``attributes``), the shape of the TaskRouter workflow Baton needs
(``workflow``), and the table of Twilio's event types (``twilio_events``).

It may import the standard library, marshmallow, and itself; never Twilio, Redis, requests,
Flask, Celery or prometheus_client, nor ``baton.infrastructure``, ``baton.operator``, ``app``,
``workers`` or ``simulator`` (the import-linter contracts in setup.cfg check it).
"""
