"""The response cache: exact and semantic, in memory or on Redis, with the savings counted.

``ResponseCache`` holds the settings and the entries; a client given ``cache=`` uses it
through ``ClientCache``. Keys (``keys``), stored entries and stream replay (``entries``,
``replay``), the backends (``memory``, ``redis``), the semantic index (``semantic``) and
single flight (``singleflight``) are each their own module.
"""

from .response_cache import DEFAULT_SIMILARITY_THRESHOLD, CacheHit, ResponseCache

__all__ = ["DEFAULT_SIMILARITY_THRESHOLD", "CacheHit", "ResponseCache"]
