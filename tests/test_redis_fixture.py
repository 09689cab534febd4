"""The real Redis the suite starts for itself answers, and comes back after a kill."""

from __future__ import annotations

import pytest


def test_redis_server_answers_and_restarts(redis_server: object, redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(redis_url)
    r.set("k", "v")
    assert r.get("k") == b"v"
    redis_server.restart()
    r = redis.Redis.from_url(redis_url)
    assert r.get("k") is None  # no persistence: a restarted server starts empty
    r.close()
