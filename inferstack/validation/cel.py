"""The CEL rules of a CRD schema (`x-kubernetes-validations`), evaluated on create as the API server does.

Evaluation is cel-python's (`celpy`, cloud-custodian): a pure-Python CEL interpreter whose `matches` uses
RE2, the regular expression syntax of Go's regexp that the API server runs. On top of it this module adds
the Kubernetes CEL extension functions the CRDs we validate call, each implemented exactly as its Go
source (cited per function); any other function is reported as not evaluated, never guessed.

What the API server does, and so do we (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go
at Kubernetes 1.33, `Validator.validate`):
- a rule sits on a schema node and sees that node's value as `self`; it runs only where the value is
  present (an absent optional field runs none of its rules);
- the object is defaulted first (structural defaulting runs before validation), so rules see `default`s;
- rules that reference the variable `oldSelf` are transition rules (compilation.go: `UsesOldSelf` is set when
  the checked expression's reference map names `oldSelf`; we look for the identifier in the parsed rule, so
  a field `self.oldSelfie` or a string 'oldSelf' does not count): on create there is no old object and they
  are skipped, except `optionalOldSelf: true` rules, which the API server runs on create with
  `oldSelf = optional.none()` (validation.go `validateExpressions`, CRDValidationRatcheting); cel-python has
  no CEL optionals, so those are reported as not evaluated;
- values are typed by the schema as the API server's type provider types them (module section "values");
- a rule that evaluates to false is an error whose text is `messageExpression`'s result, else `message`,
  else "failed rule: <rule>"; its field is the node's path, or `fieldPath` relative to it.

Where an evaluation fails in a way the API server's also fails (an invalid `duration()` string, by Go's
time.ParseDuration), the API server rejects the object with "<error> evaluating rule: <rule>", and so is it
a failure here; any other evaluation error is "not evaluated" (ours may differ from cel-go's), never a
finding.

Shapes: `evaluate_rules(schema, obj)` -> CelResult (failures: [(path, message, rule)], evaluated and
skipped counts, not_evaluated: [(path, rule, why)]).
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import celpy
import celpy.evaluation
import re2
from celpy import celtypes

# --- Kubernetes CEL extension functions --------------------------------------------------------------------
# Kubernetes compiles every CRD rule with cel-go's ext.Strings (k8s.io/apiserver/pkg/cel/environment/base.go)
# and its own libraries (k8s.io/apiserver/pkg/cel/library/*.go). The functions below are those the CRDs in
# our schema folder call; each follows its Go implementation.

# Go's unicode.IsSpace (strings.TrimSpace): these Latin-1 characters and the Unicode White_Space property.
# Python's str.strip() differs: it also strips U+001C..U+001F, which Go keeps.
_GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _lower_ascii(text: celtypes.StringType) -> celtypes.StringType:
    """cel-go ext/strings.go `lowerAscii`: only A-Z change; other letters are left as they are."""
    return celtypes.StringType(str(text).translate(_ASCII_LOWER))


def _upper_ascii(text: celtypes.StringType) -> celtypes.StringType:
    """cel-go ext/strings.go `upperAscii`: only a-z change."""
    return celtypes.StringType(str(text).translate(_ASCII_UPPER))


def _trim(text: celtypes.StringType) -> celtypes.StringType:
    """cel-go ext/strings.go `trim`: strings.TrimSpace."""
    value = str(text)
    start, end = 0, len(value)
    while start < end and value[start] in _GO_SPACE:
        start += 1
    while end > start and value[end - 1] in _GO_SPACE:
        end -= 1
    return celtypes.StringType(value[start:end])


def _split(
    text: celtypes.StringType, separator: celtypes.StringType, limit: celtypes.IntType | None = None
) -> celtypes.ListType:
    """cel-go ext/strings.go `split`: Go's strings.Split / strings.SplitN (limit < 0: all; 0: none)."""
    value, sep = str(text), str(separator)
    n = -1 if limit is None else int(limit)
    if n == 0:
        parts: list[str] = []
    elif sep == "":  # Go splits into single characters (at most n, the last holding the rest)
        parts = list(value) if n < 0 or n >= len(value) else [*value[: n - 1], value[n - 1 :]]
    else:
        parts = value.split(sep) if n < 0 else value.split(sep, n - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _find(text: celtypes.StringType, pattern: celtypes.StringType) -> celtypes.StringType:
    """k8s.io/apiserver/pkg/cel/library/regex.go `find`: the first match (regexp.FindString), or ""."""
    match = re2.search(str(pattern), str(text))
    return celtypes.StringType(match.group(0) if match else "")


def _find_all(
    text: celtypes.StringType, pattern: celtypes.StringType, limit: celtypes.IntType | None = None
) -> celtypes.ListType:
    """library/regex.go `findAll`: regexp.FindAllString(text, limit); limit < 0 (or none) means all."""
    n = -1 if limit is None else int(limit)
    found = [m.group(0) for m in re2.finditer(str(pattern), str(text))]
    return celtypes.ListType([celtypes.StringType(s) for s in (found if n < 0 else found[:n])])


# --- duration(): Go's time.ParseDuration ----------------------------------------------------------------------
# cel-go's duration(string) is time.ParseDuration (cel-go common/types/string.go `ConvertToType` ->
# time.ParseDuration); cel-python's own parser takes "1d" and rejects "0", which Go does the other way round.

_NS = 1
_GO_UNITS = {
    "ns": _NS,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 MICRO SIGN
    "\u03bcs": 1_000,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_INT64_LIMIT = 1 << 63


class GoDurationError(ValueError):
    """A string Go's time.ParseDuration rejects; the text is Go's (`time: invalid duration "1d"`)."""


def parse_go_duration(text: str) -> int:
    """Nanoseconds of `text` exactly as Go's time.ParseDuration reads it (Go src/time/format.go).

    A possibly signed sequence of decimal numbers, each with an optional fraction and a unit: "300ms",
    "-1.5h", "2h45m", "0"; units ns, us (µs, μs), ms, s, m, h. Raises GoDurationError with Go's message
    for anything else (no unit, "1d", "", ".", overflow past int64 nanoseconds).
    """
    quoted = '"' + text + '"'
    rest, neg = text, False
    if rest and rest[0] in "+-":
        neg, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise GoDurationError(f"time: invalid duration {quoted}")
    total = 0
    while rest:
        if rest[0] not in ".0123456789":
            raise GoDurationError(f"time: invalid duration {quoted}")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        whole = int(rest[:digits]) if digits else 0
        if whole > _INT64_LIMIT:  # Go's leadingInt allows exactly 1<<63 (for the most negative duration)
            raise GoDurationError(f"time: invalid duration {quoted}")
        rest = rest[digits:]
        fraction, scale, post = 0, 1.0, False
        if rest.startswith("."):
            rest = rest[1:]
            taken = len(rest) - len(rest.lstrip("0123456789"))
            post = taken > 0
            overflow = False
            for char in rest[:taken]:  # Go's leadingFraction: stops adding digits once they would overflow
                if overflow or fraction > (_INT64_LIMIT - 1) // 10:
                    overflow = True
                    continue
                candidate = fraction * 10 + int(char)
                if candidate >= _INT64_LIMIT:
                    overflow = True
                    continue
                fraction, scale = candidate, scale * 10
            rest = rest[taken:]
        if not digits and not post:
            raise GoDurationError(f"time: invalid duration {quoted}")
        end = 0
        while end < len(rest) and rest[end] not in ".0123456789":
            end += 1
        unit_text, rest = rest[:end], rest[end:]
        if not unit_text:
            raise GoDurationError(f"time: missing unit in duration {quoted}")
        unit = _GO_UNITS.get(unit_text)
        if unit is None:
            raise GoDurationError(f'time: unknown unit "{unit_text}" in duration {quoted}')
        if whole > _INT64_LIMIT // unit:
            raise GoDurationError(f"time: invalid duration {quoted}")
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))  # float64 arithmetic, as Go does
            if value > _INT64_LIMIT:
                raise GoDurationError(f"time: invalid duration {quoted}")
        total += value
        if total > _INT64_LIMIT:
            raise GoDurationError(f"time: invalid duration {quoted}")
    if neg:
        return -total
    if total > _INT64_LIMIT - 1:
        raise GoDurationError(f"time: invalid duration {quoted}")
    return total


class ServerRejects(celpy.CELEvalError):
    """An evaluation error cel-go raises too: the API server rejects the object with it."""


class Unsupported(celpy.CELEvalError):
    """A value or operation this module cannot represent as cel-go does: the rule is not evaluated."""


def _duration_from_ns(nanos: int) -> celtypes.DurationType | celpy.CELEvalError:
    # cel-python's durations are Python timedeltas (microseconds); a finer one would compare wrongly.
    if nanos % 1000:
        return Unsupported(f"duration of {nanos}ns has sub-microsecond precision, which cel-python drops")
    return celtypes.DurationType(datetime.timedelta(microseconds=nanos // 1000))


def _duration(value: Any) -> Any:
    """cel-go `duration()`: a string by Go's time.ParseDuration; a duration as it is."""
    error = _unconverted(value)
    if error is not None:
        return error
    if isinstance(value, celtypes.DurationType):
        return value
    if not isinstance(value, str):
        return Unsupported(f"duration() of a {type(value).__name__} is not implemented here")
    try:
        nanos = parse_go_duration(str(value))
    except GoDurationError as err:
        return ServerRejects(str(err))
    return _duration_from_ns(nanos)


# --- equality and ordering as cel-go's ------------------------------------------------------------------------
# cel-go compares values of different types as unequal (heterogeneous equality, cel-go common/types `Equal`)
# and numbers across int, uint and double by value; Kubernetes also turns on cross-type numeric ordering
# (k8s.io/apiserver/pkg/cel/environment/base.go, 1.28: cel.CrossTypeNumericComparisons(true)). cel-python
# raises "no such overload" for `1 == 1.0` and `1 < 1.5`, so these operators replace its own.

_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, celtypes.BoolType)


def _plain(value: Any) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


def _unconverted(*values: Any) -> Any:
    """The first operand that is an error: a CEL error value, or an Unconverted field as Unsupported."""
    for value in values:
        if isinstance(value, celpy.CELEvalError):
            return value
        if isinstance(value, Unconverted):
            return Unsupported(f"the rule reads a value the API server cannot type: {value.why}")
    return None


def _equal(left: Any, right: Any) -> Any:
    """cel-go `left == right`: BoolType, or the first error met (errors are values in CEL)."""
    error = _unconverted(left, right)
    if error is not None:
        return error
    if _is_number(left) and _is_number(right):
        return celtypes.BoolType(_plain(left) == _plain(right))  # Python compares int and float exactly
    if left is None or right is None:
        return celtypes.BoolType(left is None and right is None)
    if isinstance(left, list) and isinstance(right, list):
        return _list_equal(left, right)
    if isinstance(left, dict) and isinstance(right, dict):
        if len(left) != len(right):
            return celtypes.BoolType(False)
        for key, value in left.items():
            if key not in right:
                return celtypes.BoolType(False)
            same = _equal(value, right[key])
            if not _is_true(same):
                return same
        return celtypes.BoolType(True)
    if type(left) is not type(right) and not (isinstance(left, str) and isinstance(right, str)):
        return celtypes.BoolType(False)
    try:
        return celtypes.BoolType(bool(left == right))
    except TypeError:
        return celtypes.BoolType(False)


def _is_true(value: Any) -> bool:
    return isinstance(value, (bool, celtypes.BoolType)) and bool(value)


def _list_equal(left: list[Any], right: list[Any]) -> Any:
    """List equality; the left operand's x-kubernetes-list-type decides (apiserver pkg/cel/common/values.go:
    `unstructuredSetList.Equal` and `unstructuredMapList.Equal` ignore order, a plain list compares in order)."""
    if len(left) != len(right):
        return celtypes.BoolType(False)
    if isinstance(left, SetList):
        # every element of the right is in the left (as a Go map lookup of the raw values)
        return celtypes.BoolType(all(any(_is_true(_equal(x, y)) for x in left) for y in right))
    if isinstance(left, MapList):
        by_key = {left.key_of(item): item for item in left}
        for item in right:
            match = by_key.get(left.key_of(item), _MISSING)
            if match is _MISSING:
                return celtypes.BoolType(False)
            same = _equal(match, item)
            if not _is_true(same):
                return same
        return celtypes.BoolType(True)
    for x, y in zip(left, right, strict=True):
        same = _equal(x, y)
        if not _is_true(same):
            return same
    return celtypes.BoolType(True)


def _not_equal(left: Any, right: Any) -> Any:
    same = _equal(left, right)
    return same if isinstance(same, celpy.CELEvalError) else celtypes.BoolType(not bool(same))


def _in(item: Any, container: Any) -> Any:
    """`item in list` by cel-go equality (an error only when nothing matched and a comparison failed)."""
    if _unconverted(item, container) is not None:
        return _unconverted(item, container)
    if isinstance(container, list):
        error = None
        for element in container:
            same = _equal(element, item)
            if _is_true(same):
                return celtypes.BoolType(True)
            if isinstance(same, celpy.CELEvalError) and error is None:
                error = same
        return error if error is not None else celtypes.BoolType(False)
    return _CELPY_FUNCTIONS["_in_"](item, container)


def _ordering(name: str) -> Callable[[Any, Any], Any]:
    celpy_own = _CELPY_FUNCTIONS[name]
    compare = {"_<_": operator.lt, "_<=_": operator.le, "_>_": operator.gt, "_>=_": operator.ge}[name]

    def ordered(left: Any, right: Any) -> Any:
        error = _unconverted(left, right)
        if error is not None:
            return error
        if _is_number(left) and _is_number(right) and type(left) is not type(right):
            return celtypes.BoolType(compare(_plain(left), _plain(right)))
        return celpy_own(left, right)

    return ordered


def _add(left: Any, right: Any) -> Any:
    error = _unconverted(left, right)
    if error is not None:
        return error
    # A set or map list `X + Y` merges in the API server (values.go `Add`), it does not concatenate.
    if isinstance(left, (SetList, MapList)):
        return Unsupported("`+` on an x-kubernetes-list-type set/map list (a merge) is not implemented here")
    return _CELPY_FUNCTIONS["_+_"](left, right)


_CELPY_FUNCTIONS: dict[str, Callable[..., Any]] = dict(celpy.evaluation.base_functions)
_MISSING = object()


K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "trim": _trim,
    "split": _split,
    "find": _find,
    "findAll": _find_all,
}

#: cel-go's semantics where cel-python's differ: operators and duration() (see the sections above).
CEL_GO_OVERRIDES: dict[str, Callable[..., Any]] = {
    "_==_": _equal,
    "_!=_": _not_equal,
    "_in_": _in,
    "_<_": _ordering("_<_"),
    "_<=_": _ordering("_<=_"),
    "_>_": _ordering("_>_"),
    "_>=_": _ordering("_>=_"),
    "_+_": _add,
    "duration": _duration,
}

# --- evaluation ----------------------------------------------------------------------------------------------

_ENV = celpy.Environment()
_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


@dataclass
class CelResult:
    """What the rules said about one object."""

    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (field path, message, rule)
    evaluated: int = 0  # rule evaluations that gave true or false
    transition: int = 0  # rules with oldSelf, skipped on create as the API server does
    not_evaluated: list[tuple[str, str, str]] = field(default_factory=list)  # (field path, rule, why)
    rules_run: set[str] = field(default_factory=set)  # distinct rule texts evaluated


class _NotEvaluated(Exception):
    """A rule (or messageExpression) this module cannot evaluate; the text says why."""


class _Rejected(Exception):
    """An evaluation error the API server meets too; the text is cel-go's."""


@functools.lru_cache(maxsize=4096)
def _ast(expression: str) -> Any:
    try:
        return _ENV.compile(expression)
    except Exception as exc:  # celpy.CELParseError, and lark's own errors on odd input
        raise _NotEvaluated(f"cel-python cannot parse it: {' '.join(str(exc).split())}") from exc


@functools.lru_cache(maxsize=4096)
def _program(expression: str) -> celpy.Runner:
    return _ENV.program(_ast(expression), functions={**CEL_GO_OVERRIDES, **K8S_FUNCTIONS})


def uses_old_self(expression: str) -> bool:
    """Whether the rule references the variable `oldSelf` (an identifier in the parsed expression; a field
    `self.oldSelf`, a name like `oldSelfie` or a string literal 'oldSelf' is not one).

    The API server decides this from the checked expression's reference map (apiextensions-apiserver
    schema/cel/compilation.go: `ref.Name == OldScopedVarName` sets UsesOldSelf). Raises _NotEvaluated
    when the rule does not parse.
    """
    tree = _ast(expression)
    return any(str(token) == "oldSelf" for node in tree.find_data("ident") for token in node.children)


def _run(expression: str, value: Any, *, typed: bool = False) -> Any:
    """`expression` with `self` bound to `value` (JSON, or with typed=True a value from to_cel)."""
    program = _program(expression)  # raises _NotEvaluated itself
    result: Any
    try:
        result = program.evaluate({"self": value if typed else celpy.json_to_cel(value)})
    except celpy.CELEvalError as exc:
        result = exc
    except Exception as exc:  # an interpreter bug must not stop the whole check
        raise _NotEvaluated(f"cel-python failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        text = str(result.args[0]) if result.args else str(result)
        if isinstance(result, ServerRejects):
            raise _Rejected(text)
        if isinstance(result, Unsupported):
            raise _NotEvaluated(text)
        missing = _UNDECLARED.search(text)
        if missing:
            raise _NotEvaluated(f"function or variable {missing.group(1)!r} is not implemented here")
        raise _NotEvaluated(f"evaluation error: {text}")
    return result


def apply_defaults(schema: Any, value: Any) -> Any:
    """`value` with the schema's `default`s filled in where a property is absent or a null the schema
    does not allow (a copy; the input stays).

    Structural defaulting as the API server runs it before validation (apiextensions-apiserver
    pkg/apiserver/schema/defaulting/algorithm.go): properties, array items and map values, recursively.
    """
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        out = dict(value)
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            # A null where the schema does not allow one counts as absent (isNonNullableNull): it takes
            # the default, or is pruned when there is none.
            if name in out and out[name] is None and isinstance(sub, dict) and not sub.get("nullable"):
                del out[name]
            if name not in out and isinstance(sub, dict) and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in out:
                if key not in properties:
                    out[key] = apply_defaults(extra, out[key])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


#: CEL reserved words: a property with one of these names is seen by rules as `__<name>__`.
_CEL_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def escape_property(name: str) -> str | None:
    """The name a rule uses for object property `name`, or None when rules cannot see it.

    k8s.io/apiserver/pkg/cel/escaping.go `Escape`: reserved words become `__word__`; in other names `__`
    becomes `__underscores__`, `.` `__dot__`, `-` `__dash__` and `/` `__slash__`; a name with any other
    character is not accessible. (Gateway API's rules say `has(p.__namespace__)`.)
    """
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


# --- values, typed by the schema ------------------------------------------------------------------------------
# k8s.io/apiserver/pkg/cel/common/values.go `UnstructuredToVal`: a rule sees each value as its schema types
# it, not as its JSON: `type: number` is a double even when the JSON number is whole, `type: integer` an int;
# strings with `format: byte` are bytes (strfmt.Base64: URL-safe base64 with padding), `duration` durations
# (strfmt.ParseDuration), `date` and `date-time` timestamps (every other format stays a string); lists with
# `x-kubernetes-list-type: set` or `map` compare equal ignoring order; objects show their declared properties
# under escaped names (escaping.go) and hide any other field. A value that cannot be converted is an error
# value in the API server (an error for the rule that reads it); here it makes the rules that see it
# "not evaluated".


class SetList(celtypes.ListType):
    """A list with `x-kubernetes-list-type: set` (values.go `unstructuredSetList`)."""


class MapList(celtypes.ListType):
    """A list with `x-kubernetes-list-type: map`, keyed by `x-kubernetes-list-map-keys` (escaped)."""

    keys: tuple[str, ...] = ()

    def key_of(self, item: Any) -> tuple[Any, ...]:
        if not isinstance(item, dict):
            return (id(item),)
        return tuple(_hashable(item.get(celtypes.StringType(k))) for k in self.keys)


def _hashable(value: Any) -> Any:
    if _is_number(value):
        return _plain(value)
    return value if isinstance(value, (str, bytes, bool, int, float, type(None))) else repr(value)


_WS = "\t\n\f\r "  # Go regexp's \s
_SCALA_DURATION = re.compile(rf"^[{_WS}]*(?:[0-9]+[{_WS}]*[A-Za-z\u00b5]+[{_WS}]*)+$")
_SCALA_PART = re.compile(rf"(([0-9]+)[{_WS}]*([A-Za-z\u00b5]+))")
_SCALA_UNITS = (  # kube-openapi pkg/validation/strfmt/duration.go timeUnits, with their multipliers
    (("ns", "nano"), 1),
    (("us", "\u00b5s", "micro"), 1_000),
    (("ms", "milli"), 1_000_000),
    (("s", "sec"), 1_000_000_000),
    (("m", "min"), 60_000_000_000),
    (("h", "hr", "hour"), 3_600_000_000_000),
    (("d", "day"), 86_400_000_000_000),
    (("w", "wk", "week"), 604_800_000_000_000),
)


def parse_strfmt_duration(text: str) -> int:
    """Nanoseconds of a `format: duration` string, as kube-openapi's strfmt.ParseDuration reads it: Go's
    time.ParseDuration first, else its Scala-like form ("3 days", "1 hour 30 min"). Raises GoDurationError."""
    try:
        return parse_go_duration(text)
    except GoDurationError:
        pass
    if not _SCALA_DURATION.match(text):
        raise GoDurationError(f"unable to parse {text} as duration")
    total, matched = 0, False
    for _, number, unit_text in _SCALA_PART.findall(text):
        unit = unit_text.strip(_WS).lower()
        for variants, multiplier in _SCALA_UNITS:
            last = len(variants) - 1
            for index, variant in enumerate(variants):
                if (index == last and unit.startswith(variant)) or variant == unit:
                    matched = True
                    total += int(number) * multiplier
    if not matched:
        raise GoDurationError(f"unable to parse {text} as duration")
    if not -_INT64_LIMIT <= total < _INT64_LIMIT:
        raise GoDurationError(f"{text}: out of the int64 nanoseconds Go's time.Duration holds")
    return total


_URL_BASE64 = re.compile(r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$")
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_FULL_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")


class _Unconvertible(Exception):
    """A value the API server cannot type by its schema (an error value there); the text says why."""


class Unconverted:
    """Stands in for a field value the API server holds as an error value (values.go returns types.NewErr
    and converts lazily, so only a rule that reads the field meets the error). The field is present
    (`has()` is true); comparing it, or any function on it, makes the rule "not evaluated"."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"Unconverted({self.why!r})"


def _child(schema: Any, value: Any) -> Any:
    try:
        return to_cel(schema, value)
    except _Unconvertible as err:
        return Unconverted(str(err))


def _formatted(text: str, fmt: Any) -> Any:
    """A string of `format: fmt` as values.go converts it (byte, duration, date, date-time), else a string."""
    if fmt == "byte":
        # strfmt.Base64.UnmarshalText: base64.URLEncoding (padded), which skips \r and \n
        data = text.replace("\r", "").replace("\n", "")
        if not _URL_BASE64.match(data):
            raise _Unconvertible(f"invalid byte formatted string {text!r} (URL-safe base64 with padding)")
        return celtypes.BytesType(base64.urlsafe_b64decode(data))
    if fmt == "duration":
        try:
            nanos = parse_strfmt_duration(text)
        except GoDurationError as err:
            raise _Unconvertible(f"invalid duration {text!r}: {err}") from None
        value = _duration_from_ns(nanos)
        if isinstance(value, celpy.CELEvalError):
            raise _Unconvertible(str(value.args[0]))
        return value
    if fmt == "date":
        match = _FULL_DATE.match(text)
        try:
            if not match:
                raise ValueError("not YYYY-MM-DD")
            calendar_day = datetime.date(*(int(g) for g in match.groups()))
        except ValueError as err:
            raise _Unconvertible(f"invalid date formatted string {text!r}: {err}") from None
        return celtypes.TimestampType(
            datetime.datetime(calendar_day.year, calendar_day.month, calendar_day.day, tzinfo=datetime.UTC)
        )
    if fmt == "date-time":
        # strfmt.ParseDateTime tries several layouts; RFC 3339 is the one read here, and any other text
        # (a local time without offset, a comma fraction) is reported as not evaluated rather than guessed.
        match = _RFC3339.match(text)
        try:
            if not match:
                raise ValueError("not an RFC 3339 date-time")
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            if fraction and fraction[6:].strip("0"):
                raise ValueError("sub-microsecond precision, which cel-python drops")
            micros = int((fraction or "0")[:6].ljust(6, "0"))
            if zone == "Z":
                tz = datetime.UTC
            else:
                sign = 1 if zone[0] == "+" else -1
                tz = datetime.timezone(
                    sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
                )
            moment = datetime.datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
            )
        except ValueError as err:
            raise _Unconvertible(f"date-time {text!r} not evaluated here: {err}") from None
        return celtypes.TimestampType(moment)
    return celtypes.StringType(text)


def _with_type_and_object_meta(schema: dict[str, Any]) -> dict[str, Any]:
    """model.WithTypeAndObjectMeta: a resource root (or embedded resource) shows kind, apiVersion and, of
    metadata, name and generateName (plus what the schema declares there), all as strings."""
    properties = dict(schema.get("properties") or {})
    string = {"type": "string"}
    meta = properties.get("metadata") if isinstance(properties.get("metadata"), dict) else {}
    meta_properties = dict((meta or {}).get("properties") or {})
    meta_properties.update(name=string, generateName=string)
    properties.update(
        kind=string, apiVersion=string, metadata={"type": "object", "properties": meta_properties}
    )
    return {**schema, "properties": properties}


def to_cel(schema: Any, value: Any, *, resource_root: bool = False) -> Any:
    """`value` as a rule on `schema` sees it (values.go `UnstructuredToVal`, section comment above).

    Raises _Unconvertible where the API server would produce an error value instead.
    """
    if not isinstance(schema, dict):
        raise _Unconvertible("no schema")
    if value is None:
        if schema.get("nullable"):
            return None
        raise _Unconvertible("null for a schema with nullable=false")
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, str):
            return celtypes.StringType(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return celtypes.IntType(value)
        raise _Unconvertible("x-kubernetes-int-or-string value is neither a string nor an integer")
    kind = schema.get("type")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if kind == "object":
        if not isinstance(value, dict):
            raise _Unconvertible("expected a map for a schema with type=object")
        if resource_root or schema.get("x-kubernetes-embedded-resource"):
            schema = _with_type_and_object_meta(schema)
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: dict[Any, Any] = {}
        if properties is not None:
            for key, item in value.items():
                escaped = escape_property(key) if key in properties else None
                if escaped is not None:
                    out[celtypes.StringType(escaped)] = _child(properties[key], item)
        elif isinstance(extra, dict):
            for key, item in value.items():
                out[celtypes.StringType(key)] = _child(extra, item)
        elif not preserve:
            raise _Unconvertible("object schema with neither properties nor additionalProperties")
        return celtypes.MapType(out)
    if kind == "array":
        if not isinstance(value, list):
            raise _Unconvertible("expected an array for a schema with type=array")
        items = schema.get("items")
        if not isinstance(items, dict):
            raise _Unconvertible("array schema without items")
        elements = [_child(items, item) for item in value]
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            return SetList(elements)
        if list_type == "map":
            keyed = MapList(elements)
            keyed.keys = tuple(
                escape_property(k) or k for k in schema.get("x-kubernetes-list-map-keys") or ()
            )
            return keyed
        return celtypes.ListType(elements)
    if kind == "string":
        if not isinstance(value, str):
            raise _Unconvertible(f"expected string, got {type(value).__name__}")
        return _formatted(value, schema.get("format"))
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return celtypes.DoubleType(float(value))  # a whole JSON number under type: number is a double
        raise _Unconvertible(f"expected number, got {type(value).__name__}")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return celtypes.IntType(value)
        raise _Unconvertible(f"expected integer, got {type(value).__name__}")
    if kind == "boolean":
        if isinstance(value, bool):
            return celtypes.BoolType(value)
        raise _Unconvertible(f"expected boolean, got {type(value).__name__}")
    if preserve:
        return celpy.json_to_cel(value)  # values.go `unknownPreserved`: kept as it is
    raise _Unconvertible(f"schema type {kind!r} has no CEL type")


def _sites(schema: Any, value: Any, path: str) -> Iterator[tuple[dict[str, Any], Any, str]]:
    """Every (schema node with rules, its value, its path) where the value is present."""
    if not isinstance(schema, dict) or value is None:
        return
    if schema.get("x-kubernetes-validations"):
        yield schema, value, path
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if name in value:
                yield from _sites(sub, value[name], f"{path}.{name}" if path else name)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in properties:
                    yield from _sites(extra, item, f'{path}["{key}"]' if path else f'["{key}"]')
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _sites(schema["items"], item, f"{path}[{index}]")


def evaluate_rules(schema: dict[str, Any], obj: dict[str, Any]) -> CelResult:
    """Every `x-kubernetes-validations` rule of `schema` (an openAPIV3Schema) on `obj`, as on create."""
    result = CelResult()
    for node, value, path in _sites(schema, apply_defaults(schema, obj), ""):
        seen: Any = None
        unconvertible = ""
        try:
            seen = to_cel(node, value, resource_root=not path)
        except _Unconvertible as err:
            unconvertible = f"the value cannot be typed as the API server types it ({err})"
        for entry in node["x-kubernetes-validations"]:
            rule = str(entry.get("rule", ""))
            try:
                transition = uses_old_self(rule)
            except _NotEvaluated as exc:
                result.not_evaluated.append((path, rule, str(exc)))
                continue
            if transition:
                if entry.get("optionalOldSelf"):
                    why = (
                        "optionalOldSelf rule: the API server runs it on create with oldSelf = optional.none(), "
                        "and cel-python has no CEL optionals"
                    )
                    result.not_evaluated.append((path, rule, why))
                else:
                    result.transition += 1
                continue
            if unconvertible:
                result.not_evaluated.append((path, rule, unconvertible))
                continue
            try:
                verdict = _run(rule, seen, typed=True)
                if not isinstance(verdict, (bool, celtypes.BoolType)):
                    raise _NotEvaluated(f"it gave {type(verdict).__name__}, not a bool")
            except _Rejected as err:
                # validation.go: "<error> evaluating rule: <message, else rule>"
                result.evaluated += 1
                result.rules_run.add(rule)
                message = str(entry.get("message") or "").strip() or rule.strip()
                result.failures.append((path or "(top level)", f"{err} evaluating rule: {message}", rule))
                continue
            except _NotEvaluated as exc:
                result.not_evaluated.append((path, rule, str(exc)))
                continue
            result.evaluated += 1
            result.rules_run.add(rule)
            if not bool(verdict):
                result.failures.append((_field(path, entry), _message(entry, seen, rule), rule))
    return result


def _field(path: str, entry: dict[str, Any]) -> str:
    extra = entry.get("fieldPath")  # a JSON path relative to the node: ".spec.x" or "['a.b']"
    return f"{path}{extra}" if isinstance(extra, str) and extra else path or "(top level)"


def _message(entry: dict[str, Any], value: Any, rule: str) -> str:
    expression = entry.get("messageExpression")
    if isinstance(expression, str) and expression:
        try:
            text = _run(expression, value, typed=True)
            if isinstance(text, str) and text.strip():  # celpy's `+` gives a plain str
                return str(text).strip()
        except (_NotEvaluated, _Rejected):
            pass  # the API server also falls back to `message` when messageExpression fails
    message = entry.get("message")
    return str(message) if message else f"failed rule: {rule}"
