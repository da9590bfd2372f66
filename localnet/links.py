"""Gateway links between local regions, one per ordered pair: region A reaches region B's
gateway load balancer through a link of its own (B's name resolves, in A's servers' hosts file,
to that link's address), so cutting A and B apart leaves every other pair connected, the way a
network partition between two clouds would."""

from __future__ import annotations

from collections.abc import Iterable

from localnet.ports import LOOPBACK
from localnet.proxy import TcpProxy
from localnet.region import LocalRegion


def link_address(source: int, target: int) -> str:
    """The loopback address on which region `source` reaches region `target` (by plan order)."""
    return f"127.1.{source}.{target}"


class GatewayLinks:
    """Every ordered pair's proxy. Start it after the regions are written (their ports are
    known) and before any of them starts."""

    def __init__(self, regions: Iterable[LocalRegion], one_way_delay_ms: float = 0.0) -> None:
        self.regions = {r.name: r for r in regions}
        order = list(self.regions)
        self.links: dict[tuple[str, str], TcpProxy] = {
            (source, target): TcpProxy(
                (link_address(i, j), self.regions[target].spec.gateway_port),
                [(LOOPBACK, p.gateway) for p in self.regions[target].ports],
                one_way_delay_ms=one_way_delay_ms,
            )
            for i, source in enumerate(order)
            for j, target in enumerate(order)
            if i != j
        }
        self.cut_pairs: set[frozenset[str]] = set()

    def start(self) -> None:
        for proxy in self.links.values():
            proxy.start()

    def stop(self) -> None:
        for proxy in self.links.values():
            proxy.stop()

    def cut(self, a: str, b: str) -> None:
        """Both directions between `a` and `b`: open gateway connections drop, new ones fail."""
        self.links[(a, b)].cut()
        self.links[(b, a)].cut()
        self.cut_pairs.add(frozenset((a, b)))

    def isolate(self, region: str) -> None:
        for other in self.regions:
            if other != region:
                self.cut(region, other)

    def heal(self) -> None:
        for pair in self.cut_pairs:
            a, b = sorted(pair)
            self.links[(a, b)].restore()
            self.links[(b, a)].restore()
        self.cut_pairs.clear()
