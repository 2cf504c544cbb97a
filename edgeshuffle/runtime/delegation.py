"""What XNNPACK took: delegate partitions and the ops left outside them.

LiteRT's Python API lists a subgraph's original nodes followed by one
``DELEGATE`` node per partition, but not which nodes each partition replaced.
We recover that from the graph: walking back from a partition's output
tensors through their producers, stopping at the partition's inputs, visits
exactly the nodes it replaced. Every original node not visited runs on
LiteRT's own kernels.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

DELEGATE_OP = "DELEGATE"


@dataclasses.dataclass(frozen=True)
class DelegationReport:
    partitions: int
    nodes: int  # original nodes in the graph
    delegated_nodes: int
    undelegated_ops: dict[str, int]  # op name -> count of nodes outside every partition
    op_histogram: dict[str, int]  # every original node by op name

    @property
    def fully_delegated(self) -> bool:
        return self.partitions == 1 and not self.undelegated_ops

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "fully_delegated": self.fully_delegated}


def delegation_of(ops: list[dict]) -> DelegationReport:
    """Analyse ``Interpreter._get_ops_details()`` of an interpreter with delegates applied."""
    original = [op for op in ops if op["op_name"] != DELEGATE_OP]
    delegates = [op for op in ops if op["op_name"] == DELEGATE_OP]
    producer = {int(t): op["index"] for op in original for t in op["outputs"]}
    by_index = {op["index"]: op for op in original}
    covered: set[int] = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        seen_tensors: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen_tensors or tensor in boundary or tensor not in producer:
                continue
            seen_tensors.add(tensor)
            node = producer[tensor]
            if node in covered:
                continue
            covered.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0)
    outside = collections.Counter(op["op_name"] for op in original if op["index"] not in covered)
    histogram = collections.Counter(op["op_name"] for op in original)
    return DelegationReport(len(delegates), len(original), len(covered), dict(sorted(outside.items())),
                            dict(sorted(histogram.items())))


def xnnpack_delegation(path: Path, threads: int = 1) -> DelegationReport:
    """Load ``path`` in LiteRT with its default XNNPACK delegate and report what it took."""
    from edgeshuffle.runtime.tflite_runner import TFLiteRunner

    with TFLiteRunner(path, threads=threads) as runner:
        return delegation_of(runner.interpreter._get_ops_details())
