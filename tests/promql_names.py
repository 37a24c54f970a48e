"""Series names a PromQL expression selects, read from its parse tree (promql-parser, dev lock): what the
tests hold against the metric catalogue (components/metrics/exported.yaml)."""

from __future__ import annotations

from typing import Any

import promql_parser


def metric_names(expr: str) -> set[str]:
    """Every series name a PromQL expression selects, from its parse tree (raises ValueError if it does not
    parse). A name given only as a __name__ matcher counts too."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector)
        elif isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)
        elif isinstance(node, promql_parser.AggregateExpr):
            visit(node.expr)
            if node.param is not None:
                visit(node.param)
        elif isinstance(node, promql_parser.BinaryExpr):
            visit(node.lhs)
            visit(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                visit(arg)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            visit(node.expr)

    visit(promql_parser.parse(expr))
    return names
