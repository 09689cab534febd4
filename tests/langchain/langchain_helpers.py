"""Helpers for the LangChain adapter's tests: what the emulator received and reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from holysheep_core import PriceTable
from holysheep_core.emulator.generation import complete
from holysheep_core.emulator.validation import parse_chat_request
from holysheep_core.types import CompletionTokensDetails, Usage

__all__ = ["chat_bodies", "emulated_usage", "expected_cost"]


def chat_bodies(emulator: Any) -> list[dict[str, Any]]:
    """The JSON bodies of the chat completion requests the emulator received, in order."""
    return [r.body for r in emulator.requests if r.path == "/v1/chat/completions"]


def emulated_usage(body: dict[str, Any]) -> Usage:
    """The usage the emulator reports for a request body, by its own rules (no prompt
    cache: the tests that use these sums send no repeated system message)."""
    done = complete(parse_chat_request(body))
    return Usage(
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        total_tokens=done.prompt_tokens + done.completion_tokens,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=done.reasoning_tokens),
    )


def expected_cost(bodies: list[dict[str, Any]], prices: PriceTable | None = None) -> Decimal:
    """The USD of these requests: the emulator's usage times our price table."""
    table = prices or PriceTable()
    total = Decimal(0)
    for body in bodies:
        cost = table.cost(body["model"], emulated_usage(body))
        assert cost is not None, f"no price for {body['model']}"
        total += cost
    return total
