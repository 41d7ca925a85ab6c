"""Helpers the tests import by name (``from support.edge import bearer``); the suite's fixtures are in tests/fixtures.

tests/ is on ``sys.path`` because the root conftest.py is there, so this package is found from every test folder.
"""
