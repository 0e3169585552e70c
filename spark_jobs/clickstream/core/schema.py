"""The REES46 click-stream schema, table names and validated job parameters.

Plain Python (no Spark import), so the synthetic generator and Airflow-side tests can use it.
"""

from __future__ import annotations

import re
from datetime import date

# Column order and types of the published files (``2019-Oct.csv``, ...), as typed in bronze.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_time", "timestamp"),
    ("event_type", "string"),
    ("product_id", "bigint"),
    ("category_id", "bigint"),
    ("category_code", "string"),
    ("brand", "string"),
    ("price", "decimal(12,2)"),
    ("user_id", "bigint"),
    ("user_session", "string"),
)
RAW_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)
HEADER = ",".join(RAW_COLUMNS)
EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def identifier(value: str) -> str:
    """A catalog, schema or table name; refused unless it is a plain SQL identifier."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid catalog/schema/table identifier")
    return value


def table_name(catalog: str, schema: str, table: str) -> str:
    """``catalog.schema.table`` with every part validated, since it ends up in SQL text."""
    return ".".join(identifier(part) for part in (catalog, schema, table))


def parse_ds(value: str) -> str:
    """A logical date ``YYYY-MM-DD``, returned in that canonical form.

    Every job validates its dates with this before they reach a path or a SQL predicate
    (``replaceWhere``), so a crafted value such as ``2019-10-01' OR '1'='1`` never gets there.
    """
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"a date must be YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as error:
        raise ValueError(f"{value!r} is not a calendar date: {error}") from None


def date_range(start: str, end: str) -> list[str]:
    """Every date of [start, end] (both validated), in order; an inverted range is refused."""
    first, last = date.fromisoformat(parse_ds(start)), date.fromisoformat(parse_ds(end))
    if last < first:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    return [date.fromordinal(d).isoformat() for d in range(first.toordinal(), last.toordinal() + 1)]
