"""Codat's OpenAPI files, normalised for a strict validator, and a response checker.

Normalising follows REFERENCE §8: `nullable` becomes a type union (or `anyOf` with null next
to a `$ref`), and the source-account `oneOf`s become `anyOf`, because a v2 account also
matches the open v1 schema.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OAS_DIR = Path(__file__).resolve().parents[2].parent / "shared/codat/oas"
SPECS = {"bank-feeds": "Codat-Bank-Feeds.json", "platform": "Codat-Platform.json"}
_METHODS = ("get", "post", "put", "patch", "delete")


def normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: normalise(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        if "$ref" in node:
            ref = node.pop("$ref")
            node["anyOf"] = [{"$ref": ref}, {"type": "null"}]
        elif "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = [*types, "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
    if "oneOf" in node and "SourceAccount" in json.dumps(node["oneOf"]):
        node["anyOf"] = node.pop("oneOf")
    return node


@cache
def spec(name: str) -> dict[str, Any]:
    raw = json.loads((OAS_DIR / SPECS[name]).read_text())
    normalised: dict[str, Any] = normalise(copy.deepcopy(raw))
    return normalised


@cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for name in SPECS:
        resource = Resource.from_contents(spec(name), default_specification=DRAFT202012)
        registry = registry.with_resource(f"urn:codat:{name}", resource)
    return registry


def validator(name: str, pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:codat:{name}#{pointer}"}, registry=_registry())


def assert_valid(name: str, pointer: str, instance: object) -> None:
    errors = sorted(validator(name, pointer).iter_errors(instance), key=str)
    assert not errors, f"{pointer}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def find_operation(method: str, path: str) -> tuple[str, str, dict[str, Any]] | None:
    """(spec, path template, operation) for a concrete path; literal segments win."""
    best: tuple[int, str, str, dict[str, Any]] | None = None
    for name in SPECS:
        for template, item in spec(name)["paths"].items():
            operation = item.get(method.lower())
            if operation is None or not _template_pattern(template).match(path):
                continue
            literal = sum(1 for part in template.split("/") if part and "{" not in part)
            if best is None or literal > best[0]:
                best = (literal, name, template, operation)
    return None if best is None else best[1:]


def _resolve(name: str, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec(name)
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def check_response(method: str, path: str, status: int, body: bytes) -> None:
    """Assert a response is one Codat's spec allows: its status, then its body's schema."""
    found = find_operation(method, path)
    if found is None or str(status) not in found[2]["responses"]:
        assert status >= 400, f"{method} {path}: {status} is not a response in the spec"
        assert_valid("bank-feeds", "/components/schemas/ErrorMessage", json.loads(body))
        return
    name, template, operation = found
    response = _resolve(name, operation["responses"][str(status)])
    content = response.get("content", {}).get("application/json")
    if content is None or "schema" not in content:
        assert body == b"", f"{method} {template} {status} should have no body"
        return
    pointer = f"/paths/{template.replace('~', '~0').replace('/', '~1')}/{method.lower()}"
    pointer += f"/responses/{status}/content/application~1json/schema"
    if "$ref" in operation["responses"][str(status)]:
        ref = operation["responses"][str(status)]["$ref"].removeprefix("#")
        pointer = f"{ref}/content/application~1json/schema"
    assert_valid(name, pointer, json.loads(body))


__all__ = ["OAS_DIR", "assert_valid", "check_response", "find_operation", "spec"]
