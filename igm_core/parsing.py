"""JSON and YAML read strictly: a key given twice in one mapping is an error, never a choice.

json.loads and yaml.safe_load keep the last of two equal keys without a word, so a spec that sets
`lr` twice, or a sweep grid that names `seed` twice, runs with whichever came last. `loads_json`
and `loads_yaml` parse with the parsers' own hooks (json's object_pairs_hook; a SafeLoader that
checks every mapping's keys before the document is built) and raise DuplicateKey naming the key
by its path in the document ("optimizer.lr", "grid.seed"). Keys are compared as the parser
builds them: YAML's `1` and `1.0`, or `yes` and `true`, are the same key. `loads_yaml(aliases=
False)` also refuses anchors and aliases (the API's loader: nested aliases blow up exponentially
once the result is walked, and a spec never needs them). Torch-free: the API (server.inputs) and
the `igm` CLI (igm_core.spec.load_spec_file) both read with this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["DuplicateKey", "loads_json", "loads_yaml"]

MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_KEY_SHOWN = 80


class DuplicateKey(ValueError):
    """A mapping that names `key` twice; `path` leads to the key, `line` (YAML) is 1-based."""

    def __init__(self, path: tuple[Any, ...], line: int | None = None) -> None:
        self.path, self.key, self.line = path, path[-1], line
        self.loc = ".".join(str(part)[:MAX_KEY_SHOWN] for part in path)
        where = f" (line {line})" if line is not None else ""
        self.message = (
            f"duplicate key {str(self.key)[:MAX_KEY_SHOWN]!r}{where}: each key may appear "
            "only once in a mapping"
        )
        super().__init__(f"{self.loc}: {self.message}")


# ----------------------------------------------------------------------------- JSON


class _Twice(dict):
    """A JSON object that named `twice` more than once (its value: the last one's)."""

    twice: Any = None


def _walk(data: Any) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every value in parsed JSON, in document order, without recursion."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))


def loads_json(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads(text, **kwargs), or DuplicateKey for the first key an object names twice."""
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        out = dict(items)
        if len(out) == len(items):
            return out
        twice, seen = _Twice(out), set()
        for key, _ in items:
            if key in seen:
                twice.twice = key
                break
            seen.add(key)
        found = True
        return twice

    data = json.loads(text, object_pairs_hook=pairs, **kwargs)
    if found:  # the hook knows the key; the walk finds where its object lies
        for path, value in _walk(data):
            if isinstance(value, _Twice):
                raise DuplicateKey((*path, value.twice))
    return data


# ----------------------------------------------------------------------------- YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises DuplicateKey before building a document with one."""

    def construct_document(self, node: Node) -> Any:
        _check_keys(self, node)
        return super().construct_document(node)


class _NoAliasLoader(_UniqueKeyLoader):
    """_UniqueKeyLoader without anchors and aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", mark)
        return super().compose_node(parent, index)


def _check_keys(loader: yaml.SafeLoader, root: Node) -> None:
    """DuplicateKey for the first mapping node (document order) that holds a key twice. Each
    node is visited once, so aliases (shared nodes, even cycles) cost nothing extra."""
    stack: list[tuple[tuple[Any, ...], Node]] = [((), root)]
    visited: set[int] = set()
    while stack:
        path, node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[tuple[Any, ...], Node]] = []
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, value in node.value:
                if key_node.tag == MERGE_TAG:  # `<<: {...}`: explicit keys override merged ones
                    children.append((path, value))
                    continue
                key = None  # a sequence or mapping as a key: the constructor refuses it
                if isinstance(key_node, ScalarNode):
                    key = loader.construct_object(key_node)
                    if key in seen:  # named as written: `true`, not True
                        line = key_node.start_mark.line + 1
                        raise DuplicateKey((*path, key_node.value), line)
                    seen.add(key)
                children.append(((*path, key), value))
        elif isinstance(node, SequenceNode):
            children = [((*path, i), item) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))


def loads_yaml(text: str | bytes, *, aliases: bool = True) -> Any:
    """yaml.safe_load(text), or DuplicateKey for the first key a mapping names twice; with
    aliases=False, anchors and aliases are a yaml.YAMLError too."""
    return yaml.load(text, Loader=_UniqueKeyLoader if aliases else _NoAliasLoader)
