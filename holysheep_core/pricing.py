"""Prices and model profiles, and the cost of a call from the usage the server reported.

Prices are USD per million tokens, with input, output and cached input kept apart so a
user can override any of them. A model missing from the table costs ``None`` (unknown),
never $0: the ledger counts such calls and the client warns once per model.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .types import Usage

__all__ = [
    "CHAT_PRICES",
    "DEFAULT_PRICES",
    "DEFAULT_PROFILES",
    "EMBEDDING_PRICES",
    "ModelPrice",
    "ModelProfile",
    "PriceTable",
]

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
    """What a model can take and give, for adapters' metadata, their default structured
    output method, and budget estimates.

    ``supports_json_schema``: ``response_format={"type": "json_schema", ...}`` is honoured
    (the server holds the answer to the schema); ``supports_json_mode``:
    ``{"type": "json_object"}`` is (any JSON object; the prompt must ask for JSON).
    """

    context_window: int
    max_output_tokens: int
    supports_tools: bool = True
    supports_json_schema: bool = True
    supports_reasoning: bool = False
    supports_vision: bool = False
    supports_json_mode: bool = True
    max_media_tokens: int = 6_000
    """An upper bound on the prompt tokens one non-text content part (an image) costs, for
    budget holds: tiled high-detail images cost up to ~1,500 tokens on OpenAI and Anthropic
    models, and a few thousand on Gemini for large images."""


# From the provider's guide: one rate for input and output (DESIGN.md §4).
CHAT_PRICES: Mapping[str, ModelPrice] = {
    "deepseek-v3.2": ModelPrice.of("0.42", "0.42"),
    "gpt-4.1": ModelPrice.of("8.00", "8.00"),
    "claude-sonnet-4.5": ModelPrice.of("15.00", "15.00"),
    "gemini-2.5-flash": ModelPrice.of("2.50", "2.50"),
}

# The embedding models the adapters default to. The provider's guide prices no embedding
# model, so these are the models' public list prices (OpenAI's pricing page, USD per
# million input tokens; an embedding call has no output tokens). Override them with
# ``PriceTable().with_prices({...})`` if your account is billed differently.
EMBEDDING_PRICES: Mapping[str, ModelPrice] = {
    "text-embedding-3-small": ModelPrice.of("0.02", "0"),
    "text-embedding-3-large": ModelPrice.of("0.13", "0"),
    "text-embedding-ada-002": ModelPrice.of("0.10", "0"),
}

DEFAULT_PRICES: Mapping[str, ModelPrice] = {**CHAT_PRICES, **EMBEDDING_PRICES}

# What each upstream provider documents for its OpenAI-compatible endpoint:
# DeepSeek: JSON mode and tools, no json_schema response format; Anthropic's compatibility
# layer ignores response_format altogether (JSON mode and json_schema alike); OpenAI and
# Gemini honour both.
DEFAULT_PROFILES: Mapping[str, ModelProfile] = {
    "deepseek-v3.2": ModelProfile(
        128_000, 8_192, supports_json_schema=False, supports_reasoning=True
    ),
    "gpt-4.1": ModelProfile(1_047_576, 32_768, supports_vision=True),
    "claude-sonnet-4.5": ModelProfile(
        200_000,
        64_000,
        supports_json_schema=False,
        supports_json_mode=False,
        supports_reasoning=True,
        supports_vision=True,
    ),
    "gemini-2.5-flash": ModelProfile(
        1_048_576, 65_536, supports_reasoning=True, supports_vision=True
    ),
}

# A dated snapshot of a known model (gpt-4.1-2025-04-14, claude-sonnet-4.5-20250929,
# deepseek-v3.2-0324) or its -latest alias is priced like the model; any other suffix
# (gpt-4.1-mini, gemini-2.5-flash-lite) names another model, priced differently.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{2}-\d{2}|latest)")


class PriceTable:
    """Model name -> price and profile. Immutable: ``with_prices`` returns a new table.

    Names match whatever their case (``DeepSeek-V3.2`` is ``deepseek-v3.2``), and a dated
    snapshot of a known model (``gpt-4.1-2025-04-14``, ``claude-sonnet-4.5-20250929``) or
    its ``-latest`` alias matches that model. Any other name is unknown: no price (its cost
    is None, never $0) and no profile; :meth:`closest` suggests what was probably meant.
    """

    __slots__ = ("_folded_prices", "_folded_profiles", "_prices", "_profiles")

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        profiles: Mapping[str, ModelProfile] | None = None,
    ) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._profiles = dict(DEFAULT_PROFILES if profiles is None else profiles)
        self._folded_prices = {k.casefold(): v for k, v in self._prices.items()}
        self._folded_profiles = {k.casefold(): v for k, v in self._profiles.items()}

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

    @staticmethod
    def _lookup(table: Mapping[str, Any], folded: Mapping[str, Any], model: str) -> Any:
        hit = table.get(model)
        if hit is not None:
            return hit
        name = model.casefold()
        hit = folded.get(name)
        if hit is not None:
            return hit
        for known, value in folded.items():
            if name.startswith(known) and _SNAPSHOT_SUFFIX.fullmatch(name, len(known)):
                return value
        return None

    def price(self, model: str) -> ModelPrice | None:
        return self._lookup(self._prices, self._folded_prices, model)

    def profile(self, model: str) -> ModelProfile | None:
        return self._lookup(self._profiles, self._folded_profiles, model)

    def canonical(self, model: str) -> str:
        """The table's spelling of ``model`` when it differs only in case, else ``model``."""
        if model in self._prices or model in self._profiles:
            return model
        name = model.casefold()
        return next((k for k in (*self._profiles, *self._prices) if k.casefold() == name), model)

    def closest(self, model: str) -> str | None:
        """The known name ``model`` most looks like (a typo, a missing dash), or None."""
        known = {k.casefold(): k for k in (*self._profiles, *self._prices)}
        found = difflib.get_close_matches(model.casefold(), list(known), n=1, cutoff=0.75)
        return known[found[0]] if found else None

    @property
    def models(self) -> list[str]:
        """Every model with a price: chat models (those with a profile) and embeddings."""
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

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-able data (USD as strings); :meth:`from_dict` reads it back."""
        return {
            "prices": {
                model: {
                    "input": str(p.input),
                    "output": str(p.output),
                    "cached_input": None if p.cached_input is None else str(p.cached_input),
                }
                for model, p in self._prices.items()
            },
            "profiles": {model: asdict(p) for model, p in self._profiles.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        prices = {
            model: ModelPrice.of(p["input"], p["output"], p.get("cached_input"))
            for model, p in data["prices"].items()
        }
        profiles = {model: ModelProfile(**p) for model, p in data["profiles"].items()}
        return cls(prices, profiles)

    def _key(self) -> tuple[Any, ...]:
        return (tuple(sorted(self._prices.items())), tuple(sorted(self._profiles.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceTable) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"PriceTable(models={self.models})"
