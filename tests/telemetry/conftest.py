"""Fixtures of the telemetry tests: HolySheep instrumented with the real OpenTelemetry SDK
(in-memory exporter and reader), and clients on the emulator with a canary key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from otel_helpers import KEY, NO_WAIT, Otel, instrumented

from holysheep_core import AsyncHolySheepClient, HolySheepClient


@pytest.fixture
def otel() -> Iterator[Otel]:
    with instrumented() as o:
        yield o


@pytest.fixture
def otel_with_content() -> Iterator[Otel]:
    with instrumented(capture_content=True) as o:
        yield o


@pytest.fixture
def make_client(emulator: Any) -> Iterator[Callable[..., HolySheepClient]]:
    made: list[HolySheepClient] = []

    def make(**settings: Any) -> HolySheepClient:
        settings = {"api_key": KEY, "base_url": emulator.url, "retry": NO_WAIT, **settings}
        client = HolySheepClient(**settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
async def make_async_client(emulator: Any) -> Any:
    made: list[AsyncHolySheepClient] = []

    def make(**settings: Any) -> AsyncHolySheepClient:
        settings = {"api_key": KEY, "base_url": emulator.url, "retry": NO_WAIT, **settings}
        client = AsyncHolySheepClient(**settings)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
