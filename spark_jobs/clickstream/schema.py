"""The REES46 click-stream schema, table names and validated job parameters."""

from __future__ import annotations

import re
from datetime import date

RAW_COLUMNS = (
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand",
    "price", "user_id", "user_session",
)  # fmt: skip
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(value: str) -> str:
    if not _IDENTIFIER.match(value or ""):
        raise ValueError(f"{value!r} is not a valid catalog/schema/table identifier")
    return value


def table_name(catalog: str, schema: str, table: str) -> str:
    """``catalog.schema.table`` with every part validated (they end up in SQL text)."""
    return ".".join(identifier(part) for part in (catalog, schema, table))


def parse_ds(value: str) -> str:
    """A logical date ``YYYY-MM-DD``; anything else is refused before it reaches a predicate."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value or ""):
        raise ValueError(f"--ds must be a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as error:
        raise ValueError(f"--ds must be a valid date YYYY-MM-DD, got {value!r}: {error}") from None
