"""The create/delete order of a planned stack, as Pulumi derives it: dependency and parent edges."""

from __future__ import annotations

from inferstack.planning.plan import Plan
from inferstack.planning.recording import RecordedResource


def by_urn(plan: Plan) -> dict[str, RecordedResource]:
    return {r.urn: r for r in plan.recording.resources}


def ancestors_and_dependencies(plan: Plan, resource: RecordedResource) -> set[str]:
    """Every URN `resource` waits for on create (and outlives on destroy): its dependencies, its parents'
    dependencies, and theirs, transitively. Pulumi orders deletes by the same edges, reversed."""
    index = by_urn(plan)
    seen: set[str] = set()
    todo = [resource.urn]
    while todo:
        urn = todo.pop()
        r = index.get(urn)
        if r is None:
            continue
        for nxt in [*r.dependencies, *([r.parent] if r.parent else [])]:
            # The root stack is everyone's parent; it says nothing about order.
            if nxt not in seen and "::pulumi:pulumi:Stack::" not in nxt:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def covers(plan: Plan, urns: set[str], type_token: str, name_suffix: str = "") -> bool:
    """Whether one of `urns` is the resource of this type, or a component containing it."""
    target = plan.recording.one(type_token, name_suffix)
    index = by_urn(plan)
    urn: str | None = target.urn
    while urn:
        if urn in urns:
            return True
        urn = index[urn].parent if urn in index else None
    return False
