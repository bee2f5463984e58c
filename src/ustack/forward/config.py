# SPDX-License-Identifier: MIT
"""The guest network: who is who on the link between ustack and the guest.

Defaults follow slirp4netns (guest 10.0.2.100, gateway 10.0.2.2, DNS at the gateway),
with an IPv6 ULA prefix served by router advertisements and DHCPv6.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MTU = 65520


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's nameservers, which the DNS forwarder relays to."""
    servers = []
    try:
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    servers.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
                except ValueError:
                    continue
    except OSError:
        pass
    return servers


@dataclass
class GuestNetwork:
    mtu: int = DEFAULT_MTU
    # IPv4
    network4: str = "10.0.2.0/24"
    gateway4: str = "10.0.2.2"
    guest4: str = "10.0.2.100"
    # IPv6: a ULA /64; the gateway also answers on fe80::2 (router advertisements)
    network6: str = "fd00:0:0:2::/64"
    gateway6: str = "fd00:0:0:2::2"
    gateway6_link_local: str = "fe80::2"
    guest6: str = "fd00:0:0:2::100"
    #: the DNS forwarder listens on the gateway addresses
    dns_upstream: list[str] = field(default_factory=host_resolvers)
    #: connections to the gateway address reach the host's loopback (as pasta's default)
    map_host_loopback: bool = True
    lease_time: int = 3600
    domain: str = ""

    @property
    def prefix4(self) -> int:
        return ipaddress.ip_network(self.network4).prefixlen

    @property
    def prefix6(self) -> int:
        return ipaddress.ip_network(self.network6).prefixlen

    def gateway_interfaces(self) -> list[str]:
        """What ustack's NIC on the guest link holds, as ``addr/len``."""
        return [f"{self.gateway4}/{self.prefix4}", f"{self.gateway6}/{self.prefix6}",
                f"{self.gateway6_link_local}/64"]
