"""Codat's paged lists: `page`, `pageSize`, `orderBy`, and the `tags` filter on companies."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

from app.sandbox.errors import CodatError
from app.sandbox.wire import Json

T = TypeVar("T")

MAX_PAGE_SIZE = 5000
# The response schema caps the echoed pageSize lower than the request parameter allows.
MAX_RESPONSE_PAGE_SIZE = 2000
MAX_QUERY_LENGTH = 2048
_TAG_CLAUSE = re.compile(r"^\s*([^\s=!~&]+)\s*(!=|=|~)\s*([^=~&]*?)\s*$")


@dataclass(frozen=True)
class TagCondition:
    key: str
    operator: str
    value: str

    def holds_for(self, tags: Mapping[str, str]) -> bool:
        actual = tags.get(self.key)
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        return actual is not None and self.value in actual


def parse_tags_filter(expression: str | None) -> list[TagCondition]:
    """`uid = abc && region != uk` as conditions that must all hold; 400 when malformed."""
    if expression is None:
        return []
    if len(expression) >= MAX_QUERY_LENGTH:
        raise CodatError(400, f"The tags query must be shorter than {MAX_QUERY_LENGTH} characters.")
    conditions = []
    for clause in expression.split("&&"):
        match = _TAG_CLAUSE.match(clause)
        if match is None or not match.group(3):
            raise CodatError(
                400,
                f"Malformed tags query near '{clause.strip()}': use key=value, key!=value "
                "or key~value, joined by &&.",
            )
        conditions.append(TagCondition(*match.groups()))
    return conditions


def _positive_int(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CodatError(400, f"'{name}' must be an integer.") from None
    if not 1 <= value <= maximum:
        raise CodatError(400, f"'{name}' must be between 1 and {maximum}.")
    return value


def order_items(
    items: Sequence[T], order_by: str | None, keys: Mapping[str, Callable[[T], str]]
) -> list[T]:
    if not order_by:
        return list(items)
    descending = order_by.startswith("-")
    field_name = order_by.removeprefix("-")
    key = keys.get(field_name)
    if key is None:
        raise CodatError(400, f"Cannot order by '{field_name}'.")
    return sorted(items, key=key, reverse=descending)


def paged(
    items: Sequence[T],
    params: Mapping[str, str],
    path: str,
    render: Callable[[T], Json],
    order_keys: Mapping[str, Callable[[T], str]],
) -> Json:
    """One page of `items` in Codat's paging envelope, with HAL links relative to the API root."""
    page = _positive_int(params, "page", 1, 2**31 - 1)
    page_size = min(_positive_int(params, "pageSize", 100, MAX_PAGE_SIZE), MAX_RESPONSE_PAGE_SIZE)
    ordered = order_items(items, params.get("orderBy"), order_keys)
    start = (page - 1) * page_size
    kept = {k: params[k] for k in ("orderBy", "tags") if params.get(k)}

    def href(number: int) -> dict[str, str]:
        return {"href": f"{path}?{urlencode({'page': number, 'pageSize': page_size, **kept})}"}

    links: Json = {"self": {"href": path}, "current": href(page)}
    if start + page_size < len(ordered):
        links["next"] = href(page + 1)
    if page > 1:
        links["previous"] = href(page - 1)
    return {
        "results": [render(item) for item in ordered[start : start + page_size]],
        "pageNumber": page,
        "pageSize": page_size,
        "totalResults": len(ordered),
        "_links": links,
    }
