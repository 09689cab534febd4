"""Where the breaker, limiter and budget keep their state: the store interface.

The interface and the default in-memory store live with the operations they apply
(:mod:`.operations`); this module keeps their import path.
"""

from __future__ import annotations

from .operations import InMemoryStore, StateStore

__all__ = ["InMemoryStore", "StateStore"]
