"""What OpenAI's strict mode demands of a schema, checked node by node."""

from __future__ import annotations

from typing import Any

__all__ = ["assert_strict_schema"]


def assert_strict_schema(schema: Any, where: str = "schema") -> None:
    """Every object closed (``additionalProperties: false``) with all of its properties
    required; no ``default``; a ``$ref`` only on its own."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            assert_strict_schema(item, f"{where}[{i}]")
        return
    if not isinstance(schema, dict):
        return
    assert "default" not in schema, f"{where} has a default"
    if "$ref" in schema:
        assert set(schema) == {"$ref"}, f"{where}: $ref with siblings {sorted(schema)}"
    if schema.get("type") == "object" or "properties" in schema:
        assert schema.get("additionalProperties") is False, f"{where} is not closed"
        assert sorted(schema.get("required", [])) == sorted(schema.get("properties", {})), (
            f"{where} does not require every property"
        )
    for key, value in schema.items():
        if key == "properties":
            for name, prop in value.items():
                assert_strict_schema(prop, f"{where}.properties.{name}")
        elif key not in ("enum", "const", "required"):
            assert_strict_schema(value, f"{where}.{key}")
