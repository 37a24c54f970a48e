"""The CEL rule evaluator (inferstack.validation.cel) on small schemas: what runs, what is skipped, what fails."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.validation.cel import K8S_FUNCTIONS, _run, evaluate_rules


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
