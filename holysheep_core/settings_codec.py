"""An adapter's ``client_settings`` as JSON-able data and back, for LangChain's
``dumps``/``loads`` and LlamaIndex's ``to_dict``/``from_dict``.

Policies (``BreakerPolicy``, ``RateLimits``, ``RetryPolicy``, ...), timeouts, prices, USD
caps and ``Budget`` objects are kept. A ``Budget`` comes back as the same object when it
is still alive in this process (so a loaded model shares its cap with the original), else
as a new cap of the same size and name. What cannot be written down — hooks (functions),
a ``policy_store``, a ``Budget`` kept in a store outside this process, any other object —
is left out *loudly*: the encoded data names it, and ``decode_settings`` warns where the
model is loaded. Nothing secret is written:
``client_settings`` never holds the API key (it has its own argument).

Classes are only rebuilt from ``holysheep_core`` modules: loading data never imports or
calls anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
import weakref
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from .errors import ConfigurationError
from .policy.budget import Budget
from .policy.store import InMemoryStore
from .pricing import PriceTable

__all__ = ["decode_settings", "encode_settings", "is_encoded"]

MARK = "holysheep_client_settings"
_VERSION = 1
_PACKAGE = "holysheep_core."
# Budgets written down in this process, by name: loading in the same process must give
# back the very object, or the copy would get a cap of its own (twice the spending).
_budgets: weakref.WeakValueDictionary[str, Budget] = weakref.WeakValueDictionary()


class _Unwritable(Exception):
    """A value with no JSON form."""


def is_encoded(value: Any) -> bool:
    """Whether ``value`` is what :func:`encode_settings` returns."""
    return isinstance(value, Mapping) and MARK in value


def encode_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON-able data. A setting with no JSON form is left out and named
    in ``"dropped"``: frameworks serialise models on every call for their callbacks, so the
    warning waits for :func:`decode_settings`, where a model is really loaded."""
    written: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, value in settings.items():
        try:
            written[name] = _encode(value)
        except _Unwritable as exc:
            dropped[name] = str(exc)
    return {MARK: _VERSION, "settings": written, "dropped": dropped}


def decode_settings(data: Mapping[str, Any], *, owner: str) -> dict[str, Any]:
    """The settings :func:`encode_settings` wrote; a ``UserWarning`` names those it left
    out, and ``owner`` (the class being loaded)."""
    if data.get(MARK) != _VERSION:
        raise ConfigurationError(f"{owner}: client_settings written by an unknown version")
    dropped = dict(data.get("dropped") or {})
    if dropped:
        what = ", ".join(f"{name!r} ({kind})" for name, kind in dropped.items())
        warnings.warn(
            f"{owner} was serialised without client_settings {what}, which cannot be "
            "written down: the loaded model runs without them unless you pass them again "
            "(client_settings=...)",
            UserWarning,
            stacklevel=4,
        )
    return {name: _decode(value) for name, value in data["settings"].items()}


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, (list, tuple)):
        return {"$tuple" if isinstance(value, tuple) else "$list": [_encode(v) for v in value]}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise _Unwritable("a mapping with keys that are not strings")
        return {"$dict": {k: _encode(v) for k, v in value.items()}}
    if isinstance(value, PriceTable):
        return {"$prices": value.to_dict()}
    if isinstance(value, Budget):
        if not isinstance(value.store, InMemoryStore):
            raise _Unwritable("a Budget kept in a shared store")
        _budgets[value.name] = value
        return {"$budget": {"cap_usd": str(value.cap_usd), "name": value.name}}
    cls = type(value)
    if cls.__module__.startswith(_PACKAGE):
        where = f"{cls.__module__}:{cls.__qualname__}"
        if dataclasses.is_dataclass(value):
            fields = {
                f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
            }
            return {"$dataclass": where, "fields": fields}
        if isinstance(value, BaseModel):
            fields = {name: _encode(getattr(value, name)) for name in cls.model_fields}
            return {"$model": where, "fields": fields}
    if callable(value):
        raise _Unwritable("a function")
    raise _Unwritable(f"a {cls.__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    if "$decimal" in value:
        return Decimal(value["$decimal"])
    if "$tuple" in value:
        return tuple(_decode(v) for v in value["$tuple"])
    if "$list" in value:
        return [_decode(v) for v in value["$list"]]
    if "$dict" in value:
        return {k: _decode(v) for k, v in value["$dict"].items()}
    if "$prices" in value:
        return PriceTable.from_dict(value["$prices"])
    if "$budget" in value:
        spec = value["$budget"]
        alive = _budgets.get(spec["name"])
        if alive is not None and alive.cap_usd == Decimal(spec["cap_usd"]):
            return alive
        return Budget(spec["cap_usd"], name=spec["name"])
    for kind in ("$dataclass", "$model"):
        if kind in value:
            cls = _core_class(value[kind])
            return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    raise ConfigurationError(
        f"client_settings holds data no version of this package writes: {value!r}"
    )


def _core_class(where: str) -> Any:
    module, _, name = where.partition(":")
    if not module.startswith(_PACKAGE):
        raise ConfigurationError(f"client_settings names a class outside holysheep_core: {where!r}")
    cls: Any = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not isinstance(cls, type) or not (
        dataclasses.is_dataclass(cls) or issubclass(cls, BaseModel)
    ):
        raise ConfigurationError(f"client_settings names no policy class: {where!r}")
    return cls
