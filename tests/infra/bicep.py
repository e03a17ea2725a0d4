"""Read the Bicep under infra/ with the tree-sitter-bicep grammar: syntax errors, declarations, object literals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def parse_source(source: bytes) -> Tree:
    return _parser().parse(source)


@cache
def parse(path: Path) -> Tree:
    return parse_source(path.read_bytes())


def syntax_errors(tree: Tree) -> list[str]:
    """`ERROR` and `MISSING` nodes as `line:column type` (1-based), empty for a clean parse."""
    found: list[str] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            found.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} "
                         f"{'missing ' if node.is_missing else ''}{node.type}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return found


def text(node: Node) -> str:
    return (node.text or b"").decode("utf-8")


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def declarations(path: Path, kind: str) -> dict[str, Node]:
    """Top-level declarations of one kind (`variable_declaration`, `output_declaration`, ...) by name."""
    out: dict[str, Node] = {}
    for node in parse(path).root_node.children:
        if node.type == kind:
            name = next(child for child in node.children if child.type == "identifier")
            out[text(name)] = node
    return out


def value_node(declaration: Node) -> Node:
    """The expression a `var`/`output`/`param` declaration is set to (the node after `=`)."""
    children = declaration.children
    for index, child in enumerate(children):
        if child.type == "=":
            return children[index + 1]
    raise ValueError(f"declaration without a value: {text(declaration)[:80]}")


def string_literal(node: Node) -> str | None:
    """The value of a plain string literal, None for anything computed (interpolations, references)."""
    if node.type != "string" or any(child.type == "interpolation" for child in node.children):
        return None
    raw = text(node)
    return raw[1:-1].replace("\\'", "'") if raw.startswith("'") else None


@dataclass(frozen=True)
class Property:
    key: str
    value: Node

    @property
    def literal(self) -> str | None:
        return string_literal(self.value)


def object_properties(node: Node) -> dict[str, Property]:
    """The properties of an object literal by key (identifier or quoted string keys)."""
    if node.type != "object":
        raise ValueError(f"not an object literal: {text(node)[:80]}")
    out: dict[str, Property] = {}
    for prop in node.children:
        if prop.type != "object_property":
            continue
        key_node, value = prop.named_children[0], prop.named_children[-1]
        key = string_literal(key_node) if key_node.type == "string" else text(key_node)
        assert key is not None, f"computed key in {text(node)[:80]}"
        out[key] = Property(key, value)
    return out


def resources(path: Path) -> Iterator[tuple[str, Node]]:
    """`(type@api-version, declaration)` for every resource declared in the file (loops included)."""
    for node in parse(path).root_node.children:
        if node.type == "resource_declaration":
            type_node = next(child for child in node.children if child.type == "string")
            yield string_literal(type_node) or "", node
