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
