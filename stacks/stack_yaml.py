"""Read a stack file's YAML strictly, remembering where every key is, so errors can name file:line:column.

PyYAML's `safe_load` silently keeps the last of two equal keys in a mapping (a second `uri:` wins
without a word) and words its errors as `in "<unicode string>", line 12, column 3`. Pulumi's own CLI
reads the same file with Go's yaml.v3, which refuses a repeated key ("mapping key %#v already defined at
line %d", go-yaml v3 decode.go, `decoder.mapping`), so a file we accepted could fail `pulumi up` or,
worse, deploy a value the author did not mean. This module:

- rejects a repeated key in any mapping, naming the key and both lines;
- reports YAML syntax errors as `PATH:LINE:COLUMN: not valid YAML: ...`;
- returns, beside the document, the 1-based (line, column) of every mapping key and sequence item,
  keyed by its path from the document root (e.g. `("config", "inferstack:model", "uri")`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: A path from the document root: mapping keys (as written) and sequence indices.
Path = tuple[str | int, ...]
#: 1-based line and column, as editors and `file:line:col` links count them.
Position = tuple[int, int]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """A stack file that is not valid YAML, or repeats a key. `line`/`column` are 1-based (0: unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def located(self, source: str) -> str:
        """`source:line:column: message`, the form editors and terminals turn into links."""
        where = f"{source}:{self.line}:{self.column}" if self.line else source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class LoadedYaml:
    document: Any
    positions: dict[Path, Position]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (YAML 1.2 requires keys to be unique)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        # Check only the keys written in this mapping: a key that overrides one brought in by a merge
        # (`<<: *defaults`) is the merge's documented purpose, not a repeat.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # SafeConstructor reports an unhashable key itself, with its mark
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise YamlError(
                    f"duplicate key {key!r} (first at line {first_line[key]}): YAML keeps only one of them "
                    f"and Pulumi refuses the file; delete one of lines {first_line[key]} and {line}",
                    line,
                    key_node.start_mark.column + 1,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document strictly. Raises YamlError (with line and column) on any problem."""
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # the reader checks every character here, before parsing
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        raise _located(err) from None
    except yaml.reader.ReaderError as err:
        line, column = _line_column(text, err.position)
        raise YamlError(f"not valid YAML: {err.reason} (U+{err.character:04X})", line, column) from None
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error above carries a place
        raise YamlError(f"not valid YAML: {err}") from None
    finally:
        if loader is not None:
            loader.dispose()
    positions: dict[Path, Position] = {}
    if node is not None:
        _record(node, (), positions, set())
    return LoadedYaml(document, positions)


def _located(err: yaml.MarkedYAMLError) -> YamlError:
    """PyYAML's problem, at its own mark, with the context it gives ("while parsing a block mapping")."""
    mark = err.problem_mark or err.context_mark
    message = f"not valid YAML: {err.problem or err.context or 'cannot parse'}"
    if err.problem and "'\\t'" in err.problem:
        # PyYAML words a tab used for indentation as "found character '\t' that cannot start any token".
        message = (
            "not valid YAML: a tab character: YAML indents with spaces only; replace the tab with spaces"
        )
    elif err.context and err.problem and err.context_mark is not None:
        message += f" ({err.context} started at line {err.context_mark.line + 1})"
    if mark is None:  # pragma: no cover - the parser always marks a problem
        return YamlError(message)
    return YamlError(message, mark.line + 1, mark.column + 1)


def _line_column(text: str, offset: int) -> Position:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _record(node: Node, path: Path, positions: dict[Path, Position], on_path: set[int]) -> None:
    # An alias can point back at a node that contains it (`&a [*a]`): never walk into one twice.
    if id(node) in on_path:
        return
    on_path = on_path | {id(node)}
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            child = (*path, key_node.value)
            # After a merge the mapping lists the merged keys first and its own after: the last wins,
            # as it does for the value.
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _record(value_node, child, positions, on_path)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions.setdefault(child, (item.start_mark.line + 1, item.start_mark.column + 1))
            _record(item, child, positions, on_path)
