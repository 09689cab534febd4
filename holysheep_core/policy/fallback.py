"""Fallback models: which models a call may try, and when it moves on to the next one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import CircuitOpenError, ContextLengthExceededError, InvalidRequestError
from .retry import is_retryable

__all__ = ["check_models", "falls_back", "model_chain"]


def check_models(value: Any, param: str = "fallback_models") -> tuple[str, ...]:
    """A list of model names as a tuple; ``InvalidRequestError`` for anything else (a bare
    string too: it would otherwise be read as one model per character)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidRequestError(
            f"{param} must be a list of model names, got {value!r}", param=param
        )
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequestError(
                f"{param} must hold non-empty model names, got {name!r}", param=param
            )
    return tuple(value)


def model_chain(model: str, fallbacks: Sequence[str]) -> tuple[str, ...]:
    """The models a call tries in order: ``model``, then each fallback once."""
    return tuple(dict.fromkeys((model, *fallbacks)))


def falls_back(error: BaseException) -> bool:
    """Whether a call that failed this way on one model should try the next: an open
    breaker, a context-length error, or a retryable error that outlasted its retries."""
    return isinstance(error, (CircuitOpenError, ContextLengthExceededError)) or is_retryable(error)
