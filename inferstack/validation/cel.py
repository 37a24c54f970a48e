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
- rules that use `oldSelf` are transition rules: on create there is no old object and they are skipped
  (unless `optionalOldSelf: true`, which needs CEL optionals: reported as not evaluated);
- a rule that evaluates to false is an error whose text is `messageExpression`'s result, else `message`,
  else "failed rule: <rule>"; its field is the node's path, or `fieldPath` relative to it.

Shapes: `evaluate_rules(schema, obj)` -> CelResult (failures: [(path, message, rule)], evaluated and
skipped counts, not_evaluated: [(path, rule, why)]).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import celpy
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


K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "trim": _trim,
    "split": _split,
    "find": _find,
    "findAll": _find_all,
}

# --- evaluation ----------------------------------------------------------------------------------------------

_ENV = celpy.Environment()
_OLD_SELF = re.compile(r"\boldSelf\b")
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


@functools.lru_cache(maxsize=4096)
def _program(expression: str) -> celpy.Runner:
    try:
        ast = _ENV.compile(expression)
    except Exception as exc:  # celpy.CELParseError, and lark's own errors on odd input
        raise _NotEvaluated(f"cel-python cannot parse it: {' '.join(str(exc).split())}") from exc
    return _ENV.program(ast, functions=K8S_FUNCTIONS)


def _run(expression: str, value: Any) -> Any:
    program = _program(expression)  # raises _NotEvaluated itself
    result: Any
    try:
        result = program.evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as exc:
        result = exc
    except Exception as exc:  # an interpreter bug must not stop the whole check
        raise _NotEvaluated(f"cel-python failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        text = str(result.args[0]) if result.args else str(result)
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


def cel_view(schema: Any, value: Any) -> Any:
    """`value` as rules see it: the schema's declared properties under their escaped names, recursively
    (map keys of `additionalProperties` are data, not property names, and stay as they are)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in properties:
                escaped = escape_property(key)
                if escaped is not None:
                    out[escaped] = cel_view(properties[key], item)
            else:
                out[key] = cel_view(extra, item) if isinstance(extra, dict) else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [cel_view(schema["items"], item) for item in value]
    return value


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
        for entry in node["x-kubernetes-validations"]:
            rule = str(entry.get("rule", ""))
            if _OLD_SELF.search(rule):
                if entry.get("optionalOldSelf"):
                    why = "optionalOldSelf rules need CEL optionals (oldSelf is optional.none() on create)"
                    result.not_evaluated.append((path, rule, why))
                else:
                    result.transition += 1
                continue
            seen = cel_view(node, value)
            try:
                verdict = _run(rule, seen)
                if not isinstance(verdict, (bool, celtypes.BoolType)):
                    raise _NotEvaluated(f"it gave {type(verdict).__name__}, not a bool")
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
            text = _run(expression, value)
            if isinstance(text, str) and text.strip():  # celpy's `+` gives a plain str
                return str(text)
        except _NotEvaluated:
            pass  # the API server also falls back to `message` when messageExpression fails
    message = entry.get("message")
    return str(message) if message else f"failed rule: {rule}"
