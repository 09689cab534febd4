"""Fixtures shared by the whole suite: a loopback emulator of the API and its key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# pytester runs small pytest sessions in-process (tests/test_replay_plugin.py).
pytest_plugins = ["pytester"]

TEST_KEY = "hs-test-0123456789abcdef"


@pytest.fixture(scope="session")
def api_key() -> str:
    return TEST_KEY


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[object]:
    from holysheep_core.emulator import Emulator

    emu = Emulator(api_key=TEST_KEY)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(_emulator_server: object) -> object:
    """The session's emulator, with its request log and fault schedule cleared."""
    _emulator_server.reset()
    return _emulator_server


@pytest.fixture
def base_url(emulator: object) -> str:
    return emulator.url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[object]:
    """A real ``redis-server`` on a free loopback port for the whole session.

    ``make test`` installs Debian's ``redis-server``; without it (and outside CI) the tests
    that need it are skipped with that reason, in CI they fail."""
    import os

    from redis_helpers import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: .ci/run installs it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: object) -> str:
    """The session's Redis, emptied (data and scripts) before each test."""
    redis_server.command("FLUSHALL")
    redis_server.command("SCRIPT", "FLUSH")
    return redis_server.url


@pytest.fixture(scope="session")
def raw_server() -> Iterator[object]:
    """A server that misbehaves byte by byte, in another process (``tests/raw_server.py``):
    its pace does not depend on how busy the process under test is."""
    from raw_server import RawServer

    server = RawServer()
    try:
        yield server
    finally:
        server.stop()
