"""Client configuration: from arguments first, then the environment, then defaults.

The API key is a ``SecretStr`` from the moment it enters: it never shows in a repr, a log
line, an exception or a dump, and a key that cannot be right is refused before any request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
)

from .cache.response_cache import ResponseCache
from .errors import ConfigurationError
from .policy.breaker import BreakerPolicy
from .policy.budget import Budget, as_usd
from .policy.fallback import check_models
from .policy.ratelimit import RateLimits
from .policy.retry import RetryPolicy
from .policy.store import StateStore
from .pricing import PriceTable

__all__ = ["DEFAULT_BASE_URL", "ClientConfig", "Timeouts", "check_api_key", "check_headers"]

DEFAULT_BASE_URL = "https://api.holysheep.ai/v1"
ENV_KEY = "HOLYSHEEP_API_KEY"
ENV_BASE_URL = "HOLYSHEEP_BASE_URL"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name (RFC 9110 §5.1)."""


class Timeouts(BaseModel):
    """Seconds, each for one operation (``read``: the longest wait for the next bytes), all
    cut short by the call's deadline (``RetryPolicy.deadline``), which bounds the whole call.
    ``pool`` is how long a call waits for a free connection: short by default so a saturated
    pool surfaces as ``APITimeoutError`` instead of a silent ten-minute queue."""

    model_config = ConfigDict(frozen=True)

    connect: float = Field(5.0, gt=0)
    read: float = Field(60.0, gt=0)
    write: float = Field(10.0, gt=0)
    pool: float = Field(10.0, gt=0)

    @classmethod
    def of(cls, value: float | Timeouts | Mapping[str, float] | None) -> Timeouts:
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(**value)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(f"timeout must be a positive number, got {value!r}")
        # One number bounds reads (the long wait); connecting stays short.
        return cls(
            connect=min(5.0, float(value)),
            read=float(value),
            write=float(value),
            pool=min(10.0, float(value)),
        )


def check_api_key(key: str) -> None:
    """Refuse a key that cannot be right. The message never contains the key."""
    if not key:
        raise ConfigurationError(f"the API key is empty: pass api_key= or set {ENV_KEY}")
    if key != key.strip() or any(c.isspace() for c in key):
        raise ConfigurationError(
            f"the API key contains whitespace (a copy-paste slip?): check api_key= or {ENV_KEY}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in key) or not key.isascii():
        raise ConfigurationError(
            f"the API key contains control or non-ASCII characters: check api_key= or {ENV_KEY}"
        )


def check_headers(headers: Mapping[str, str], where: str) -> None:
    """Refuse header names or values no HTTP request can carry (CR, LF, NUL, a name that
    is no token) before any network call. The message names the header, never its value:
    values often hold credentials."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"{where}: {name!r} is not a valid header name")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ConfigurationError(
                f"{where}: the value of header {name!r} contains CR, LF or NUL (or is no string)"
            )


def _mask_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return scheme + sep + netloc + slash + path


Hook = Callable[[Any], None]


class ClientConfig(BaseModel):
    """Everything a client needs; immutable. Build with ``ClientConfig.resolve(...)``."""

    # hide_input_in_errors: a refused key must not come back in the ValidationError's text.
    model_config = ConfigDict(
        frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True, extra="forbid"
    )

    api_key: SecretStr

    def __init__(self, **data: Any) -> None:
        # Callers catch ConfigurationError whichever way they built the config.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None

    base_url: str = DEFAULT_BASE_URL
    timeout: Timeouts = Timeouts()
    max_connections: int = Field(100, ge=1)
    max_keepalive_connections: int = Field(100, ge=0)
    keepalive_expiry: float = Field(5.0, gt=0)
    """Seconds an idle pooled connection is kept (httpx's default). Longer makes httpcore's
    pool do several times more bookkeeping per request under load (measured: 4x)."""
    retry: RetryPolicy = RetryPolicy()
    async_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    default_headers: Mapping[str, str] = Field(default_factory=dict)
    prices: PriceTable = Field(default_factory=PriceTable)
    include_usage: bool = True
    """Ask for usage on streams (``stream_options.include_usage``)."""
    on_retry: tuple[Hook, ...] = ()
    on_usage: tuple[Hook, ...] = ()
    breaker: BreakerPolicy | None = None
    """A circuit breaker per (base URL, model); None = off."""
    rate_limits: RateLimits | None = None
    """Client-side requests/s and tokens/min limits, global and per model; None = off."""
    fallback_models: tuple[str, ...] = ()
    """Chat models to try in order when the call's model fails (open breaker, retries
    spent on a retryable error, context too long); a call's ``fallback_models=`` wins."""
    budget_usd: Budget | Decimal | None = None
    """A USD cap: a number for this client alone, or a ``Budget`` shared with others."""
    policy_store: StateStore | None = None
    """Where breaker and limiter state lives; None = in this client's memory."""
    on_breaker_change: tuple[Hook, ...] = ()
    on_fallback: tuple[Hook, ...] = ()
    cache: ResponseCache | None = None
    """A response cache for chat calls; None = every call is sent."""

    @field_validator("api_key")
    @classmethod
    def _key_can_be_right(cls, v: SecretStr) -> SecretStr:
        check_api_key(v.get_secret_value())
        return v

    # A dump (logs, debugging, LangChain's serialisation) must not fail on the table or the
    # hooks; the key already dumps masked as a SecretStr.
    @field_serializer("prices", when_used="json")
    def _dump_prices(self, prices: PriceTable) -> dict[str, dict[str, str | None]]:
        return {
            m: {k: None if v is None else str(v) for k, v in asdict(p).items()}
            for m in prices.models
            if (p := prices.price(m)) is not None
        }

    @field_serializer("on_retry", "on_usage", "on_breaker_change", "on_fallback", when_used="json")
    def _dump_hooks(self, hooks: tuple[Hook, ...]) -> list[str]:
        return [getattr(h, "__qualname__", type(h).__qualname__) for h in hooks]

    @field_serializer("budget_usd", "policy_store", "cache", when_used="json")
    def _dump_shared_state(self, value: Any) -> str | None:
        return None if value is None else repr(value)

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _fallback_models(cls, v: Any) -> tuple[str, ...]:
        return check_models(v)

    @field_validator("budget_usd", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        if v is None or isinstance(v, Budget):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
            raise ValueError(f"budget_usd must be a USD amount or a Budget, got {v!r}")
        return as_usd(v)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"base_url must start with http:// or https://, got {_mask_userinfo(v)!r}"
            )
        if "@" in urlsplit(v).netloc:
            # The transports would send these instead of the key (or fail untyped), and the
            # password would show in reprs, error notes, breaker keys and httpx's log.
            raise ConfigurationError(
                f"base_url must not carry credentials (user:password@), got "
                f"{_mask_userinfo(v)!r}: pass the key as api_key= or {ENV_KEY}"
            )
        return v

    @field_validator("default_headers")
    @classmethod
    def _default_headers(cls, v: Mapping[str, str]) -> Mapping[str, str]:
        check_headers(v, "default_headers")
        return v

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | Timeouts | Mapping[str, float] | None = None,
        max_retries: int | None = None,
        env: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> ClientConfig:
        """Arguments win over ``HOLYSHEEP_API_KEY`` / ``HOLYSHEEP_BASE_URL``, which win over
        defaults. Raises ``ConfigurationError`` for a missing or malformed key."""
        env = os.environ if env is None else env
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        if api_key is None:
            api_key = env.get(ENV_KEY)
        if api_key is None:
            raise ConfigurationError(
                f"no API key: pass api_key= or set the {ENV_KEY} environment variable"
            )
        check_api_key(api_key)
        values: dict[str, Any] = {"api_key": SecretStr(api_key), **settings}
        url = base_url or env.get(ENV_BASE_URL)
        if url:
            values["base_url"] = url
        if timeout is not None:
            values["timeout"] = Timeouts.of(timeout)
        if max_retries is not None:
            retry = values.get("retry", RetryPolicy())
            values["retry"] = _with(retry, max_retries=max_retries)
        try:
            return cls(**values)
        except ConfigurationError:
            raise
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc


def _with(policy: RetryPolicy, **changes: Any) -> RetryPolicy:
    from dataclasses import replace

    try:
        return replace(policy, **changes)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
