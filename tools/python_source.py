"""Parsing the project's own Python files, for the checks that read them (the docs' citations,
the import graph, the type-check scope).

CPython 3.11 can fail `ast.parse` with "SystemError: AST constructor recursion depth mismatch"
when code runs in the middle of building the tree, such as a finaliser started by the garbage
collector (python/cpython#106905; seen in the test suite after Pulumi's mocks left futures for
the collector). The parse runs with the collector paused, so nothing else runs in between.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse_file(path: Path) -> ast.Module:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if enabled:
            gc.enable()
