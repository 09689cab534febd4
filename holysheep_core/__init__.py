"""HolySheep AI client: pooled sync and async HTTP, retries that honour Retry-After,
SSE streaming, typed models and errors, and usage and cost accounting."""

from .accounting import CacheStats, Ledger, Stats, TokenUsage, UsageTally
from .cache import CacheHit, ResponseCache
from .chat_stream import AsyncChatStream, ChatStream
from .client import AsyncHolySheepClient, Health, HolySheepClient
from .config import DEFAULT_BASE_URL, ClientConfig, Timeouts
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    BudgetUnavailableError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    ContextLengthExceededError,
    HolySheepError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeoutError,
    RateLimitError,
    StreamConnectionError,
    StreamError,
    StreamTimeoutError,
    UnprocessableEntityError,
)
from .hooks import BreakerChanged, FallbackUsed, RetryScheduled, UsageRecorded
from .policy.breaker import BreakerPolicy, CircuitState
from .policy.budget import Budget, budget_scope
from .policy.ratelimit import Limit, RateLimits
from .policy.retry import RetryPolicy
from .policy.store import InMemoryStore, StateStore
from .pricing import ModelPrice, ModelProfile, PriceTable
from .types import ChatCompletion, ChatCompletionChunk, EmbeddingResponse, Model, Usage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncHolySheepClient",
    "AuthenticationError",
    "BadRequestError",
    "BreakerChanged",
    "BreakerPolicy",
    "Budget",
    "BudgetExceededError",
    "BudgetUnavailableError",
    "CacheHit",
    "CacheStats",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "CircuitOpenError",
    "CircuitState",
    "ClientConfig",
    "ConfigurationError",
    "ConflictError",
    "ContextLengthExceededError",
    "EmbeddingResponse",
    "FallbackUsed",
    "Health",
    "HolySheepClient",
    "HolySheepError",
    "InMemoryStore",
    "InternalServerError",
    "InvalidRequestError",
    "Ledger",
    "Limit",
    "Model",
    "ModelPrice",
    "ModelProfile",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "PriceTable",
    "RateLimitError",
    "RateLimits",
    "RedisStore",
    "ResponseCache",
    "RetryPolicy",
    "RetryScheduled",
    "SharedUsage",
    "StateStore",
    "Stats",
    "StreamConnectionError",
    "StreamError",
    "StreamTimeoutError",
    "Timeouts",
    "TokenUsage",
    "UnprocessableEntityError",
    "Usage",
    "UsageRecorded",
    "UsageTally",
    "__version__",
    "budget_scope",
]


def __getattr__(name: str) -> object:
    # The Redis store is imported on first use: most programs never need it.
    if name in ("RedisStore", "SharedUsage"):
        from .policy import redis_store

        return getattr(redis_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
