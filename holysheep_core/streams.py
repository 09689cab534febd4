"""Chat streams: iterate chunks, close early to release the connection.

Both stream classes share :class:`_StreamBook`, which keeps the books of one stream (first
token time, usage, cost, how it ended) so a stream is recorded exactly once, however it
ends: finished, failed mid-way, or left early by the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .errors import HolySheepError, StreamError
from .observer import CallEnd, CallWatch
from .pipeline import Pipeline
from .policy.guard import CallGuard
from .streaming import ChunkParser
from .transport.base import Reply
from .types import ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream"]


class _StreamBook:
    __slots__ = (
        "attempts",
        "closed",
        "guard",
        "model",
        "parser",
        "pipeline",
        "reply",
        "started",
        "ttft",
        "watch",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        reply: Reply,
        model: str,
        started: float,
        attempts: int,
        guard: CallGuard | None = None,
        watch: CallWatch | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.watch = watch
        self.guard = guard
        self.reply = reply
        self.model = model
        self.started = started
        self.attempts = attempts
        self.parser = ChunkParser(
            request_id=reply.request_id, secret=pipeline.config.api_key.get_secret_value()
        )
        self.ttft: float | None = None
        self.closed = False

    def take(self, data: bytes) -> list[ChatCompletionChunk]:
        chunks = self.parser.feed(data)
        if chunks and self.ttft is None:
            self.ttft = self.pipeline.clock() - self.started
        watch = self.watch
        if watch is not None and chunks:
            watch.chunks(chunks)
        if self.parser.done and not self.closed:
            self.closed = True
            served = chunks[-1].model if chunks else None
            cost = self.pipeline.book(
                self.model,
                served,
                self.parser.usage,
                started=self.started,
                attempts=self.attempts,
                request_id=self.reply.request_id,
                stream=True,
                ttft=self.ttft,
                guard=self.guard,
            )
            ChunkParser.price_last(chunks, cost)
            if watch is not None:
                watch.finished(
                    CallEnd(
                        self.model,
                        self.parser.usage,
                        cost,
                        self.attempts,
                        request_id=self.reply.request_id,
                    )
                )
        return chunks

    def failed(self, exc: BaseException) -> StreamError:
        err = (
            exc
            if isinstance(exc, StreamError)
            else self.parser.error(f"the stream broke: {type(exc).__name__}: {exc}", exc)
        )
        if not self.closed:
            self.closed = True
            self.pipeline.settle(self.guard)
            self.pipeline.ledger.record_failure(err, retries=self.attempts - 1)
            if self.watch is not None:
                self.watch.failed(err)
        return err

    def abandoned(self) -> None:
        if not self.closed:
            self.closed = True
            self.pipeline.settle(self.guard)
            self.pipeline.ledger.record_abandoned(
                self.model, None, retries=self.attempts - 1, ttft=self.ttft
            )
            if self.watch is not None:
                self.watch.abandoned()

    @property
    def request_id(self) -> str | None:
        return self.reply.request_id


class ChatStream:
    """Iterator of :class:`ChatCompletionChunk`. Use as a context manager, or call
    :meth:`close`, to release the connection when you stop before the end."""

    def __init__(self, book: _StreamBook) -> None:
        self._book = book
        self._body: Any = book.reply.stream
        # The generator must not hold `self`: that cycle would keep a stream left by `break`
        # alive until the garbage collector runs, and its connection out of the pool.
        self._gen = self._chunks(book, self._body)

    @property
    def request_id(self) -> str | None:
        return self._book.request_id

    @staticmethod
    def _chunks(book: _StreamBook, body: Any) -> Iterator[ChatCompletionChunk]:
        try:
            for data in body.iter_bytes():
                chunks = book.take(data)
                if book.parser.done:
                    # Stop at [DONE]: a server may hold the connection open after it.
                    body.finish()
                    yield from chunks
                    return
                yield from chunks
            yield from book.take(b"")
        except HolySheepError as exc:
            raise book.failed(exc) from exc.__cause__
        except Exception as exc:  # transport failures: reset, timeout, protocol error
            if book.parser.done:
                return  # [DONE] already came: a broken tail loses nothing of the answer
            raise book.failed(exc) from exc
        finally:
            body.close()

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._gen)

    def close(self) -> None:
        self._book.abandoned()
        self._gen.close()
        self._body.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._book.closed:
            self.close()


class AsyncChatStream:
    """Async iterator of :class:`ChatCompletionChunk`; ``async with`` or :meth:`aclose`
    releases the connection when you stop before the end."""

    def __init__(self, book: _StreamBook) -> None:
        self._book = book
        self._body: Any = book.reply.stream
        self._iter: AsyncIterator[bytes] | None = None
        self._ready: list[ChatCompletionChunk] = []
        self._pos = 0
        self._eof = False

    @property
    def request_id(self) -> str | None:
        return self._book.request_id

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        # A plain class rather than an async generator: leaving early then needs no
        # event-loop finaliser, and close() works from __del__.
        book = self._book
        while self._pos >= len(self._ready):
            if self._eof:
                await self._finish()
                raise StopAsyncIteration
            if self._iter is None:
                self._iter = self._body.aiter_bytes()
            try:
                try:
                    data = await self._iter.__anext__()
                except StopAsyncIteration:
                    data = b""
                    self._eof = True
                self._ready = book.take(data)
                self._pos = 0
                if book.parser.done and not self._eof:
                    # Stop at [DONE]: a server may hold the connection open after it.
                    self._eof = True
                    await self._body.finish()
            except HolySheepError as exc:
                await self._finish()
                raise book.failed(exc) from exc.__cause__
            except Exception as exc:
                await self._finish()
                if book.parser.done:  # [DONE] already came: a broken tail loses nothing
                    self._eof, self._ready, self._pos = True, [], 0
                    continue
                raise book.failed(exc) from exc
        chunk = self._ready[self._pos]
        self._pos += 1
        return chunk

    async def _finish(self) -> None:
        await self._body.aclose()

    async def aclose(self) -> None:
        self._book.abandoned()
        await self._body.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._book.closed:
            self._book.abandoned()
            self._body.close()
