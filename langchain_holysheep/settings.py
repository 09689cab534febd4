"""Connection settings shared by ``ChatHolySheep`` and ``HolySheepEmbeddings``, and the
core clients they lead to.

Model objects never own a connection pool: they resolve their settings to a
:class:`~holysheep_core.ClientConfig` once, at construction (so a missing or malformed key
fails there with ``ConfigurationError``, before any request), and ask
:func:`holysheep_core.shared.shared_client` for the process's client with those settings
on each call. A thousand model objects with the
same settings share one pool (langchain #32489). ``client_settings`` adds the core's
resilience policies and hooks to those settings. An injected ``client=`` /
``async_client=`` wins over every other setting.
"""

from __future__ import annotations

from typing import Any

from langchain_core.utils.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from holysheep_core import AsyncHolySheepClient, ClientConfig, HolySheepClient, PriceTable
from holysheep_core.settings_codec import decode_settings, encode_settings, is_encoded
from holysheep_core.shared import adapter_config, shared_client

__all__ = ["HolySheepSettings"]

ENV_KEY = "HOLYSHEEP_API_KEY"
ENV_BASE_URL = "HOLYSHEEP_BASE_URL"
_DEFAULT_PRICES = PriceTable()


class HolySheepSettings(BaseModel):
    """Key, endpoint, timeout, retries, headers; or an injected core client."""

    # hide_input_in_errors: a ValidationError must never print the key it was given (or
    # any other input); subclasses (ChatHolySheep, HolySheepEmbeddings) inherit it.
    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

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
    client_settings: dict[str, Any] | None = Field(default=None, exclude=True)
    """Further ``ClientConfig`` fields for the shared client: ``breaker``, ``rate_limits``,
    ``budget_usd``, ``fallback_models``, ``prices``, ``retry``, hooks (``on_usage``,
    ``on_retry``, ``on_fallback``, ``on_breaker_change``), ``policy_store``, pool sizes...
    Objects with equal settings share one client, and so one breaker, limiter and
    ``budget_usd`` cap (pass a ``Budget`` object to name a cap explicitly). A name that is
    no such field raises ``ConfigurationError``; not allowed with an injected client."""
    client: HolySheepClient | None = Field(default=None, exclude=True)
    """A core client to use for sync calls instead of the shared one."""
    async_client: AsyncHolySheepClient | None = Field(default=None, exclude=True)
    """A core client to use for async calls instead of the shared one."""

    _config: ClientConfig | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        settings = data.get("client_settings")
        if is_encoded(settings):  # from loads(): see lc_attributes
            data["client_settings"] = decode_settings(settings, owner=type(self).__name__)
        super().__init__(**data)
        # Resolved here, after validation, rather than in a validator: pydantic would wrap
        # the ConfigurationError in a ValidationError that prints the input, key included.
        self._client_config()

    def _client_config(self) -> ClientConfig:
        """Raises ConfigurationError (a ValueError naming no key) for a missing or
        malformed key, or for ``client_settings`` the core does not take."""
        if self._config is None:
            self._config = adapter_config(
                self.client_settings,
                injected=self.client or self.async_client,
                api_key=self.api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
                default_headers=self.default_headers or {},
            )
        return self._config

    @property
    def lc_attributes(self) -> dict[str, Any]:
        """``client_settings`` for ``dumps``/``dumpd``, written down as data (policies,
        caps, prices, budgets), so ``loads`` gives a model with the same settings; hooks and
        stores cannot be, and ``loads`` warns that they were left out."""
        if not self.client_settings:
            return {}
        return {"client_settings": encode_settings(self.client_settings)}

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
        if injected is not None:
            return injected.prices
        prices = (self.client_settings or {}).get("prices")
        return prices if isinstance(prices, PriceTable) else _DEFAULT_PRICES
