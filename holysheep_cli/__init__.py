"""The ``holysheep`` command (``demo``, ``chat``, ``models``, ``emulator``), apart from the core.

It needs the ``cli`` extra (typer, rich), and ``demo`` also the frameworks (the ``demo``
extra). The core (``holysheep_core``) never imports this package, so an application that
only uses the client does not pay for, or depend on, a command-line toolkit.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["CLI_EXTRA", "DEMO_EXTRA", "main", "missing_extra"]

CLI_EXTRA = "cli"
DEMO_EXTRA = "demo"
_NEEDS = {
    CLI_EXTRA: ("typer", "rich"),
    DEMO_EXTRA: ("typer", "rich", "langchain_core", "llama_index.core"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package ("llama_index")
        return False


def missing_extra(extra: str) -> str | None:
    """The one-line message naming what to install when ``extra``'s modules are missing."""
    missing = [m for m in _NEEDS[extra] if not _installed(m)]
    if not missing:
        return None
    return (
        f"holysheep: this command needs {', '.join(missing)}; install them with: "
        f"pip install 'holysheep-integrations[{extra}]'"
    )


def main() -> None:
    """Entry point of the ``holysheep`` script."""
    message = missing_extra(CLI_EXTRA)
    if message is not None:
        print(message, file=sys.stderr)
        raise SystemExit(1)
    from .app import run

    run()
