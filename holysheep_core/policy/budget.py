"""A USD spending cap that refuses a call before it spends, not after.

Before a call, its cost is estimated as an upper bound (the prompt's estimated tokens plus
``max_tokens``, or the model's output limit when ``max_tokens`` is not set, at the price
table's rates) and *held*: ``spent + held + estimate`` may not pass the cap, so concurrent
calls cannot overshoot it together. When the server reports usage the hold becomes the
real cost; a call that fails releases it; a call whose cost stays unknown (a stream left
early, an answer without usage) keeps its estimate as spent, since the server may bill it.

A :class:`Budget` may back one client (``budget_usd=``), be shared by several clients
(pass the same object), or cover a block of code whatever client it uses
(:func:`budget_scope`, carried by ``contextvars`` into the tasks started inside it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from ..errors import BudgetExceededError
from .store import InMemoryStore, StateStore

__all__ = ["Budget", "Spending", "active_budgets", "as_usd", "budget_scope"]

_ZERO = Decimal(0)
_names = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Spending:
    spent: Decimal = _ZERO
    """USD of calls that finished."""
    held: Decimal = _ZERO
    """USD estimated for calls in flight."""


def as_usd(value: Decimal | float | int | str) -> Decimal:
    """A USD amount as a ``Decimal`` (floats via their shortest repr); ``ValueError`` for
    anything negative, infinite or not a number."""
    if isinstance(value, bool):
        raise ValueError("a USD amount must be a number")
    try:
        usd = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a USD amount: {value!r}") from None
    if not usd.is_finite() or usd < 0:
        raise ValueError(f"a USD amount must be finite and >= 0, got {value!r}")
    return usd


class Budget:
    """A USD cap, safe to share between clients, threads and tasks.

    Args: ``cap_usd``; ``store`` to keep the spending elsewhere (a store shared by several
    processes makes one cap for all of them) under ``name``.
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

    def _state(self) -> Spending:
        return self.store.items(self._key).get(self._key) or Spending()

    @property
    def spent_usd(self) -> Decimal:
        return self._state().spent

    @property
    def held_usd(self) -> Decimal:
        """Estimates held by calls still in flight."""
        return self._state().held

    @property
    def remaining_usd(self) -> Decimal:
        s = self._state()
        return max(self.cap_usd - s.spent - s.held, _ZERO)

    def hold(self, estimate: Decimal, *, model: str) -> Decimal:
        """Hold ``estimate`` USD for a call, or raise ``BudgetExceededError`` (holding
        nothing) if it would pass the cap. Returns the hold, to settle or release."""
        cap = self.cap_usd

        def change(values: list[Spending | None]) -> tuple[list[Spending], Spending | None]:
            s = values[0] or Spending()
            if s.spent + s.held + estimate > cap:
                return [s], s
            return [Spending(s.spent, s.held + estimate)], None

        refused = self.store.update([self._key], change)
        if refused is not None:
            raise BudgetExceededError(
                f"a {model} call estimated at up to ${estimate:.6f} would pass the "
                f"${cap} budget {self.name!r} (${refused.spent:.6f} spent, "
                f"${refused.held:.6f} held by calls in flight); nothing was sent. "
                "Set max_tokens for a tighter estimate, or raise the cap.",
                budget_usd=cap,
                spent_usd=refused.spent,
                estimate_usd=estimate,
            )
        return estimate

    def settle(self, hold: Decimal, cost: Decimal | None) -> None:
        """Turn a hold into the call's real cost (None: unknown, the hold counts as spent)."""
        spent = hold if cost is None else cost

        def change(values: list[Spending | None]) -> tuple[list[Spending], None]:
            s = values[0] or Spending()
            return [Spending(s.spent + spent, max(s.held - hold, _ZERO))], None

        self.store.update([self._key], change)

    def release(self, hold: Decimal) -> None:
        """Drop the hold of a call that spent nothing (it failed before an answer)."""

        def change(values: list[Spending | None]) -> tuple[list[Spending], None]:
            s = values[0] or Spending()
            return [Spending(s.spent, max(s.held - hold, _ZERO))], None

        self.store.update([self._key], change)

    def __repr__(self) -> str:
        s = self._state()
        return (
            f"Budget({self.name!r}, cap_usd={self.cap_usd}, spent_usd={s.spent}, held_usd={s.held})"
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
