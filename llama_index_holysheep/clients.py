"""Which core client a LlamaIndex object talks through, and the settings that pick it.

Objects built with the same settings share the process's client (and so one connection
pool, and one set of resilience policies) through
:func:`holysheep_core.shared.shared_client`; a client passed in explicitly is used as it
is. Nothing here opens a connection: clients are looked up on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from holysheep_core import AsyncHolySheepClient, ClientConfig, HolySheepClient
from holysheep_core.settings_codec import decode_settings, encode_settings, is_encoded
from holysheep_core.shared import adapter_config, shared_client

__all__ = ["ClientSettings", "Clients"]


@dataclass(frozen=True, slots=True)
class Clients:
    config: ClientConfig
    injected: HolySheepClient | None = None
    injected_async: AsyncHolySheepClient | None = None

    @classmethod
    def resolve(
        cls,
        *,
        api_key: Any,
        api_base: str | None,
        timeout: float | None,
        max_retries: int | None,
        default_headers: dict[str, str] | None = None,
        client_settings: dict[str, Any] | None = None,
        client: HolySheepClient | None = None,
        async_client: AsyncHolySheepClient | None = None,
    ) -> Clients:
        """An injected client brings its own settings; otherwise arguments, then
        ``HOLYSHEEP_API_KEY`` / ``HOLYSHEEP_BASE_URL``, plus ``client_settings``. Raises
        ``ConfigurationError`` for a missing or malformed key or an unknown setting, before
        any request."""
        config = adapter_config(
            client_settings,
            injected=client or async_client,
            api_key=api_key,
            base_url=api_base,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers or {},
        )
        return cls(config, client, async_client)

    def sync(self) -> HolySheepClient:
        return self.injected or shared_client(self.config)

    def asynchronous(self) -> AsyncHolySheepClient:
        return self.injected_async or shared_client(self.config, asynchronous=True)


class ClientSettings(BaseModel):
    """The connection fields of ``HolySheep`` and ``HolySheepEmbedding``."""

    # A ValidationError must never print the key it was given (or any other input); the
    # classes built on this one inherit it.
    model_config = ConfigDict(hide_input_in_errors=True)

    api_key: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="The API key (never serialised)."
    )
    api_base: str | None = Field(default=None, description="The API's base URL.")
    timeout: float | None = Field(default=None, gt=0, description="Read timeout in seconds.")
    max_retries: int | None = Field(default=None, ge=0, description="Retries per call.")
    default_headers: dict[str, str] | None = Field(
        default=None, description="Headers sent with every request, on top of the core's."
    )
    client_settings: dict[str, Any] | None = Field(
        default=None,
        exclude=True,
        description="Further ClientConfig fields (breaker, rate_limits, budget_usd, prices, "
        "hooks, ...) for the shared client; to_dict() writes them down as data (hooks and "
        "stores cannot be: from_dict() warns of those).",
    )

    _clients: Clients = PrivateAttr()
    _written_settings: dict[str, Any] | None = PrivateAttr(default=None)

    def _with_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        """``to_dict()``'s data with ``client_settings`` written down (once: LlamaIndex
        serialises the model for its callbacks on every call)."""
        if self.client_settings:
            if self._written_settings is None:
                self._written_settings = encode_settings(self.client_settings)
            data["client_settings"] = self._written_settings
        return data

    def _connect(
        self, client: HolySheepClient | None, async_client: AsyncHolySheepClient | None
    ) -> None:
        """Settle the settings (raising ``ConfigurationError`` now, not at the first call)."""
        if is_encoded(self.client_settings):  # from from_dict(): see _with_settings
            self.client_settings = decode_settings(
                self.client_settings,  # type: ignore[arg-type]
                owner=type(self).__name__,
            )
        self._clients = Clients.resolve(
            api_key=self.api_key,
            api_base=self.api_base,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            client_settings=self.client_settings,
            client=client,
            async_client=async_client,
        )
        self.api_key = self._clients.config.api_key
        self.api_base = self._clients.config.base_url
