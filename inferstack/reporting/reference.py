"""The configuration reference (docs/configuration.md), generated from the schema so that the two cannot drift."""

from __future__ import annotations

import enum
import json
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from stacks.config import StackConfig

# Lists of small models are shown whole as a default rather than walked into.
_SHOWN_WHOLE = {"taints"}


def _section_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        inner = typing.get_args(candidate)  # list[Section] | None: the list's item
        if inner and candidate is not annotation:
            found = _section_of(candidate)
            if found is not None:
                return found
    return None


def _choices(annotation: Any) -> list[str]:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return [str(e.value) for e in candidate]
    return []


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory else field.default
    if value is None:
        return "—"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list):
        value = [
            v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v for v in value
        ]
    return "`" + (value if isinstance(value, str) else json.dumps(value)) + "`"


def rows(model: type[BaseModel] = StackConfig, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(dotted key, default, meaning) for every leaf key of a stack file."""
    for name, field in model.model_fields.items():
        section = _section_of(field.annotation)
        if section is not None and section.__name__.endswith("Override"):
            # A model's or variant's overrides take the keys of the stack's own section, listed above.
            yield f"{prefix}{name}", "—", f"{field.description}: any key of the stack's `{name}` section"
            continue
        if section is not None and name not in _SHOWN_WHOLE:
            yield from rows(section, f"{prefix}{name}.")
            continue
        choices = _choices(field.annotation)
        one_of = "one of " + " \\| ".join(choices) if choices else ""
        meaning = "; ".join(x for x in [one_of, field.description or ""] if x)
        yield f"{prefix}{name}", _default(field), meaning


def markdown_table() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {meaning} |" for key, default, meaning in rows()]
    return "\n".join(lines)
