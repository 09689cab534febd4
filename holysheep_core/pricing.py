"""Prices and model profiles, and the cost of a call from the usage the server reported.

Prices are USD per million tokens, with input, output and cached input kept apart so a
user can override any of them. A model missing from the table costs ``None`` (unknown),
never $0: the ledger counts such calls and the client warns once per model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .types import Usage

__all__ = ["DEFAULT_PRICES", "DEFAULT_PROFILES", "ModelPrice", "ModelProfile", "PriceTable"]

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    """Price of prompt tokens served from cache; None = the input price."""

    @classmethod
    def of(cls, input: Any, output: Any, cached_input: Any = None) -> ModelPrice:
        return cls(
            Decimal(str(input)),
            Decimal(str(output)),
            None if cached_input is None else Decimal(str(cached_input)),
        )


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model can take and give, for adapters' metadata and budget estimates."""

    context_window: int
    max_output_tokens: int
    supports_tools: bool = True
    supports_json_schema: bool = True
    supports_reasoning: bool = False
    supports_vision: bool = False
    max_media_tokens: int = 6_000
    """An upper bound on the prompt tokens one non-text content part (an image) costs, for
    budget holds: tiled high-detail images cost up to ~1,500 tokens on OpenAI and Anthropic
    models, and a few thousand on Gemini for large images."""


# From the provider's guide: one rate for input and output (DESIGN.md §4).
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "deepseek-v3.2": ModelPrice.of("0.42", "0.42"),
    "gpt-4.1": ModelPrice.of("8.00", "8.00"),
    "claude-sonnet-4.5": ModelPrice.of("15.00", "15.00"),
    "gemini-2.5-flash": ModelPrice.of("2.50", "2.50"),
}

DEFAULT_PROFILES: Mapping[str, ModelProfile] = {
    "deepseek-v3.2": ModelProfile(128_000, 8_192, supports_reasoning=True),
    "gpt-4.1": ModelProfile(1_047_576, 32_768, supports_vision=True),
    "claude-sonnet-4.5": ModelProfile(
        200_000, 64_000, supports_reasoning=True, supports_vision=True
    ),
    "gemini-2.5-flash": ModelProfile(
        1_048_576, 65_536, supports_reasoning=True, supports_vision=True
    ),
}


class PriceTable:
    """Model name -> price and profile. Immutable: ``with_prices`` returns a new table.

    Lookups try the exact name, then the longest known name that prefixes it, so dated
    variants such as ``gpt-4.1-2025-04-14`` are priced like their family.
    """

    __slots__ = ("_prices", "_profiles")

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        profiles: Mapping[str, ModelProfile] | None = None,
    ) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._profiles = dict(DEFAULT_PROFILES if profiles is None else profiles)

    @classmethod
    def from_file(cls, path: str | Path, *, base: PriceTable | None = None) -> PriceTable:
        """Overrides from JSON: ``{"model": {"input": 1, "output": 2, "cached_input": 0.5}}``."""
        data = json.loads(Path(path).read_text())
        return (base or cls()).with_prices(data)

    def with_prices(self, overrides: Mapping[str, ModelPrice | Mapping[str, Any]]) -> PriceTable:
        prices = dict(self._prices)
        for model, price in overrides.items():
            if not isinstance(price, ModelPrice):
                old = prices.get(model)
                merged = {
                    "input": old.input if old else None,
                    "output": old.output if old else None,
                    "cached_input": old.cached_input if old else None,
                    **price,
                }
                if merged["input"] is None or merged["output"] is None:
                    raise ValueError(f"price for {model!r} needs 'input' and 'output'")
                price = ModelPrice.of(merged["input"], merged["output"], merged["cached_input"])
            prices[model] = price
        return PriceTable(prices, self._profiles)

    def with_profiles(self, overrides: Mapping[str, ModelProfile]) -> PriceTable:
        return PriceTable(self._prices, {**self._profiles, **overrides})

    def _lookup(self, table: Mapping[str, Any], model: str) -> Any:
        hit = table.get(model)
        if hit is not None:
            return hit
        best = max((k for k in table if model.startswith(k)), key=len, default=None)
        return table[best] if best else None

    def price(self, model: str) -> ModelPrice | None:
        return self._lookup(self._prices, model)

    def profile(self, model: str) -> ModelProfile | None:
        return self._lookup(self._profiles, model)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def cost(self, model: str, usage: Usage | None) -> Decimal | None:
        """USD for one call; None when the model has no price or there is no usage."""
        price = self.price(model)
        if price is None or usage is None:
            return None
        return self.cost_of_tokens(
            price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
        )

    @staticmethod
    def cost_of_tokens(
        price: ModelPrice, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> Decimal:
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        total = (
            (prompt_tokens - cached) * price.input
            + cached * cached_rate
            + completion_tokens * price.output
        )
        return total / _MILLION

    def estimate(self, model: str, prompt_tokens: int, max_output_tokens: int) -> Decimal | None:
        """Upper-bound USD for a call before it is made (no cache discount assumed)."""
        price = self.price(model)
        if price is None:
            return None
        return self.cost_of_tokens(price, prompt_tokens, max_output_tokens)

    def _key(self) -> tuple[Any, ...]:
        return (tuple(sorted(self._prices.items())), tuple(sorted(self._profiles.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceTable) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"PriceTable(models={self.models})"
