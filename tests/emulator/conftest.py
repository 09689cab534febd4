from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import API_KEY, auth

from holysheep_core.emulator import Emulator


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[Emulator]:
    emulator = Emulator(api_key=API_KEY)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def shared_client(shared_emulator: Emulator) -> Iterator[httpx.Client]:
    # One client per module: building one costs ~20 ms (its SSL context).
    with httpx.Client(base_url=shared_emulator.url, headers=auth(), timeout=10) as http:
        yield http


@pytest.fixture
def emu(shared_emulator: Emulator) -> Emulator:
    """The module's emulator, reset for this test."""
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def client(emu: Emulator, shared_client: httpx.Client) -> httpx.Client:
    """A client of ``emu`` sending the accepted API key."""
    return shared_client
