"""Headers every request carries."""

from __future__ import annotations

from ..config import ClientConfig

USER_AGENT = "holysheep-integrations/0.1"


def default_headers(config: ClientConfig) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {config.api_key.get_secret_value()}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        **config.default_headers,
    }
