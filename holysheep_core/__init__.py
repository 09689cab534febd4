"""HolySheep AI client: pooled sync and async HTTP, retries that honour Retry-After,
SSE streaming, typed models and errors, and usage and cost accounting."""

from .accounting import Ledger, Stats, TokenUsage
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
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    ContextLengthExceededError,
    HolySheepError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    UnprocessableEntityError,
)
from .hooks import RetryScheduled, UsageRecorded
from .policy.retry import RetryPolicy
from .pricing import ModelPrice, ModelProfile, PriceTable
from .streams import AsyncChatStream, ChatStream
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
    "BudgetExceededError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "CircuitOpenError",
    "ClientConfig",
    "ConfigurationError",
    "ConflictError",
    "ContextLengthExceededError",
    "EmbeddingResponse",
    "Health",
    "HolySheepClient",
    "HolySheepError",
    "InternalServerError",
    "InvalidRequestError",
    "Ledger",
    "Model",
    "ModelPrice",
    "ModelProfile",
    "NotFoundError",
    "PermissionDeniedError",
    "PriceTable",
    "RateLimitError",
    "RetryPolicy",
    "RetryScheduled",
    "Stats",
    "StreamError",
    "Timeouts",
    "TokenUsage",
    "UnprocessableEntityError",
    "Usage",
    "UsageRecorded",
    "__version__",
]
