"""Baton's infrastructure: everything that talks to Redis, Twilio, the LLM and Prometheus.

Configuration from the environment (``config``), the Redis store (``store``), the Twilio gateway
(``twilio_gateway``), metrics and JSON logs (``metrics``, ``logs``), Event Streams' sink
(``eventstreams``), the context copied from a conversation (``context``), the summary
(``summary``), friendly names (``names``), and the engine that drives a transfer through them
(``engine``).

It may import ``baton.domain`` and the libraries of those services; never ``baton.operator``,
``app``, ``workers`` or ``simulator``. The web edge (``app``) uses it, but not ``engine``, which
only the workers run.
"""
