# SPDX-License-Identifier: MIT
"""The guest's addresses as pasta's options give them: ``-a ADDR[/PREFIX]``, ``-n MASK``,
``-g ADDR``, ``-4``/``-6``, ``--dns-forward ADDR`` and ``-D ADDR``.

:func:`apply_addressing` checks them together and writes the result into a
:class:`~ustack.forward.config.GuestNetwork`; a mistake raises
:class:`AddressError` whose message is one line saying what to change.

- ``-a`` once per family; without a prefix (and, for IPv4, without ``-n``) the
  prefix is /24 for IPv4 and /64 for IPv6.
- Without ``-g`` the gateway stays the default one (10.0.2.2, fd00:0:0:2::2) when
  it lies inside the guest's prefix and differs from the guest's address;
  otherwise it is the prefix's first address (or second, if the guest has the first).
- The gateway must be inside the guest's prefix (the guest reaches it on-link), a
  usable host address (not the IPv4 network or broadcast address, RFC 919/922) and
  not the guest's own address.
- ``--dns-forward`` is where the guest's resolver finds ustack's DNS forwarder
  (default: the gateway); ``-D`` the upstream resolvers the forwarder asks
  (default: the host's /etc/resolv.conf), as pasta's options of those names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from ustack.forward.config import GuestNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PREFIX = {4: 24, 6: 64}
#: a prefix must leave room for the guest and the gateway (RFC 3021 /31 links aside)
MAX_PREFIX = {4: 30, 6: 127}


class AddressError(ValueError):
    """A bad or inconsistent addressing option; ``str()`` is one line."""


@dataclass
class Addressing:
    """The addressing options as given on the command line (strings, unchecked)."""

    addresses: Sequence[str] = field(default_factory=list)
    gateways: Sequence[str] = field(default_factory=list)
    netmask: str | None = None
    ipv4_only: bool = False
    ipv6_only: bool = False
    dns_forward: Sequence[str] = field(default_factory=list)
    dns: Sequence[str] = field(default_factory=list)


def _address(text: str, option: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressError(f"{option} {text!r}: not an IPv4 or IPv6 address") from None


def _prefix_length(text: str, version: int, option: str) -> int:
    """``text`` is a prefix length (or an IPv4 netmask); ``option`` names it in errors."""
    if text.isdigit():
        length = int(text)
    elif version == 4:
        try:  # a dotted netmask such as 255.255.255.0 (contiguous ones only)
            length = ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
        except ValueError:
            raise AddressError(f"{option}: not a prefix length or netmask") from None
    else:
        raise AddressError(f"{option}: not a prefix length")
    if not 1 <= length <= MAX_PREFIX[version]:
        raise AddressError(f"{option}: the IPv{version} prefix length must be "
                           f"1 to {MAX_PREFIX[version]} (room for the guest and the gateway)")
    return length


def _unusable(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 6 and ip.is_link_local:
        return "link-local (give a global or ULA address)"
    if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def _one_per_family(values: Sequence[str], option: str, enabled: dict[int, bool],
                    ) -> dict[int, IPAddress]:
    found: dict[int, IPAddress] = {}
    for text in values:
        ip = _address(text.split("/")[0] if option == "-a" else text, option)
        if ip.version in found:
            raise AddressError(f"{option} given twice for IPv{ip.version} ({found[ip.version]} "
                               f"and {ip}): once per family")
        if not enabled[ip.version]:
            other = 4 if ip.version == 6 else 6
            raise AddressError(f"{option} {ip}: IPv{ip.version} is turned off by -{other}")
        why = _unusable(ip)
        if why is not None:
            raise AddressError(f"{option} {ip}: {why} cannot be used here")
        found[ip.version] = ip
    return found


def _guest_interface(opts: Addressing, version: int, default: str, default_prefix: int,
                     ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    text = next((a for a in opts.addresses if _address(a.split("/")[0], "-a").version == version),
                None)
    prefix: int | None = None
    if version == 4 and opts.netmask is not None:
        prefix = _prefix_length(opts.netmask, 4, f"-n {opts.netmask}")
    if text is None:
        address = default
        if prefix is None:
            prefix = default_prefix
    else:
        address, _, given = text.strip().partition("/")
        if given:
            length = _prefix_length(given, version, f"-a {text.strip()}")
            if prefix is not None and prefix != length:
                raise AddressError(f"-a {text} and -n {opts.netmask} disagree on the prefix "
                                   "length: give one of them")
            prefix = length
        elif prefix is None:
            prefix = DEFAULT_PREFIX[version]
    iface = ipaddress.ip_interface(f"{address}/{prefix}")
    network = iface.network
    if version == 4 and network.prefixlen <= MAX_PREFIX[4] and iface.ip in (
            network.network_address, network.broadcast_address):
        raise AddressError(f"-a {iface}: the network or broadcast address of {network} cannot "
                           "be the guest's address")
    if version == 6 and iface.ip == network.network_address:
        raise AddressError(f"-a {iface}: the subnet-router anycast address of {network} cannot "
                           "be the guest's address (RFC 4291 2.6.1)")
    return iface


def _gateway(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, given: IPAddress | None,
             default: str) -> IPAddress:
    network = iface.network
    if given is None:
        fallback = ipaddress.ip_address(default)
        if fallback in network and fallback != iface.ip and not (
                network.version == 4 and fallback == network.broadcast_address):
            return fallback
        first = network.network_address + 1
        return first if first != iface.ip else first + 1
    if given not in network:
        raise AddressError(f"gateway {given} is outside the guest's network {network}: give "
                           "-g inside it, or a wider prefix with -a ADDR/PREFIX")
    if given == iface.ip:
        raise AddressError(f"the guest address and the gateway are both {given}: change -a or -g")
    if given == network.network_address or (network.version == 4
                                            and given == network.broadcast_address):
        raise AddressError(f"gateway {given} is the network or broadcast address of {network}")
    return given


def apply_addressing(net: GuestNetwork, opts: Addressing) -> GuestNetwork:
    """Check ``opts`` and write them into ``net`` (returned); raises AddressError."""
    if opts.ipv4_only and opts.ipv6_only:
        raise AddressError("-4 and -6 exclude each other: give at most one")
    enabled = {4: not opts.ipv6_only, 6: not opts.ipv4_only}
    _one_per_family(opts.addresses, "-a", enabled)
    gateways = _one_per_family(opts.gateways, "-g", enabled)
    dns_forward = _one_per_family(opts.dns_forward, "--dns-forward", enabled)
    if opts.netmask is not None and not enabled[4]:
        raise AddressError("-n sets the IPv4 netmask, but IPv4 is turned off by -6")
    upstream = [_address(text, "-D") for text in opts.dns]

    net.ipv4, net.ipv6 = enabled[4], enabled[6]
    if enabled[4]:
        iface4 = _guest_interface(opts, 4, net.guest4, net.prefix4)
        gw4 = _gateway(iface4, gateways.get(4), net.gateway4)
        net.guest4, net.network4, net.gateway4 = str(iface4.ip), str(iface4.network), str(gw4)
    if enabled[6]:
        iface6 = _guest_interface(opts, 6, net.guest6, net.prefix6)
        gw6 = _gateway(iface6, gateways.get(6), net.gateway6)
        net.guest6, net.network6, net.gateway6 = str(iface6.ip), str(iface6.network), str(gw6)
    for version, ip in dns_forward.items():
        guest = net.guest4 if version == 4 else net.guest6
        if str(ip) == guest:
            raise AddressError(f"--dns-forward {ip} is the guest's own address: pick another")
        if version == 4:
            net.dns4 = "" if str(ip) == net.gateway4 else str(ip)
        else:
            net.dns6 = "" if str(ip) == net.gateway6 else str(ip)
    if upstream:
        net.dns_upstream = [str(ip) for ip in upstream]
    return net


__all__ = ["AddressError", "Addressing", "apply_addressing"]
