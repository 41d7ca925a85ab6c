"""Baton's operator and developer tools: the ``baton`` command and what it runs.

The command line (``cli``), pointing a Twilio account at a deployment (``setup``), checking a
deployment end to end (``doctor``), proving Baton on a real account (``livecheck``), a local stack
of Redis, the Procfile's processes and the simulator (``devstack``), and the load test
(``loadtest``).

It may import ``baton.domain``, ``baton.infrastructure``, ``workers`` and ``simulator``; nothing
but these tools, the bench and the tests imports it.
"""
