"""How a stack file's problems are worded: pydantic's errors turned into what the author has to change.

pydantic words its errors for Python programmers ("Input should be a valid dictionary or instance of
ModelConfig", "String should match pattern '^[0-9]+(...'"). A stack file's author wrote YAML, so every
message here names the key as written (`serving.memory`), says what form is expected with an example
taken from the schema itself, suggests the nearest key for a typo, and never shows a class name or a
regular expression where a sentence can say the same. The rules are generic (by pydantic error type,
by the field's declared type and pattern), so a section added later is covered without code here.

Shapes: a problem is `(field path, message)`; a field path is dotted keys with `[i]` for list items
(`gpu_pool.taints[0].effect`), relative to the `inferstack:` namespace. Positions are 1-based
`(line, column)` in the stack file, keyed by field path.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from stacks.config_base import K8S_NAME_PATTERN, QUANTITY_PATTERN

Position = tuple[int, int]


class CrossFieldErrors(ValueError):
    """Raised inside validation to carry several located problems out through pydantic."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        self.problems = problems


class ConfigError(Exception):
    """A stack file that cannot be deployed.

    `problems` holds (field path, message) pairs; `positions` maps a field path to the (line, column) of
    its key in `source`, where the problems came from a file. A problem whose own key is absent (a
    missing required key, a rule about a default) is shown at the nearest enclosing key that is there.
    """

    def __init__(
        self,
        source: str,
        problems: list[tuple[str, str]],
        positions: Mapping[str, Position] | None = None,
    ):
        self.source = source
        self.problems = problems
        self.positions = dict(positions or {})
        super().__init__(self.render())

    def position_of(self, location: str) -> Position | None:
        """Where `location` (or the nearest enclosing key that the file has) is written."""
        while location:
            if location in self.positions:
                return self.positions[location]
            trimmed = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", location)
            if trimmed == location:
                return None
            location = trimmed
        return None

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.source}: {count} problem{'s' if count != 1 else ''} in the stack configuration"]
        for location, message in self.problems:
            position = self.position_of(location)
            where = f" ({self.source}:{position[0]}:{position[1]})" if position else ""
            lines.append(f"  {location}: {message}{where}")
        return "\n".join(lines)


def field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's location tuple as a dotted path: ("gpu_pool", "taints", 0) -> gpu_pool.taints[0]."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def problems_from(err: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """Every error in `err` as (field path, message with the fix), for a stack validated as `root`."""
    problems: list[tuple[str, str]] = []
    for error in err.errors(include_url=False):
        carried = (error.get("ctx") or {}).get("error")
        if isinstance(carried, CrossFieldErrors):
            problems.extend(carried.problems)
            continue
        loc = tuple(error["loc"])
        message = _message(error["type"], error["msg"], error.get("input"), error.get("ctx") or {}, root, loc)
        problems.append((field_path(loc), _without_class_names(message, root)))
    return problems


def unknown_key_message(key: str, choices: list[str], what: str = "key") -> str:
    """`unknown key: did you mean ...?` from the nearest valid names, or the valid names when few."""
    close = difflib.get_close_matches(key, choices, n=3, cutoff=0.6)
    if close:
        return f"unknown {what}: did you mean {' or '.join(f'`{c}`' for c in close)}?"
    if 0 < len(choices) <= 12:
        return f"unknown {what}: the {what}s here are {', '.join(choices)}"
    return f"unknown {what}: remove it or check its spelling (`inferstack schema --markdown` lists every key)"


# --- one error ----------------------------------------------------------------------------------------

_NUMBER_TYPES = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"}
_MAPPING_TYPES = {"model_type", "model_attributes_type", "dict_type", "mapping_type"}

#: The shared field types' patterns (stacks/config_base.py) and a few common ones, said in words.
_PATTERN_WORDS = {
    K8S_NAME_PATTERN: "a Kubernetes name (RFC 1123 label): lowercase letters, digits and '-', starting and "
    "ending with a letter or digit, at most 63 characters, e.g. my-model",
    r"^https?://": "an http:// or https:// URL",
    r"^https://": "an https:// URL",
    r"^1\.[0-9]{2}$": 'a Kubernetes minor version in quotes, e.g. "1.34"',
}


def _message(
    kind: str, text: str, value: Any, ctx: dict[str, Any], root: type[BaseModel], loc: tuple[Any, ...]
) -> str:
    expected, field, metadata = _resolve(root, loc)
    pattern = ctx.get("pattern") or _pattern(metadata)

    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _resolve(root, loc[:-1])[0], root, top=len(loc) == 1)
    if kind == "missing":
        about = f" ({field.description})" if field is not None and field.description else ""
        if len(loc) == 1:  # a section: written `inferstack:<section>:` under config:
            return f"required: add an `inferstack:{loc[0]}:` section under config:{about}"
        return f"required: add it to the stack file{about}"
    if pattern == QUANTITY_PATTERN and kind in {"string_type", "string_pattern_mismatch"}:
        return _quantity(value, field)
    if kind in _MAPPING_TYPES:
        return _mapping(value, expected)
    if kind == "enum" and isinstance(expected, type) and issubclass(expected, enum.Enum):
        choices = [str(member.value) for member in expected]
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        return f"expected one of {', '.join(choices)}{hint} (got {_short(value)})"
    if kind == "string_type":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"expected text (got {_short(value)}: YAML read it as a number; put the value in quotes)"
        return f"expected text (got {_short(value)})"
    if kind == "string_pattern_mismatch":
        words = _PATTERN_WORDS.get(str(pattern))
        if words:
            return f"expected {words} (got {_short(value)})"
        about = field.description if field is not None and field.description else "the documented form"
        return f"not in the form of {about} (got {_short(value)}; the pattern is {pattern})"
    if kind in {"bool_type", "bool_parsing"}:
        return f"expected true or false (got {_short(value)})"
    if kind in _NUMBER_TYPES:
        whole = kind.startswith("int")
        return f"expected {'a whole number' if whole else 'a number'} (got {_short(value)})"
    if kind in {"list_type", "tuple_type", "set_type"}:
        return f"expected a list: [a, b] or one `- item` per line (got {_short(value)})"
    if kind in {"value_error", "assertion_error"}:
        return re.sub(r"^(Value error|Assertion failed), ", "", text)
    # Range and length errors ("Input should be greater than 0") read well once they say "must".
    text = re.sub(r"^(Input|String|List|Value|Dictionary) should", "must", text).replace(
        " after validation", ""
    )
    return f"{text} (got {_short(value)})"


def _quantity(value: Any, field: FieldInfo | None) -> str:
    """Quantity fields (stacks/config_base.Quantity): the expected form, with the field's default as the example.

    A bare number is a trap: `memory: 64` would be 64 bytes to Kubernetes, so the fix names the unit.
    """
    example = field.default if field is not None and isinstance(field.default, str) else "16Gi"
    unit = re.sub(r"^[0-9.]+", "", example)
    form = f'a Kubernetes quantity string such as "{example}"'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = f"{value:g}"
        if unit:
            return (
                f"expected {form}, with its unit (got {number}, a bare number, which Kubernetes reads as "
                f'{number} bytes): write "{number}{unit}" for {number} {_UNIT_NAMES.get(unit, unit)}'
            )
        return f'expected {form} (got {number}, a number): put it in quotes, "{number}"'
    return (
        f"expected {form}: a number, then no space and an optional unit: Ki Mi Gi Ti (powers of 1024), "
        f"k M G T (powers of 1000) or m (thousandths) (got {_short(value)})"
    )


_UNIT_NAMES = {"Ki": "KiB", "Mi": "MiB", "Gi": "GiB", "Ti": "TiB", "k": "kB", "M": "MB", "G": "GB", "T": "TB"}


def _mapping(value: Any, expected: Any) -> str:
    """An object where a section was expected: what goes in it, never the model's class name."""
    keys = ""
    if isinstance(expected, type) and issubclass(expected, BaseModel):
        required = [n for n, f in expected.model_fields.items() if f.is_required()]
        optional = [n for n, f in expected.model_fields.items() if not f.is_required()]
        shown = optional[:10] + (["..."] if len(optional) > 10 else [])
        if required:
            keys = f" with {_words(required)} (required)"
            keys += f" and optionally {', '.join(shown)}" if optional else ""
        else:
            keys = f" with any of {', '.join(shown)}"
    if value is None:
        advice = "" if "required" in keys else ", or delete the line to keep the defaults"
        return f"is empty: expected a mapping{keys} indented under it{advice}"
    return f"expected a mapping (key: value lines){keys} (got {_short(value)})"


def _words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _unknown_key(key: str, holder: Any, root: type[BaseModel], *, top: bool) -> str:
    names = list(holder.model_fields) if isinstance(holder, type) and issubclass(holder, BaseModel) else []
    if top:
        # Sections are written `inferstack:<section>` in the stack file.
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
        if close:
            return f"unknown section: did you mean {' or '.join(f'`inferstack:{c}`' for c in close)}?"
        return f"unknown section: the sections are {', '.join(f'inferstack:{n}' for n in names)}"
    message = unknown_key_message(key, names)
    elsewhere = [path for path, model in _sections(root) if key in model.model_fields and model is not holder]
    if elsewhere:
        # The exact name in another section is a surer guess than a near name here.
        also = f" (or {message.removeprefix('unknown key: ')})" if "did you mean" in message else ""
        return f"unknown key here: `{key}` is a key of {' and '.join(elsewhere)}; move it there{also}"
    return message


# --- the schema, walked ------------------------------------------------------------------------------


def _strip(annotation: Any) -> Any:
    """`X | None` -> X; `Annotated[X, ...]` -> X (its metadata is read by `_metadata`)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _resolve(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, FieldInfo | None, list[Any]]:
    """(the type expected at `loc`, the nearest named field's FieldInfo, constraints at `loc`)."""
    annotation: Any = root
    field: FieldInfo | None = None
    metadata: list[Any] = []
    for part in loc:
        annotation = _strip(annotation)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
            field = annotation.model_fields.get(part)
            if field is None:
                return None, None, []
            # pydantic moves a field's Annotated constraints (a Quantity's pattern) into field.metadata.
            annotation, metadata = field.annotation, list(field.metadata)
        elif isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
            annotation, metadata = args[0], _metadata(args[0])
        elif origin is dict and len(args) == 2:
            annotation, metadata = args[1], _metadata(args[1])
        else:
            return None, field, []
    return _strip(annotation), field, metadata


def _metadata(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        found: list[Any] = []
        for item in typing.get_args(annotation)[1:]:
            found.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return found
    return []


def _pattern(metadata: list[Any]) -> str | None:
    for item in metadata:
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            return pattern
    return None


def _sections(root: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted path, model) for every mapping in the schema, the root's sections first."""
    for name, field in root.model_fields.items():
        inner = _strip(field.annotation)
        if typing.get_origin(inner) in (list, tuple):
            inner = _strip(typing.get_args(inner)[0])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            path = f"{prefix}{name}"
            yield path, inner
            yield from _sections(inner, f"{path}.")


def model_class_names(root: type[BaseModel]) -> set[str]:
    """Class names of every model in the schema: none of them may appear in a message."""
    return {root.__name__} | {model.__name__ for _, model in _sections(root)}


def _without_class_names(message: str, root: type[BaseModel]) -> str:
    # A last guard for pydantic messages not rewritten above (a new error type in a later pydantic).
    for name in model_class_names(root):
        message = re.sub(rf"\b(instance of )?{name}\b", "a mapping", message)
    return message


def _short(value: Any) -> str:
    if value is None:
        return "nothing"
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (TypeError, ValueError):  # a YAML alias that contains itself
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
