"""Patterns over a :class:`~edgeshuffle.graph.ir.Graph`, written as nested data (tf2onnx's OpTypePattern).

``Pattern(Concatenate, each=Pattern(Conv2D, inputs=(Pattern(ANY, name="slice"),), name="conv"),
name="concat")`` matches a concat whose every input is a conv of something;
a match binds each name to its node (a list of nodes for an ``each`` pattern).
A :class:`Rule` is a pattern, a condition on the match and a replacement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from edgeshuffle.graph.ir import INPUT, Graph, Node, Ref

ANY = object()  # matches any node but the model input


@dataclasses.dataclass(frozen=True)
class Pattern:
    """``op``: a layer class (or tuple, matched by ``isinstance``), ``ANY``, or a predicate on the node.

    ``inputs``: one pattern per input, in order (None: inputs not looked at);
    ``each``: one pattern every input must match (any number of inputs).
    """

    op: Any
    inputs: tuple[Pattern, ...] | None = None
    each: Pattern | None = None
    name: str | None = None


Match = dict[str, Any]  # pattern name -> Node, or list of Nodes for names under an ``each``


def _op_matches(op, node: Node) -> bool:
    if node.name == INPUT:
        return False
    if op is ANY:
        return True
    if isinstance(op, (type, tuple)):
        return isinstance(node.op, op)
    return bool(op(node))


def match(pattern: Pattern, graph: Graph, node: Node, bound: Match | None = None, inner: bool = False) -> Match | None:
    """The bindings of ``pattern`` rooted at ``node``, or None.

    Every matched node but the root must be read only by the match (a node
    also read elsewhere cannot be replaced), which :meth:`Rule.find` checks.
    """
    bound = {} if bound is None else bound
    if not _op_matches(pattern.op, node):
        return None
    if pattern.name:
        if inner:
            bound.setdefault(pattern.name, []).append(node)
        else:
            bound[pattern.name] = node
    if pattern.inputs is not None:
        if len(pattern.inputs) != len(node.inputs):
            return None
        for sub, ref in zip(pattern.inputs, node.inputs):
            if match(sub, graph, graph.node(ref), bound, inner) is None:
                return None
    if pattern.each is not None:
        for ref in node.inputs:
            if match(pattern.each, graph, graph.node(ref), bound, True) is None:
                return None
    return bound


def matched_nodes(match_: Match) -> list[Node]:
    nodes = []
    for value in match_.values():
        nodes.extend(value if isinstance(value, list) else [value])
    return nodes


@dataclasses.dataclass(frozen=True)
class Rule:
    """A pattern, a condition on its match, and a replacement that edits the graph.

    ``interior``: names of matched nodes that the replacement removes; each
    must be read only by other nodes of the match.
    """

    pattern: Pattern
    replace: Callable[[Graph, Match, Any], None]
    condition: Callable[[Graph, Match], bool] = lambda graph, match_: True
    interior: tuple[str, ...] = ()

    def find(self, graph: Graph) -> tuple[Node, Match] | None:
        """The first node (in graph order) where the rule applies, with its match."""
        for node in graph.ordered():
            found = match(self.pattern, graph, node)
            if found is None or not self._interior_private(graph, found) or not self.condition(graph, found):
                continue
            return node, found
        return None

    def _interior_private(self, graph: Graph, found: Match) -> bool:
        inside = {n.name for n in matched_nodes(found)}
        for name in self.interior:
            for node in found[name] if isinstance(found[name], list) else [found[name]]:
                for index in range(len(node.shapes)):
                    ref: Ref = (node.name, index)
                    if ref == graph.output or any(c.name not in inside for c in graph.consumers(ref)):
                        return False
        return True


def apply_rules(graph: Graph, rules: tuple[Rule, ...], options) -> list[str]:
    """Apply each rule until it no longer matches; the names of the root layers it fired on."""
    fired = []
    for rule in rules:
        for _ in range(len(graph.nodes) + 1):  # every firing removes or replaces its root
            found = rule.find(graph)
            if found is None:
                break
            root, bindings = found
            rule.replace(graph, bindings, options)
            graph.prune()
            fired.append(root.name)
    return fired
