"""Streams a cache hands out: a hit replayed as chunks, and a miss recorded as it passes so
the whole answer can be stored once it has finished."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..types import ChatCompletion, ChatCompletionChunk
from .entries import assemble

__all__ = ["AsyncCachedChatStream", "AsyncRecordingStream", "CachedChatStream", "RecordingStream"]


class CachedChatStream:
    """A cached answer as a stream: the same interface as ``ChatStream``, no connection."""

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self._chunks = iter(chunks)

    request_id = None
    cache_hit = True

    def __iter__(self) -> CachedChatStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks = iter(())

    def __enter__(self) -> CachedChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCachedChatStream:
    """A cached answer as an ``AsyncChatStream``."""

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self._chunks = iter(chunks)

    request_id = None
    cache_hit = True

    def __aiter__(self) -> AsyncCachedChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._chunks = iter(())

    close = aclose

    async def __aenter__(self) -> AsyncCachedChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Recorder:
    """The chunks seen so far; hands the assembled answer on once, at a clean end."""

    def __init__(self, store: Callable[[ChatCompletion], Any]) -> None:
        self.chunks: list[ChatCompletionChunk] = []
        self.store = store

    def finished(self) -> Any:
        store, self.store = self.store, None
        if store is not None and (completion := assemble(self.chunks)) is not None:
            return store(completion)
        return None


class RecordingStream:
    """A live ``ChatStream`` that stores its answer once read to the end. A stream left
    early or broken stores nothing."""

    cache_hit = False

    def __init__(self, stream: Any, store: Callable[[ChatCompletion], None]) -> None:
        self._stream = stream
        self._recorder = _Recorder(store)

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    def __iter__(self) -> RecordingStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._recorder.finished()
            raise
        self._recorder.chunks.append(chunk)
        return chunk

    def close(self) -> None:
        self._recorder.store = None
        self._stream.close()

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRecordingStream:
    """The async twin of :class:`RecordingStream`."""

    cache_hit = False

    def __init__(self, stream: Any, store: Callable[[ChatCompletion], Any]) -> None:
        self._stream = stream
        self._recorder = _Recorder(store)

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    def __aiter__(self) -> AsyncRecordingStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            pending = self._recorder.finished()
            if pending is not None:
                await pending
            raise
        self._recorder.chunks.append(chunk)
        return chunk

    async def aclose(self) -> None:
        self._recorder.store = None
        await self._stream.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
