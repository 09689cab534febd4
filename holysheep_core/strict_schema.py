"""JSON schemas in the form OpenAI's strict mode accepts (``strict: true`` on a tool or a
``json_schema`` response format), and answers read back against the original schema.

Strict mode refuses a schema unless every object lists all of its properties in
``required`` and sets ``additionalProperties: false``; it refuses ``default`` too, and a
``$ref`` with sibling keywords. :func:`strict_json_schema` rewrites a schema that way. A
property the original did not require can be made *nullable* (``anyOf: [..., null]``), so
the model can still leave it out by answering null; :func:`drop_added_nulls` then removes
those nulls from an answer, so that validating it against the original schema (a pydantic
model, say) gives the field its default again. Pure functions: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["drop_added_nulls", "strict_json_schema"]


def strict_json_schema(schema: Mapping[str, Any], *, nullable_optionals: bool) -> dict[str, Any]:
    """A copy of ``schema`` that strict mode accepts.

    Args:
        schema: a JSON schema (an object schema at the top, as tools and response formats
            have).
        nullable_optionals: make each property the original did not require nullable (for
            answers read back with :func:`drop_added_nulls`); False keeps its type, so the
            model must give it a value (what a tool called with the arguments as they are
            needs).
    """
    root = copy.deepcopy(dict(schema))
    return _strict(root, root, nullable_optionals)


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _strict(node: Any, root: dict[str, Any], nullable: bool) -> Any:
    if isinstance(node, list):
        return [_strict(item, root, nullable) for item in node]
    if not isinstance(node, dict):
        return node
    node.pop("default", None)
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/"):
        # Strict mode takes a $ref only on its own: inline the target under the siblings.
        del node["$ref"]
        node = {**copy.deepcopy(dict(_resolve(ref, root))), **node}
    for key, value in list(node.items()):
        if key == "properties" and isinstance(value, dict):
            node[key] = {k: _strict(v, root, nullable) for k, v in value.items()}
        elif isinstance(value, (dict, list)) and key not in ("enum", "const", "required"):
            node[key] = _strict(value, root, nullable)
    if node.get("type") == "object" or "properties" in node:
        properties = node.setdefault("properties", {})
        required = set(node.get("required") or ())
        if nullable:
            for name, prop in properties.items():
                if name not in required and not _allows_null(prop, root):
                    properties[name] = {"anyOf": [prop, {"type": "null"}]}
        node["required"] = list(properties)
        node["additionalProperties"] = False
    return node


def _allows_null(schema: Any, root: Mapping[str, Any]) -> bool:
    if not isinstance(schema, Mapping):
        return False
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        return _allows_null(_resolve(ref, root), root)
    return any(_allows_null(s, root) for s in schema.get("anyOf") or ())


def drop_added_nulls(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` (an answer to the strict form of ``schema``) without the nulls the strict
    form allowed where the original did not: the properties the original did not require
    and that do not take null, at any depth the original schema describes."""
    return _drop(value, schema, schema)


def _drop(value: Any, schema: Any, root: Mapping[str, Any]) -> Any:
    if not isinstance(schema, Mapping):
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        schema = {**_resolve(ref, root), **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(value, list):
        items = schema.get("items")
        return [_drop(v, items, root) for v in value] if isinstance(items, Mapping) else value
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return value
    required = set(schema.get("required") or ())
    out = {}
    for key, item in value.items():
        prop = properties.get(key)
        if item is None and key not in required and not _allows_null(prop, root):
            continue
        out[key] = _drop(item, prop, root)
    return out
