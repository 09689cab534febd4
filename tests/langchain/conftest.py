"""Fixtures for the LangChain adapter: models pointed at the emulator.

Every object gets ``base_url`` and ``api_key`` from the suite's fixtures (never from the
environment), so the same tests can run against a recorded cassette's URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from langchain_holysheep import ChatHolySheep, HolySheepEmbeddings

MODEL = "deepseek-v3.2"
EMBEDDING_MODEL = "text-embedding-3-small"


@pytest.fixture
def make_chat(base_url: str, api_key: str) -> Callable[..., ChatHolySheep]:
    def make(**kwargs: Any) -> ChatHolySheep:
        kwargs.setdefault("model", MODEL)
        return ChatHolySheep(api_key=api_key, base_url=base_url, **kwargs)

    return make


@pytest.fixture
def chat(make_chat: Callable[..., ChatHolySheep]) -> ChatHolySheep:
    return make_chat()


@pytest.fixture
def embeddings(base_url: str, api_key: str) -> HolySheepEmbeddings:
    return HolySheepEmbeddings(model=EMBEDDING_MODEL, api_key=api_key, base_url=base_url)
