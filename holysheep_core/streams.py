"""Chat streams: iterate chunks, close early to release the connection.

Both stream classes share :class:`_StreamBook`, which parses the stream and hands how it
ended to the call's :class:`~holysheep_core.record.CallRecord` (finished, failed mid-way
with the usage reported so far, or left early by the caller), which books it exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .errors import HolySheepError, StreamError
from .record import CallRecord
from .streaming import ChunkParser
from .transport.base import Reply
from .types import ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream"]


class _StreamBook:
    """What a stream reads and books: its parser, and its call's record."""

    __slots__ = ("closed", "parser", "record", "reply")

    def __init__(self, record: CallRecord, reply: Reply) -> None:
        self.record = record
        self.reply = reply
        self.parser = ChunkParser(request_id=reply.request_id)
        self.closed = False

    def take(self, data: bytes) -> list[ChatCompletionChunk]:
        chunks = self.parser.feed(data)
        if chunks:
            self.record.first_token()
        if self.parser.done and not self.closed:
            self.closed = True
            served = chunks[-1].model if chunks else None
            cost = self.record.finished(self.parser.usage, served)
            ChunkParser.price_last(chunks, cost)
        return chunks

    def failed(self, exc: BaseException) -> StreamError:
        err = (
            exc
            if isinstance(exc, StreamError)
            else self.parser.error(f"the stream broke: {type(exc).__name__}: {exc}", exc)
        )
        if not self.closed:
            self.closed = True
            # What the server reported before the failure was billed: it is booked.
            self.record.failed(err, self.parser.usage, answered=True)
        return err

    def abandoned(self) -> None:
        if not self.closed:
            self.closed = True
            self.record.abandoned()

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
            # Read to the end even after [DONE], so the connection goes back to the pool.
            for data in body.iter_bytes():
                yield from book.take(data)
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
