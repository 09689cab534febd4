"""Turning a chat stream's bytes into chunks: sans-IO, shared by the sync and async streams.

:class:`ChunkParser` takes bytes (``b""`` at the end) and gives back normalised
:class:`ChatCompletionChunk` objects, so callers never have to cope with server quirks:

* a tool-call delta without ``index`` gets one (a new ``id`` opens a new call, a delta
  with neither continues the last call), so merged calls never split or collide;
* usage is removed from content chunks and delivered once, in a last chunk with
  ``choices: []``, whether the server sent it once, on every chunk, or in a final chunk;
* ``event: error`` and ``{"error": ...}`` payloads, non-JSON data lines and a stream cut
  before it finished raise :class:`StreamError` instead of ending quietly.
"""

from __future__ import annotations

import json
from decimal import Decimal

from pydantic import ValidationError

from .errors import (
    APIConnectionError,
    APITimeoutError,
    StreamConnectionError,
    StreamError,
    StreamTimeoutError,
)
from .sse_decoder import Need, SSEDecoder, SSEEvent
from .types import ChatCompletionChunk, ChoiceDeltaToolCall, Usage

__all__ = ["ChunkParser"]


class _ToolIndexer:
    """Fills in missing tool-call indices for one choice."""

    __slots__ = ("by_id", "last", "next")

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.last = -1
        self.next = 0

    def fix(self, call: ChoiceDeltaToolCall) -> None:
        if call.index is not None:
            if call.id:
                self.by_id.setdefault(call.id, call.index)
            self.last = call.index
            self.next = max(self.next, call.index + 1)
            return
        if call.id and call.id in self.by_id:
            call.index = self.by_id[call.id]
        elif call.id or self.last < 0:
            call.index = self.next
            self.next += 1
            if call.id:
                self.by_id[call.id] = call.index
        else:
            call.index = self.last
        self.last = call.index


class ChunkParser:
    """Bytes in, normalised chunks out. One per stream; not thread-safe (one reader)."""

    def __init__(self, *, request_id: str | None = None, secret: str | None = None) -> None:
        self._decoder = SSEDecoder()
        self._request_id = request_id
        self._secret = secret
        """The API key: servers echo it in error events, and it must not ride along."""
        self._tools: dict[int, _ToolIndexer] = {}
        self._open_choices: set[int] = set()
        self._finished_choices: set[int] = set()
        self._template: ChatCompletionChunk | None = None
        self.usage: Usage | None = None
        self.done = False
        """True once ``[DONE]`` arrived, or the stream ended with every choice finished."""
        self._text: list[str] = []

    @property
    def partial_content(self) -> str:
        return "".join(self._text)

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Chunks completed by ``data``; ``b""`` marks the end of the stream."""
        self._decoder.feed(data)
        out: list[ChatCompletionChunk] = []
        while True:
            event = self._decoder.next_event()
            if event is Need.DATA:
                return out
            if event is Need.END:
                self._end(out)
                return out
            assert isinstance(event, SSEEvent)
            if self.done:
                continue  # anything after [DONE] is noise
            chunk = self._parse(event)
            if chunk is None:
                self.done = True
                self._flush_usage(out)
            elif chunk.choices:
                out.append(chunk)
            # A usage-only chunk is held back and delivered once, at the end.

    def error(
        self,
        message: str,
        cause: BaseException | None = None,
        *,
        kind: type[StreamError] | None = None,
    ) -> StreamError:
        """A StreamError for a transport failure, carrying what was received so far: a
        ``StreamTimeoutError`` for a timeout, a ``StreamConnectionError`` for a drop."""
        if kind is None:
            kind = StreamError
            if isinstance(cause, APITimeoutError):
                kind = StreamTimeoutError
            elif isinstance(cause, APIConnectionError):
                kind = StreamConnectionError
        err = kind(
            self._redact(message),
            request_id=self._request_id,
            partial_usage=self.usage,
            partial_content=self.partial_content,
        )
        err.__cause__ = cause
        return err

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def _parse(self, event: SSEEvent) -> ChatCompletionChunk | None:
        data = event.data
        if data == "[DONE]":
            return None
        if event.event == "error":
            raise self._server_error(self._redact(data))
        try:
            chunk = ChatCompletionChunk.model_validate_json(data)
        except ValidationError:
            chunk = None
        if chunk is None:
            # Raised outside the except block, so not even as __context__: pydantic's
            # error repeats the event, and the event may echo the key.
            data = self._redact(data)
            if data.lstrip().startswith("{") and '"error"' in data:
                raise self._server_error(data)
            raise self.error(f"malformed stream event: {_excerpt(data)}")
        if chunk.usage is not None:
            self.usage = chunk.usage
            chunk.usage = None
        if self._template is None:
            self._template = chunk
        for choice in chunk.choices:
            self._open_choices.add(choice.index)
            if choice.finish_reason is not None:
                self._finished_choices.add(choice.index)
            delta = choice.delta
            if delta.content:
                self._text.append(delta.content)
            if delta.tool_calls:
                indexer = self._tools.get(choice.index)
                if indexer is None:
                    indexer = self._tools[choice.index] = _ToolIndexer()
                for call in delta.tool_calls:
                    indexer.fix(call)
        return chunk

    def _server_error(self, data: str) -> StreamError:
        message, code = _excerpt(data), None
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            err = payload.get("error", payload)
            if isinstance(err, dict):
                message = str(err.get("message") or message)
                code = err.get("code")
            elif isinstance(err, str):
                message = err
        out = self.error(f"the server reported an error mid-stream: {message}")
        out.code = None if code is None else str(code)
        return out

    def _flush_usage(self, out: list[ChatCompletionChunk]) -> None:
        if self.usage is None or self._template is None:
            return
        out.append(
            ChatCompletionChunk(
                id=self._template.id,
                created=self._template.created,
                model=self._template.model,
                choices=[],
                usage=self.usage,
                system_fingerprint=self._template.system_fingerprint,
            )
        )

    def _end(self, out: list[ChatCompletionChunk]) -> None:
        if self.done:
            return
        # Servers that skip [DONE] still count as complete when every choice finished.
        if self._open_choices and self._open_choices <= self._finished_choices:
            self.done = True
            self._flush_usage(out)
            return
        raise self.error(
            "the stream ended before it was complete (no [DONE], no finish_reason)",
            kind=StreamConnectionError,
        )

    @staticmethod
    def price_last(chunks: list[ChatCompletionChunk], cost: Decimal | None) -> None:
        """Attach the call's cost to its usage chunk, the one place adapters read it."""
        for chunk in chunks:
            if chunk.usage is not None:
                chunk._cost_usd = cost


def _excerpt(data: str, limit: int = 120) -> str:
    return data if len(data) <= limit else data[:limit] + "…"
