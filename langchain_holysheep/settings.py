"""Connection settings shared by ``ChatHolySheep`` and ``HolySheepEmbeddings``, and the
core clients they lead to.

Model objects never own a connection pool: they resolve their settings to a
:class:`~holysheep_core.ClientConfig` once, at construction (so a missing or malformed key
fails there with ``ConfigurationError``, before any request), and ask
:func:`holysheep_core.shared.shared_client` for the process's client with those settings
on each call. A thousand model objects with the
same settings share one pool (langchain #32489). An injected ``client=`` / ``async_client=``
wins over every other setting.
"""

from __future__ import annotations

from typing import Any

from langchain_core.utils.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from holysheep_core import AsyncHolySheepClient, ClientConfig, HolySheepClient, PriceTable
from holysheep_core.shared import shared_client

__all__ = ["HolySheepSettings"]

ENV_KEY = "HOLYSHEEP_API_KEY"
ENV_BASE_URL = "HOLYSHEEP_BASE_URL"
_DEFAULT_PRICES = PriceTable()


class HolySheepSettings(BaseModel):
    """Key, endpoint, timeout, retries, headers; or an injected core client."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(ENV_KEY, default=None), alias="holysheep_api_key"
    )
    """API key; defaults to the ``HOLYSHEEP_API_KEY`` environment variable."""
    base_url: str | None = Field(default_factory=from_env(ENV_BASE_URL, default=None))
    """Endpoint ending in ``/v1``; defaults to ``HOLYSHEEP_BASE_URL``, then the public API."""
    timeout: float | dict[str, float] | None = Field(default=None, alias="request_timeout")
    """Seconds to wait for an answer (a number), or ``{connect, read, write, pool}``."""
    max_retries: int | None = None
    """Retries after the first attempt; None keeps the core's policy (Retry-After aware)."""
    default_headers: dict[str, str] | None = None
    """Headers sent with every request, on top of the core's."""
    client: HolySheepClient | None = Field(default=None, exclude=True)
    """A core client to use for sync calls instead of the shared one."""
    async_client: AsyncHolySheepClient | None = Field(default=None, exclude=True)
    """A core client to use for async calls instead of the shared one."""

    _config: ClientConfig | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Resolved here, after validation, rather than in a validator: pydantic would wrap
        # the ConfigurationError in a ValidationError that prints the input, key included.
        self._client_config()

    def _client_config(self) -> ClientConfig:
        """Raises ConfigurationError (a ValueError naming no key) for a missing or
        malformed key."""
        if self._config is None:
            injected = self.client or self.async_client
            if injected is not None:
                self._config = injected.config
            else:
                self._config = ClientConfig.resolve(
                    api_key=self.api_key,
                    base_url=self.base_url,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                    default_headers=self.default_headers or {},
                )
        return self._config

    def _sync_client(self) -> HolySheepClient:
        if self.client is not None:
            return self.client
        return shared_client(self._client_config(), asynchronous=False)

    def _async_client(self) -> AsyncHolySheepClient:
        if self.async_client is not None:
            return self.async_client
        return shared_client(self._client_config(), asynchronous=True)

    def _prices(self) -> PriceTable:
        # Not from _config: the profile is resolved by a validator that may run first.
        injected = self.client or self.async_client
        return injected.prices if injected is not None else _DEFAULT_PRICES
