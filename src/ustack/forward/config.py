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
    #: which families the guest gets (``-4``/``-6`` turn one off: not configured, not forwarded)
    ipv4: bool = True
    ipv6: bool = True
    #: where the guest's resolver finds ustack's DNS forwarder (empty: the gateway)
    dns4: str = ""
    dns6: str = ""

    @property
    def prefix4(self) -> int:
        return ipaddress.ip_network(self.network4).prefixlen

    @property
    def prefix6(self) -> int:
        return ipaddress.ip_network(self.network6).prefixlen

    @property
    def dns_forward4(self) -> str:
        """The IPv4 address the guest sends DNS queries to (ustack's forwarder)."""
        return self.dns4 or self.gateway4

    @property
    def dns_forward6(self) -> str:
        return self.dns6 or self.gateway6

    def nameservers(self) -> list[str]:
        """What the guest's resolv.conf names, one per enabled family."""
        return ([self.dns_forward4] if self.ipv4 else []) + \
            ([self.dns_forward6] if self.ipv6 else [])

    def dns_addresses(self) -> list[str]:
        """Where ustack's DNS forwarder answers: the gateways and any --dns-forward address."""
        found: list[str] = []
        if self.ipv4:
            found += [self.gateway4, self.dns_forward4]
        if self.ipv6:
            found += [self.gateway6, self.gateway6_link_local, self.dns_forward6]
        return list(dict.fromkeys(found))

    def gateway_interfaces(self) -> list[str]:
        """What ustack's NIC on the guest link holds, as ``addr/len``.

        A ``--dns-forward`` address outside the gateway's prefix is held as a host
        route (/32, /128): the guest reaches it through the gateway."""
        found: list[str] = []
        if self.ipv4:
            found.append(f"{self.gateway4}/{self.prefix4}")
            if self.dns4 and self.dns4 != self.gateway4:
                inside = ipaddress.ip_address(self.dns4) in ipaddress.ip_network(self.network4)
                found.append(f"{self.dns4}/{self.prefix4 if inside else 32}")
        if self.ipv6:
            found += [f"{self.gateway6}/{self.prefix6}", f"{self.gateway6_link_local}/64"]
            if self.dns6 and self.dns6 != self.gateway6:
                inside = ipaddress.ip_address(self.dns6) in ipaddress.ip_network(self.network6)
                found.append(f"{self.dns6}/{self.prefix6 if inside else 128}")
        return found
