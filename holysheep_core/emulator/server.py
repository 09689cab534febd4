"""The aiohttp application: routes, authentication, fault injection and response headers."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import json
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .catalog import MODELS, find_model
from .embeddings import embeddings_body
from .errors import APIError, error_body, invalid
from .faults import Fault, FaultKind
from .generation import complete, new_id
from .state import RecordedRequest, ServerState
from .streaming import ABORT, StreamStep, stream_plan
from .validation import parse_chat_request, parse_embedding_request
from .wire import Quirk, completion_body, completion_chunks

__all__ = ["FAULT_HEADER", "QUIRKS_HEADER", "STATE", "bind", "create_app", "start_site"]

FAULT_HEADER = "x-emulator-fault"
QUIRKS_HEADER = "x-emulator-quirks"
STATE = web.AppKey("holysheep_emulator_state", ServerState)
MAX_BODY_BYTES = 64 * 1024 * 1024
# In-flight handlers get this long to finish when the server stops; stalls are cancelled.
SHUTDOWN_TIMEOUT = 0.1

logger = logging.getLogger("holysheep.emulator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _Exchange:
    """What the front middleware learnt about a request, for its route and its headers."""

    request_id: str = field(default_factory=lambda: new_id("req_"))
    body: Any = None
    quirks: frozenset[Quirk] = frozenset()
    fault: Fault | None = None
    tokens: int = 0


# aiohttp runs the middlewares, the route and response preparation in one task.
_EXCHANGE: contextvars.ContextVar[_Exchange] = contextvars.ContextVar("holysheep_exchange")


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


@web.middleware
async def _render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as error:
        return _json(error.body, error.status, error.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        unknown_route = exc.status in (404, 405)
        message = f"Invalid URL ({request.method} {request.path})" if unknown_route else exc.reason
        return _json(error_body(message, type="invalid_request_error"), exc.status)
    except Exception as exc:
        # An emulator bug: say so in the API's shape rather than as aiohttp's text page.
        logger.exception("emulator error on %s %s", request.method, request.path)
        message = f"The emulator failed: {type(exc).__name__}: {exc}"
        return _json(error_body(message, type="server_error"), 500)


def _headers_without_auth(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        if name != "authorization":
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _authenticate(request: web.Request, api_key: str | None) -> None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if api_key is not None and not secrets.compare_digest(key, api_key):
        shown = f"{key[:3]}{'*' * 4}{key[-4:]}" if len(key) > 8 else "*" * len(key)
        raise APIError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")


def _fault_for(request: web.Request, state: ServerState, *, stream: bool) -> Fault | None:
    header = request.headers.get(FAULT_HEADER)
    if header is None:
        return state.schedule.take(request.path, stream=stream)
    try:
        fault = Fault.from_header(header)
    except ValueError as exc:
        raise invalid(f"Invalid {FAULT_HEADER} header: {exc}.", param=FAULT_HEADER) from None
    if fault.in_stream and not stream:
        raise invalid(
            f"Fault {fault.kind.value!r} happens inside a stream: send it with a streaming chat "
            'request ("stream": true).',
            param=FAULT_HEADER,
        )
    return fault


def _quirks(request: web.Request, state: ServerState) -> frozenset[Quirk]:
    names = [q.strip() for q in request.headers.get(QUIRKS_HEADER, "").split(",") if q.strip()]
    try:
        return state.config.quirks | {Quirk(name) for name in names}
    except ValueError:
        known = ", ".join(q.value for q in Quirk)
        raise invalid(
            f"Invalid {QUIRKS_HEADER} header {request.headers[QUIRKS_HEADER]!r}: "
            f"expected a comma-separated list of: {known}.",
            param=QUIRKS_HEADER,
        ) from None


@web.middleware
async def _front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, authenticate, wait and inject faults before any route runs."""
    state = request.app[STATE]
    with state.handling():
        return await _handle(request, handler, state)


async def _handle(request: web.Request, handler: Handler, state: ServerState) -> web.StreamResponse:
    exchange = _Exchange()
    _EXCHANGE.set(exchange)
    body = exchange.body = _loads(await request.read())
    headers = _headers_without_auth(request)
    state.record(RecordedRequest(request.method, request.path, body, headers))
    api = request.path.startswith("/v1/")
    if api:
        _authenticate(request, state.config.api_key)
    stream = isinstance(body, Mapping) and body.get("stream") is True
    fault = _fault_for(request, state, stream=stream)
    exchange.quirks = _quirks(request, state)
    if api and state.config.latency:
        await asyncio.sleep(state.config.latency)
    if fault is None:
        return await handler(request)
    match fault.kind:
        case FaultKind.STATUS:
            return _status_response(fault)
        case FaultKind.WRONG_CONTENT_TYPE:
            return web.Response(text=_html_page(HTTPStatus.OK), content_type="text/html")
        case FaultKind.SLOW_FIRST_BYTE:
            await asyncio.sleep(fault.seconds)
        case _:
            exchange.fault = fault
    return await handler(request)


def _html_page(status: int) -> str:
    title = f"{status} {_phrase(status)}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _fault_error(status: int) -> dict[str, Any]:
    if status == 429:
        return error_body(
            "Rate limit reached for requests. Please try again later.",
            type="requests",
            code="rate_limit_exceeded",
        )
    if status == 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return error_body(message, type="server_error")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_body(f"{_phrase(status)}.", type=kind)


def _status_response(fault: Fault) -> web.Response:
    headers = fault.retry_headers(time.time())
    if fault.body == "html":
        page = _html_page(fault.status_code)
        return web.Response(
            status=fault.status_code, text=page, content_type="text/html", headers=headers
        )
    return _json(_fault_error(fault.status_code), fault.status_code, headers)


async def _stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    exchange = _EXCHANGE.get(None) or _Exchange()
    response.headers["x-request-id"] = exchange.request_id
    response.headers.update(request.app[STATE].rate.charge(exchange.tokens))


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state, exchange = request.app[STATE], _EXCHANGE.get()
    chat = parse_chat_request(exchange.body)
    completion = complete(chat, cached_tokens=state.cached_tokens(chat))
    exchange.tokens = completion.prompt_tokens + completion.completion_tokens
    if not chat.stream:
        return _json(completion_body(completion))
    chunks = completion_chunks(completion, include_usage=chat.include_usage, quirks=exchange.quirks)
    return await _send_stream(request, stream_plan(chunks, exchange.fault))


async def _send_stream(request: web.Request, plan: list[StreamStep]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    delay = request.app[STATE].config.chunk_delay
    try:
        for step in plan:
            if step is ABORT:
                if request.transport is not None:
                    request.transport.abort()
                return response
            if isinstance(step, (int, float)):
                await asyncio.sleep(step)
                continue
            await response.write(step)
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
    except ConnectionError:
        pass  # The client left mid-stream; nothing is waiting for the rest.
    return response


async def _embeddings(request: web.Request) -> web.Response:
    exchange = _EXCHANGE.get()
    body = embeddings_body(parse_embedding_request(exchange.body))
    exchange.tokens = body["usage"]["total_tokens"]
    return _json(body)


async def _list_models(request: web.Request) -> web.Response:
    return _json({"object": "list", "data": [model.to_json() for model in MODELS]})


async def _retrieve_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    model = find_model(model_id)
    if model is None:
        raise APIError(
            404,
            f"The model '{model_id}' does not exist",
            code="model_not_found",
            param="model",
        )
    return _json(model.to_json())


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def create_app(state: ServerState) -> web.Application:
    """The emulator's aiohttp application, serving from state."""
    app = web.Application(middlewares=[_render_errors, _front], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.on_response_prepare.append(_stamp_headers)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/v1/models/{model_id:.+}", _retrieve_model)
    app.router.add_get("/health", _health)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one).

    Raises:
        OSError: host:port cannot be listened on, with a message that says why in one line
            (``strerror``), e.g. the port is already in use.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: unknown host") from None
    except OSError as exc:
        reason = (
            "the port is already in use (choose another, or 0 for a free one)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None


async def start_site(state: ServerState, sock: socket.socket) -> web.AppRunner:
    """Serve the app on sock; ``await runner.cleanup()`` stops it and closes every connection."""
    # handler_cancellation: like the API, stop answering a client that has gone (a stream
    # left early, a cancelled call) instead of generating for nobody.
    runner = web.AppRunner(
        create_app(state),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        handler_cancellation=True,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
