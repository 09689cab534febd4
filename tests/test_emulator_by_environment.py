"""The README's promise: code written for the live API reaches the emulator through
``HOLYSHEEP_BASE_URL`` / ``HOLYSHEEP_API_KEY`` alone, in the core and in both frameworks."""

from __future__ import annotations

import pytest

from holysheep_core import HolySheepClient
from holysheep_core.config import ENV_BASE_URL, ENV_KEY
from holysheep_core.emulator import Emulator, reply_to
from langchain_holysheep import ChatHolySheep
from llama_index_holysheep import HolySheep

MODEL = "deepseek-v3.2"


def test_every_framework_reaches_the_emulator_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = Emulator(api_key="hs-local")
    url = emulator.start()
    try:
        monkeypatch.setenv(ENV_BASE_URL, url)
        monkeypatch.setenv(ENV_KEY, "hs-local")
        with HolySheepClient() as client:
            core = client.chat_completion(model=MODEL, messages=[{"role": "user", "content": "a"}])
        assert core.choices[0].message.content == reply_to("a")
        assert ChatHolySheep(model=MODEL).invoke("b").content == reply_to("b")
        assert HolySheep(model=MODEL).complete("c").text == reply_to("c")
        # Three requests, each with the key from the environment (a wrong one gets 401).
        assert [r.path for r in emulator.requests] == ["/v1/chat/completions"] * 3
    finally:
        emulator.stop()
