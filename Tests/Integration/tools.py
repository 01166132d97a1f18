"""External programs the tests run: a missing one fails the test naming its Debian package
(`make test` installs them all); no test is ever skipped for want of a tool."""

from __future__ import annotations

import os
import shutil

import pytest


def need_tool(tool: str, package: str) -> str:
    """The program's path (a name looked up in PATH, or an executable path)."""
    path = shutil.which(tool) or (tool if os.access(tool, os.X_OK) else None)
    if not path:
        pytest.fail(f"{tool} not found: install the Debian package {package} (`make test` does)", pytrace=False)
    return path
