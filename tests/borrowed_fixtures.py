"""One test folder's fixtures borrowed by another, e.g. the HTTP edge's (tests/app) by tests/ops.

Each folder keeps its fixtures in a ``conftest.py`` without a package, so another folder loads that
file under a name of its own and re-exports the fixtures it wants for pytest to find.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent


def conftest_of(folder: str, as_name: str) -> ModuleType:
    """tests/``folder``/conftest.py, loaded as the module ``as_name``.

    The folder goes on ``sys.path`` (at its end, so that no other folder's ``conftest`` is shadowed): its
    conftest imports its helper modules (``edge_support``, …) as top-level modules, as its own tests do.
    """
    if str(TESTS / folder) not in sys.path:
        sys.path.append(str(TESTS / folder))
    spec = importlib.util.spec_from_file_location(as_name, TESTS / folder / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
