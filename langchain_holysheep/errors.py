"""Core errors raised again as langchain-core's ``ModelError`` family.

Each class below inherits from both the core error and the matching langchain-core class, so
code catching either keeps working: ``except ModelRateLimitError`` (framework-generic, used
by retry and fallback logic) and ``except holysheep_core.RateLimitError`` both catch a 429.
The mapped error keeps every field of the core error (``status_code``, ``request_id``,
``retry_after``, ``is_retryable``, ...) and chains it as ``__cause__``.

* ModelInvalidRequestError
  + HolySheepBadRequestError           core BadRequestError (400)
  + HolySheepInvalidRequestError       core InvalidRequestError (refused before sending)
  + HolySheepUnprocessableEntityError  core UnprocessableEntityError (422)
* ContextOverflowError
  + HolySheepContextOverflowError      core ContextLengthExceededError
* ModelAuthenticationError
  + HolySheepAuthenticationError       core AuthenticationError (401)
* ModelPermissionDeniedError
  + HolySheepPermissionDeniedError     core PermissionDeniedError (403)
* ModelNotFoundError
  + HolySheepNotFoundError             core NotFoundError (404)
* ModelRateLimitError
  + HolySheepRateLimitError            core RateLimitError (429)
* ModelAPIError
  + HolySheepServerError               core InternalServerError (>= 500)
  + HolySheepConflictError             core ConflictError (409)
  + HolySheepAPIStatusError            core APIStatusError (any other status)
  + HolySheepStreamError               core StreamError (a stream that broke mid-way)
  + HolySheepResponseValidationError   core APIResponseValidationError
  + HolySheepCircuitOpenError          core CircuitOpenError
* ModelConnectionError
  + HolySheepConnectionError           core APIConnectionError
  + HolySheepStreamConnectionError     core StreamConnectionError (a stream that dropped;
                                       also a HolySheepStreamError)
* ModelTimeoutError
  + HolySheepTimeoutError              core APITimeoutError
  + HolySheepStreamTimeoutError        core StreamTimeoutError (a stream that stalled;
                                       also a HolySheepStreamError)
* ModelError
  + HolySheepBudgetExceededError       core BudgetExceededError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from holysheep_core import errors as core

__all__ = [
    "HolySheepAPIStatusError",
    "HolySheepAuthenticationError",
    "HolySheepBadRequestError",
    "HolySheepBudgetExceededError",
    "HolySheepCircuitOpenError",
    "HolySheepConflictError",
    "HolySheepConnectionError",
    "HolySheepContextOverflowError",
    "HolySheepInvalidRequestError",
    "HolySheepNotFoundError",
    "HolySheepPermissionDeniedError",
    "HolySheepRateLimitError",
    "HolySheepResponseValidationError",
    "HolySheepServerError",
    "HolySheepStreamConnectionError",
    "HolySheepStreamError",
    "HolySheepStreamTimeoutError",
    "HolySheepTimeoutError",
    "HolySheepUnprocessableEntityError",
    "langchain_errors",
    "to_langchain_error",
]


class HolySheepBadRequestError(core.BadRequestError, ModelInvalidRequestError):
    """400: the server refused the request as malformed."""


class HolySheepInvalidRequestError(core.InvalidRequestError, ModelInvalidRequestError):
    """Arguments refused before any request was sent (also a ``ValueError``)."""


class HolySheepUnprocessableEntityError(core.UnprocessableEntityError, ModelInvalidRequestError):
    """422: the server understood the request but cannot process it."""


class HolySheepContextOverflowError(core.ContextLengthExceededError, ContextOverflowError):
    """400: the prompt plus ``max_tokens`` does not fit the model's context window."""


class HolySheepAuthenticationError(core.AuthenticationError, ModelAuthenticationError):
    """401: the API key was refused."""


class HolySheepPermissionDeniedError(core.PermissionDeniedError, ModelPermissionDeniedError):
    """403: the key may not use this model or endpoint."""


class HolySheepNotFoundError(core.NotFoundError, ModelNotFoundError):
    """404: unknown model or endpoint."""


class HolySheepRateLimitError(core.RateLimitError, ModelRateLimitError):
    """429: too many requests or tokens; ``retry_after`` says when to come back."""


class HolySheepServerError(core.InternalServerError, ModelAPIError):
    """>= 500: the server or a proxy in front of it failed."""


class HolySheepConflictError(core.ConflictError, ModelAPIError):
    """409: a conflicting request."""


class HolySheepAPIStatusError(core.APIStatusError, ModelAPIError):
    """Any other error status."""


class HolySheepStreamError(core.StreamError, ModelAPIError):
    """A stream that failed after it started; ``partial_usage`` holds what was reported."""


class HolySheepStreamTimeoutError(core.StreamTimeoutError, HolySheepStreamError, ModelTimeoutError):
    """A stream that stalled mid-way past the read timeout or its deadline: the same
    ``ModelTimeoutError`` as a timeout before the stream, so ``with_retry`` sees both
    (and still a ``HolySheepStreamError``)."""


class HolySheepStreamConnectionError(
    core.StreamConnectionError, HolySheepStreamError, ModelConnectionError
):
    """A stream whose connection dropped mid-way: the same ``ModelConnectionError`` as a
    drop before the stream, so ``with_retry`` sees both (and still a
    ``HolySheepStreamError``)."""


class HolySheepResponseValidationError(core.APIResponseValidationError, ModelAPIError):
    """A success status whose body is not the documented wire format."""


class HolySheepCircuitOpenError(core.CircuitOpenError, ModelAPIError):
    """The circuit breaker sheds this call after repeated failures; nothing was sent."""


class HolySheepConnectionError(core.APIConnectionError, ModelConnectionError):
    """No usable answer reached us: refused, reset, DNS failure, pool exhausted."""


class HolySheepTimeoutError(core.APITimeoutError, ModelTimeoutError):
    """A connect, read, write or pool timeout, or the call's deadline."""


class HolySheepBudgetExceededError(core.BudgetExceededError, ModelError):
    """The call would take spending past the configured USD cap; nothing was sent."""


_BY_CORE_CLASS: dict[type[core.HolySheepError], type[core.HolySheepError]] = {
    core.BadRequestError: HolySheepBadRequestError,
    core.InvalidRequestError: HolySheepInvalidRequestError,
    core.UnprocessableEntityError: HolySheepUnprocessableEntityError,
    core.ContextLengthExceededError: HolySheepContextOverflowError,
    core.AuthenticationError: HolySheepAuthenticationError,
    core.PermissionDeniedError: HolySheepPermissionDeniedError,
    core.NotFoundError: HolySheepNotFoundError,
    core.RateLimitError: HolySheepRateLimitError,
    core.InternalServerError: HolySheepServerError,
    core.ConflictError: HolySheepConflictError,
    core.APIStatusError: HolySheepAPIStatusError,
    core.StreamError: HolySheepStreamError,
    core.StreamTimeoutError: HolySheepStreamTimeoutError,
    core.StreamConnectionError: HolySheepStreamConnectionError,
    core.APIResponseValidationError: HolySheepResponseValidationError,
    core.CircuitOpenError: HolySheepCircuitOpenError,
    core.APIConnectionError: HolySheepConnectionError,
    core.APITimeoutError: HolySheepTimeoutError,
    core.BudgetExceededError: HolySheepBudgetExceededError,
}


def to_langchain_error(exc: BaseException) -> BaseException:
    """The ``ModelError`` twin of a core error, carrying the same fields; anything else
    (a configuration error, an already mapped error, a foreign exception) unchanged."""
    if not isinstance(exc, core.HolySheepError) or isinstance(exc, ModelError):
        return exc
    # The most specific known class in the error's ancestry decides.
    target = next((_BY_CORE_CLASS[c] for c in type(exc).__mro__ if c in _BY_CORE_CLASS), None)
    if target is None:
        return exc
    mapped = target.__new__(target)
    Exception.__init__(mapped, *exc.args)
    mapped.__dict__.update(exc.__dict__)
    mapped.is_retryable = exc.is_retryable
    return mapped


@contextmanager
def langchain_errors() -> Iterator[None]:
    """Raise core errors leaving this block as their ``ModelError`` twins, chained with
    ``from`` so the original stays visible."""
    try:
        yield
    except core.HolySheepError as exc:
        mapped = to_langchain_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc
