"""A USD spending cap that refuses a call before it spends, not after.

Before a call, its cost is bounded from above and *held*: the prompt's tokens by the
request body's UTF-8 bytes (a byte-level BPE token covers at least one byte, and the body
holds every text the prompt is made of, plus JSON framing that outweighs each message's
special tokens) plus the model's ``max_media_tokens`` per image part, never more than the
context window; the output by ``max_tokens`` times ``n``, or the model's output limit when
``max_tokens`` is not set; at the price table's rates. The hold: ``spent + held +
estimate`` may not pass the cap, so concurrent
calls cannot overshoot it together. When the server reports usage the hold becomes the
real cost; a call that fails releases it; a call whose cost stays unknown (a stream left
early, an answer without usage) keeps its estimate as spent, since the server may bill it.

A :class:`Budget` may back one client (``budget_usd=``), be shared by several clients
(pass the same object), or cover a block of code whatever client it uses
(:func:`budget_scope`, carried by ``contextvars`` into the tasks started inside it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from ..pricing import ModelProfile
from .operations import BudgetHold, InMemoryStore, Spending, StateStore, nano_usd, usd

__all__ = [
    "Budget",
    "Spending",
    "active_budgets",
    "as_usd",
    "budget_scope",
    "media_parts",
    "prompt_bound",
]

_ZERO = Decimal(0)
_names = itertools.count(1)


DEFAULT_MEDIA_TOKENS = 6_000
"""The bound on one media part's tokens for a model without a profile."""


def media_parts(messages: Any) -> int:
    """Content parts of ``messages`` that are not text (images, audio, files)."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            count += sum(
                1
                for part in content
                if not (isinstance(part, Mapping) and part.get("type") == "text")
            )
    return count


def prompt_bound(body_bytes: int, media: int, profile: ModelProfile | None) -> int:
    """An upper bound on a prompt's tokens: its body's bytes, plus each media part at the
    profile's bound, within the context window."""
    per_part = profile.max_media_tokens if profile else DEFAULT_MEDIA_TOKENS
    bound = body_bytes + media * per_part
    return min(bound, profile.context_window) if profile else bound


def as_usd(value: Decimal | float | int | str) -> Decimal:
    """A USD amount as a ``Decimal`` (floats via their shortest repr); ``ValueError`` for
    anything negative, infinite or not a number."""
    if isinstance(value, bool):
        raise ValueError("a USD amount must be a number")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a USD amount: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"a USD amount must be finite and >= 0, got {value!r}")
    return amount


class Budget:
    """A USD cap, safe to share between clients, threads and tasks.

    Args: ``cap_usd``; ``store`` to keep the spending elsewhere (a store shared by several
    processes makes one cap for all of them) under ``name``. Without a store, a budget
    given to a client as ``budget_usd=`` lives in that client's store (its holds then
    share one operation with the breaker and the limiter); a :class:`Budget` object
    without one keeps its own in-memory store.
    """

    def __init__(
        self,
        cap_usd: Decimal | float | int | str,
        *,
        store: StateStore | None = None,
        name: str | None = None,
    ) -> None:
        self.cap_usd = as_usd(cap_usd)
        self.store = store or InMemoryStore()
        self.name = name or f"budget-{next(_names)}"
        self._key = f"budget:{self.name}"
        # Kept in integer nano-USD, so that every store computes exactly the same sums.
        self._cap = nano_usd(self.cap_usd, up=False)

    @property
    def key(self) -> str:
        """The budget's key in its store."""
        return self._key

    @property
    def cap_nano_usd(self) -> int:
        return self._cap

    def _state(self) -> Spending:
        return self.store.items(self._key).get(self._key) or Spending()

    @property
    def spent_usd(self) -> Decimal:
        return usd(self._state().spent)

    @property
    def held_usd(self) -> Decimal:
        """Estimates held by calls still in flight."""
        return usd(self._state().held)

    @property
    def remaining_usd(self) -> Decimal:
        s = self._state()
        return max(self.cap_usd - usd(s.spent + s.held), _ZERO)

    def hold(self, estimate: Decimal) -> BudgetHold:
        """The part of a :class:`~.operations.BeforeAttempt` that holds ``estimate`` USD
        (rounded up to a nano-USD) in this budget."""
        return BudgetHold(self._key, self._cap, nano_usd(estimate))

    def __repr__(self) -> str:
        s = self._state()
        return (
            f"Budget({self.name!r}, cap_usd={self.cap_usd}, spent_usd={usd(s.spent)}, "
            f"held_usd={usd(s.held)})"
        )


_scopes: ContextVar[tuple[Budget, ...]] = ContextVar("holysheep_budget_scopes", default=())


def active_budgets() -> tuple[Budget, ...]:
    """The budgets of the :func:`budget_scope` blocks around the current code."""
    return _scopes.get()


@contextmanager
def budget_scope(cap_usd: Budget | Decimal | float | int | str) -> Iterator[Budget]:
    """Cap what every call inside the block spends, on any client, on top of each client's
    own budget. Scopes nest (each cap applies); tasks started inside inherit the scope."""
    budget = cap_usd if isinstance(cap_usd, Budget) else Budget(cap_usd)
    token = _scopes.set((*_scopes.get(), budget))
    try:
        yield budget
    finally:
        _scopes.reset(token)
