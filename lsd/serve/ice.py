"""Which local addresses aiortc offers as ICE host candidates.

aioice (aiortc's ICE) never offers 127.0.0.1: its `get_host_addresses` skips loopback. A
browser on the same machine that is allowed loopback candidates, or a machine whose only
interface is loopback (the browser tests run in a loopback-only network namespace), then
has no candidate pair and the call never connects. `use_host_addresses` replaces the
function aioice calls with one that puts 127.0.0.1 first, followed by the machine's other
addresses, or by exactly the list given (the tests pass ["127.0.0.1"] so no packet goes to
any other address). No STUN server is used either: the server's peer connections are
built with an empty ICE server list, so nothing is sent off the machine to discover it.
"""

from __future__ import annotations

import aioice.ice

LOOPBACK = "127.0.0.1"
_original = aioice.ice.get_host_addresses


def use_host_addresses(addresses: list[str] | None = None) -> None:
    """From now on (process-wide) aioice gathers host candidates on `addresses`, or on
    127.0.0.1 plus every address aioice would use anyway when `addresses` is None."""

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if addresses is not None:
            return list(addresses)
        found = _original(use_ipv4, use_ipv6)
        return ([LOOPBACK] if use_ipv4 else []) + [a for a in found if a != LOOPBACK]

    aioice.ice.get_host_addresses = get_host_addresses
