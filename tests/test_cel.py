"""The CEL rule evaluator (inferstack.validation.cel) on small schemas: what runs, what is skipped, what fails."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.validation.cel import (
    K8S_FUNCTIONS,
    GoDurationError,
    _run,
    evaluate_rules,
    parse_go_duration,
    uses_old_self,
)


def _schema(rules: list[dict[str, Any]], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": properties or {"name": {"type": "string"}},
                "x-kubernetes-validations": rules,
            }
        },
    }


def test_a_false_rule_is_a_failure_with_its_message_and_path() -> None:
    schema = _schema([{"rule": "self.name.startsWith('llm')", "message": "name must start with llm"}])
    result = evaluate_rules(schema, {"spec": {"name": "web"}})
    assert result.failures == [("spec", "name must start with llm", "self.name.startsWith('llm')")]
    assert result.evaluated == 1 and not result.not_evaluated
    assert evaluate_rules(schema, {"spec": {"name": "llm-server"}}).failures == []


def test_a_rule_on_an_absent_field_does_not_run() -> None:
    schema = _schema([{"rule": "false", "message": "never"}])
    result = evaluate_rules(schema, {})
    assert result.failures == [] and result.evaluated == 0


def test_rules_on_list_items_run_per_item_with_their_index() -> None:
    item = {"type": "object", "properties": {"port": {"type": "integer"}}}
    item["x-kubernetes-validations"] = [{"rule": "self.port > 0", "message": "port must be positive"}]
    schema = _schema([], refs={"type": "array", "items": item})
    result = evaluate_rules(schema, {"spec": {"refs": [{"port": 80}, {"port": 0}]}})
    assert result.evaluated == 2
    assert result.failures == [("spec.refs[1]", "port must be positive", "self.port > 0")]


def test_defaults_apply_before_the_rules_run() -> None:
    schema = _schema(
        [{"rule": "self.mode == 'Strict'", "message": "mode must be Strict"}],
        mode={"type": "string", "default": "Lax"},
    )
    assert evaluate_rules(schema, {"spec": {}}).failures == [
        ("spec", "mode must be Strict", "self.mode == 'Strict'")
    ]


def test_message_expression_wins_over_message_and_field_path_is_appended() -> None:
    rule = {
        "rule": "size(self.name) < 4",
        "message": "too long",
        "messageExpression": "'name ' + self.name + ' is too long'",
        "fieldPath": ".name",
    }
    result = evaluate_rules(_schema([rule]), {"spec": {"name": "llm-server"}})
    assert result.failures == [("spec.name", "name llm-server is too long", "size(self.name) < 4")]


def test_transition_rules_are_skipped_on_create() -> None:
    result = evaluate_rules(
        _schema([{"rule": "self == oldSelf", "message": "immutable"}]), {"spec": {"name": "a"}}
    )
    assert result.failures == [] and result.evaluated == 0 and result.transition == 1


def test_an_unknown_function_is_not_evaluated_never_a_failure() -> None:
    rule = "isURL(self.name)"  # k8s.io/apiserver/pkg/cel/library/urls.go: not implemented here
    result = evaluate_rules(_schema([{"rule": rule, "message": "bad url"}]), {"spec": {"name": "x"}})
    assert result.failures == [] and result.evaluated == 0
    assert result.not_evaluated == [("spec", rule, "function or variable 'isURL' is not implemented here")]


def test_an_unparsable_rule_is_not_evaluated() -> None:
    result = evaluate_rules(_schema([{"rule": "self.name ==", "message": "m"}]), {"spec": {"name": "x"}})
    assert result.failures == [] and len(result.not_evaluated) == 1
    assert result.not_evaluated[0][2].startswith("cel-python cannot parse it")


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("self.lowerAscii()", "ÀuThOrIzAtIoN", "Àauthorization"[0] + "uthorization"),  # only A-Z change
        ("self.upperAscii()", "post", "POST"),
        ("self.trim()", "\x1c x \u3000", "\x1c x"),  # Go's TrimSpace keeps U+001C; Python's strip() would not
        ("self.split('@')", "al2023@latest", ["al2023", "latest"]),
        ("self.split('@', 1)", "a@b@c", ["a@b@c"]),
        ("self.split('@', 0)", "a@b", []),
        ("self.split('')", "ab", ["a", "b"]),
        ("self.find('^([^/]+)')", "karpenter.sh/nodepool", "karpenter.sh"),
        ("self.find('[0-9]+')", "abc", ""),
        ("self.findAll('[0-9]', 2)", "a1b2c3", ["1", "2"]),
        ("self.matches('^[a-z]+$')", "abc", True),
    ],
)
def test_kubernetes_extension_functions_match_go(expression: str, value: Any, expected: Any) -> None:
    assert _run(expression, value) == expected


def test_every_extension_is_named_as_kubernetes_names_it() -> None:
    assert set(K8S_FUNCTIONS) == {"lowerAscii", "upperAscii", "trim", "split", "find", "findAll"}


# --- what the API server accepts must pass (review of issue 14: false positives) --------------------------


def test_rules_see_escaped_property_names() -> None:
    # k8s.io/apiserver/pkg/cel/escaping.go: `namespace` is a CEL reserved word, so rules say __namespace__
    # (Gateway API's parentRefs rule); `a.b`-style names get __dot__ and friends.
    ref = {"type": "object", "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}
    rule = {
        "rule": "self.all(p1, self.exists_one(p2, p1.name == p2.name && "
        "(has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '')))",
        "message": "duplicate parent",
    }
    schema = _schema([], parentRefs={"type": "array", "items": ref, "x-kubernetes-validations": [rule]})
    two_namespaces = [{"name": "gw", "namespace": "team-a"}, {"name": "gw", "namespace": "team-b"}]
    assert evaluate_rules(schema, {"spec": {"parentRefs": two_namespaces}}).failures == []
    same = [{"name": "gw", "namespace": "team-a"}, {"name": "gw", "namespace": "team-a"}]
    assert [f[1] for f in evaluate_rules(schema, {"spec": {"parentRefs": same}}).failures] == [
        "duplicate parent"
    ]
    dotted = _schema(
        [{"rule": "self.app__dot__kubernetes__dot__io__slash__name == 'llm'"}],
        **{"app.kubernetes.io/name": {"type": "string"}},
    )
    assert evaluate_rules(dotted, {"spec": {"app.kubernetes.io/name": "llm"}}).failures == []
    assert evaluate_rules(dotted, {"spec": {"app.kubernetes.io/name": "web"}}).failures


def test_a_null_the_schema_does_not_allow_takes_the_default() -> None:
    # apiextensions-apiserver schema/defaulting/algorithm.go: a non-nullable null counts as absent.
    schema = _schema(
        [{"rule": "self.mode == 'fast'", "message": "mode"}],
        mode={"type": "string", "default": "fast"},
    )
    assert evaluate_rules(schema, {"spec": {"mode": None}}).failures == []
    assert evaluate_rules(schema, {"spec": {"mode": "slow"}}).failures


# --- values typed by the schema (k8s.io/apiserver/pkg/cel/common/values.go UnstructuredToVal) ----------------


def _one(rule: str, spec: dict[str, Any], **properties: Any) -> tuple[int, list[str], list[str]]:
    """(evaluations, failure messages, not-evaluated reasons) of one rule on spec."""
    result = evaluate_rules(_schema([{"rule": rule, "message": "failed"}], **properties), {"spec": spec})
    return result.evaluated, [f[1] for f in result.failures], [n[2] for n in result.not_evaluated]


def test_a_whole_number_under_type_number_is_a_double() -> None:
    # values.go: `type: number` -> types.Double even for an int in the JSON; 1 / 2 would be 0 as ints.
    assert _one("self.ratio / 2.0 == 0.5", {"ratio": 1}, ratio={"type": "number"}) == (1, [], [])
    assert _one("self.ratio == 1.0", {"ratio": 1}, ratio={"type": "number"}) == (1, [], [])
    # an int compared with a double: cel-go's heterogeneous equality and cross-type ordering
    # (apiserver environment/base.go: cel.CrossTypeNumericComparisons(true) since 1.28)
    assert _one("self.n == 1.0 && self.n < 1.5 && 0.5 < self.n", {"n": 1}, n={"type": "integer"}) == (
        1,
        [],
        [],
    )
    assert _one("self.n != 'a' && !(self.n in ['1'])", {"n": 1}, n={"type": "integer"}) == (1, [], [])


def test_a_float_under_type_integer_is_not_evaluated() -> None:
    evaluated, failures, why = _one("self.n == 2", {"n": 2.5}, n={"type": "integer"})
    assert (evaluated, failures) == (0, []) and "expected integer" in why[0]


@pytest.mark.parametrize(
    ("rule", "value", "fmt"),
    [
        ("self.v == b'abc'", "YWJj", "byte"),  # URL-safe base64 -> bytes
        ("size(self.v) == 2", "_-8=", "byte"),
        ("self.v == duration('90m')", "1h30m", "duration"),
        ("self.v == duration('72h')", "3 days", "duration"),  # strfmt.ParseDuration's Scala-like form
        ("self.v < timestamp('2024-05-02T00:00:00Z')", "2024-05-01", "date"),
        ("self.v == timestamp('2024-05-01T08:00:00.5Z')", "2024-05-01T10:00:00.5+02:00", "date-time"),
        ("self.v == 'ipv4'", "ipv4", "ipv4"),  # other formats stay strings
    ],
)
def test_formats_are_typed_as_the_api_server_types_them(rule: str, value: str, fmt: str) -> None:
    assert _one(rule, {"v": value}, v={"type": "string", "format": fmt}) == (1, [], [])


def test_a_value_its_format_cannot_hold_is_not_evaluated_where_read() -> None:
    schema = {"v": {"type": "string", "format": "duration"}, "n": {"type": "string"}}
    evaluated, failures, why = _one("self.v > duration('1h')", {"v": "soon", "n": "x"}, **schema)
    assert (evaluated, failures) == (0, []) and "invalid duration 'soon'" in why[0]
    # the field is present for has(), and a rule that does not read it runs (values.go converts lazily)
    assert _one("has(self.v) && self.n == 'x'", {"v": "soon", "n": "x"}, **schema) == (1, [], [])
    # standard base64 ('+', '/') is not the URL alphabet strfmt.Base64 decodes
    assert _one("size(self.v) > 0", {"v": "ab+/"}, v={"type": "string", "format": "byte"})[0] == 0


def test_set_and_map_lists_compare_equal_ignoring_order() -> None:
    strings = {"type": "array", "items": {"type": "string"}}
    entry = {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
    keyed = {
        "type": "array",
        "items": entry,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    sets = {"a": {**strings, "x-kubernetes-list-type": "set"}, "b": strings}
    assert _one("self.a == self.b", {"a": ["x", "y"], "b": ["y", "x"]}, **sets) == (1, [], [])
    assert _one("self.b == self.a", {"a": ["x", "y"], "b": ["y", "x"]}, **sets)[1] == ["failed"]  # atomic
    maps = {"m": keyed, "plain": {"type": "array", "items": entry}}
    swapped = {"m": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}
    swapped["plain"] = list(reversed(swapped["m"]))
    assert _one("self.m == self.plain", swapped, **maps) == (1, [], [])
    swapped["plain"] = [{"name": "b", "port": 3}, {"name": "a", "port": 1}]
    assert _one("self.m == self.plain", swapped, **maps)[1] == ["failed"]


def test_undeclared_fields_are_hidden_and_the_root_shows_metadata_name_only() -> None:
    # model.WithTypeAndObjectMeta: at a resource root, metadata has name and generateName (no labels)
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object", "properties": {}}},
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('llm') && !has(self.metadata.labels)", "message": "m"}
        ],
    }
    obj = {"metadata": {"name": "llm-a", "labels": {"a": "b"}}, "spec": {}}
    result = evaluate_rules(schema, obj)
    assert (result.evaluated, result.failures, result.not_evaluated) == (1, [], [])


# --- duration(): Go's time.ParseDuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("1h30m", 5_400_000_000_000),
        ("300ms", 300_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("0", 0),
        ("+0", 0),
        ("1.h", 3_600_000_000_000),
        (".5s", 500_000_000),
        ("1\u00b5s", 1_000),
        ("1\u03bcs", 1_000),
        ("2h45m0.5s", 9_900_500_000_000),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
    ],
)
def test_go_durations_parse_as_go_does(text: str, nanos: int) -> None:
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize(
    "text", ["", "1", "1d", ".", "-", "1.5", "1 h", "h", "1h-5m", "9223372036854775808ns", "1e3s"]
)
def test_go_rejects_these_durations(text: str) -> None:
    with pytest.raises(GoDurationError):
        parse_go_duration(text)


def test_an_invalid_duration_string_is_rejected_as_the_api_server_rejects_it() -> None:
    # cel-go: duration('1d') is an evaluation error; validation.go reports "<error> evaluating rule: <message>"
    evaluated, failures, _ = _one("duration(self.d) < duration('2h')", {"d": "1d"}, d={"type": "string"})
    assert evaluated == 1
    assert failures == ['time: unknown unit "d" in duration "1d" evaluating rule: failed']
    assert _one("duration(self.d) < duration('2h')", {"d": "0"}, d={"type": "string"}) == (1, [], [])
    # `||` absorbs the error when the other side is true, in either order (cel-go's commutative or)
    assert _one("duration(self.d) < duration('2h') || true", {"d": "1d"}, d={"type": "string"}) == (1, [], [])


# --- oldSelf --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "transition"),
    [
        ("self == oldSelf", True),
        ("has(oldSelf.x) || true", True),
        ("self.oldSelfie == 'x'", False),
        ("self.name != 'oldSelf'", False),
        ("self.oldSelf == 'x'", False),
    ],
)
def test_transition_rules_are_told_by_the_oldself_identifier(rule: str, transition: bool) -> None:
    assert uses_old_self(rule) is transition


def test_a_rule_mentioning_oldself_in_a_literal_still_runs() -> None:
    result = evaluate_rules(
        _schema([{"rule": "self.name != 'oldSelf'", "message": "reserved"}]), {"spec": {"name": "oldSelf"}}
    )
    assert result.evaluated == 1 and result.transition == 0 and result.failures[0][1] == "reserved"


def test_optional_old_self_rules_are_not_evaluated_with_the_reason() -> None:
    rule = {"rule": "!oldSelf.hasValue() || self == oldSelf.value()", "optionalOldSelf": True}
    result = evaluate_rules(_schema([rule]), {"spec": {"name": "a"}})
    assert result.evaluated == 0 and result.transition == 0 and not result.failures
    assert "runs it on create with oldSelf = optional.none()" in result.not_evaluated[0][2]
