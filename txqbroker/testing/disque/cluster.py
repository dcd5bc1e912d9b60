"""
:class:`StandInCluster`: stand-in nodes that know each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = ["StandInCluster"]


class StandInCluster:
    """
    Stand-in nodes that know each other (what ``CLUSTER MEET`` would do).
    Add nodes with :meth:`add`; :class:`~txqbroker.testing.DisqueServer`
    does it when given ``cluster=``.
    """

    def __init__(self) -> None:
        self.nodes: list[DisqueNode] = []

    def add(self, node: DisqueNode) -> None:
        """Make ``node`` a member (it keeps its place when re-added)."""
        if node not in self.nodes:
            self.nodes.append(node)
        node.cluster = self

    def peers(self, node: DisqueNode) -> list[DisqueNode]:
        """The other running nodes."""
        return [n for n in self.nodes if n is not node and n.running]
