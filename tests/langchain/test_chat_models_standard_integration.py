"""langchain-tests' standard integration suite for ``ChatHolySheep``, against the emulator.

Each xfail below names a limit of the emulator, not of the adapter; they are collected in
the README (LangChain section).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_holysheep import ChatHolySheep


def _png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels), made here: the suite never leaves loopback."""

    def part(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + part(b"IHDR", header)
        + part(b"IDAT", zlib.compress(rows))
        + part(b"IEND", b"")
    )


class TestChatHolySheepIntegration(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _emulator(self, base_url: str, api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # Properties cannot take fixtures: keep the emulator's address on the instance.
        self._base_url = base_url
        self._api_key = api_key
        # The image tests download a picture from the web with httpx.get; serve a local
        # one instead (the emulator prices an image part without looking at its pixels).
        png = httpx.Response(200, content=_png())
        monkeypatch.setattr(httpx, "get", lambda *args, **kwargs: png)

    @property
    def chat_model_class(self) -> type[ChatHolySheep]:
        return ChatHolySheep

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # gpt-4.1: a model whose profile takes images, as the image tests need.
        return {"model": "gpt-4.1", "api_key": self._api_key, "base_url": self._base_url}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "deepseek-v3.2"

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:
        details = ["reasoning_output", "cache_read_input"]
        return {"invoke": details, "stream": details}

    def _call(self, model: ChatHolySheep, messages: list[Any], stream: bool) -> AIMessage:
        if not stream:
            return model.invoke(messages)
        full = None
        for chunk in model.stream(messages):
            full = chunk if full is None else full + chunk
        assert isinstance(full, AIMessage)
        return full

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        model = ChatHolySheep(**self.chat_model_params, thinking=True)
        return self._call(model, [HumanMessage("Why is the sky blue?")], stream)

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        # The emulator caches a leading system message it saw before for the same model.
        model = ChatHolySheep(**self.chat_model_params)
        messages = [SystemMessage("You are a shepherd. " * 50), HumanMessage("Count the flock.")]
        model.invoke(messages)
        return self._call(model, messages, stream)

    @pytest.mark.xfail(
        reason="json_mode leaves the keys to the model's reading of the prompt (here "
        "'setup' and 'punchline'); the emulator answers every JSON-mode request with "
        "{'answer': ...}. Own tests check json_mode's wire and parsing.",
        strict=True,
    )
    def test_json_mode(self, model: Any) -> None:
        super().test_json_mode(model)
