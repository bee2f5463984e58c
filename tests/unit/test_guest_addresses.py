# SPDX-License-Identifier: MIT
"""pasta's addressing options (-a/-n/-g/-4/-6/--dns-forward/-D): what they make of the
guest network, the one-line errors for bad ones, and a stock guest configured by
DHCP/RA from a custom network or from one family only."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR

from tests.unit.guest_link import make_guest_link
from ustack.apps.dhcp_client import DHCPClient
from ustack.cli.main import main
from ustack.forward.config import GuestNetwork
from ustack.forward.guest_addresses import AddressError, Addressing, apply_addressing
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dhcp, dhcpv6
from ustack.wire.proto import IPProto


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def network(**options: Any) -> GuestNetwork:
    return apply_addressing(GuestNetwork(dns_upstream=[]), Addressing(**options))


def test_defaults_are_unchanged() -> None:
    net = network()
    assert (net.guest4, net.network4, net.gateway4) == ("10.0.2.100", "10.0.2.0/24", "10.0.2.2")
    assert (net.guest6, net.network6, net.gateway6) == ("fd00:0:0:2::100", "fd00:0:0:2::/64",
                                                         "fd00:0:0:2::2")
    assert net.ipv4 and net.ipv6
    assert net.nameservers() == ["10.0.2.2", "fd00:0:0:2::2"]


def test_address_prefix_and_gateway() -> None:
    net = network(addresses=["192.168.7.10/24", "fd77::10/60"], gateways=["192.168.7.1", "fd77::1"])
    assert (net.guest4, net.network4, net.gateway4) == ("192.168.7.10", "192.168.7.0/24",
                                                         "192.168.7.1")
    assert (net.guest6, net.network6, net.gateway6) == ("fd77::10", "fd77::/60", "fd77::1")
    assert net.gateway_interfaces() == ["192.168.7.1/24", "fd77::1/60", "fe80::2/64"]


def test_gateway_defaults_to_the_first_address_or_the_old_default() -> None:
    assert network(addresses=["192.168.7.10"]).gateway4 == "192.168.7.1"
    assert network(addresses=["192.168.7.1/24"]).gateway4 == "192.168.7.2"
    assert network(addresses=["10.0.2.50"]).gateway4 == "10.0.2.2"  # still inside
    assert network(addresses=["10.0.2.2"]).gateway4 == "10.0.2.1"  # taken by the guest
    assert network(addresses=["fd77::10"]).gateway6 == "fd77::1"


def test_netmask_dotted_or_length() -> None:
    assert network(addresses=["172.16.5.9"], netmask="255.255.0.0").network4 == "172.16.0.0/16"
    assert network(addresses=["172.16.5.9"], netmask="20").network4 == "172.16.0.0/20"
    assert network(netmask="255.255.255.0").network4 == "10.0.2.0/24"


def test_one_family_only() -> None:
    net4 = network(ipv4_only=True)
    assert (net4.ipv4, net4.ipv6) == (True, False)
    assert net4.nameservers() == ["10.0.2.2"]
    assert net4.gateway_interfaces() == ["10.0.2.2/24"]
    net6 = network(ipv6_only=True)
    assert (net6.ipv4, net6.ipv6) == (False, True)
    assert net6.nameservers() == ["fd00:0:0:2::2"]
    assert net6.dns_addresses() == ["fd00:0:0:2::2", "fe80::2"]


def test_dns_forward_and_upstream() -> None:
    net = network(dns_forward=["10.0.2.3", "fd00:0:0:2::2"], dns=["192.0.2.53", "2001:db8::53"])
    assert net.nameservers() == ["10.0.2.3", "fd00:0:0:2::2"]
    assert net.dns6 == ""  # the gateway is the default anyway
    assert "10.0.2.3/24" in net.gateway_interfaces()
    assert net.dns_upstream == ["192.0.2.53", "2001:db8::53"]
    outside = network(dns_forward=["198.51.100.53"])
    assert "198.51.100.53/32" in outside.gateway_interfaces()  # reached through the gateway


@pytest.mark.parametrize(("options", "message"), [
    ({"addresses": ["10.0.3.5/24"], "gateways": ["10.0.2.2"]},
     "gateway 10.0.2.2 is outside the guest's network 10.0.3.0/24"),
    ({"gateways": ["fd00:0:0:3::1"]}, "outside the guest's network fd00:0:0:2::/64"),
    ({"addresses": ["10.0.3.5/24"], "gateways": ["10.0.3.5"]},
     "the guest address and the gateway are both 10.0.3.5"),
    ({"gateways": ["10.0.2.255"]}, "network or broadcast address"),
    ({"addresses": ["10.0.3.0/24"]}, "network or broadcast address of 10.0.3.0/24"),
    ({"addresses": ["fd77::/64"]}, "subnet-router anycast"),
    ({"addresses": ["10.0.3.x"]}, "-a '10.0.3.x': not an IPv4 or IPv6 address"),
    ({"addresses": ["10.0.3.5/33"]}, "-a 10.0.3.5/33: the IPv4 prefix length must be 1 to 30"),
    ({"addresses": ["10.0.3.5/x"]}, "not a prefix length"),
    ({"addresses": ["10.0.3.5", "10.0.4.5"]}, "-a given twice for IPv4"),
    ({"addresses": ["127.0.0.2"]}, "a loopback address cannot be used"),
    ({"addresses": ["fe80::5"]}, "link-local"),
    ({"addresses": ["10.0.3.5/24"], "netmask": "255.255.0.0"}, "disagree on the prefix"),
    ({"netmask": "255.0.255.0"}, "-n 255.0.255.0: not a prefix length or netmask"),
    ({"ipv4_only": True, "ipv6_only": True}, "-4 and -6 exclude each other"),
    ({"ipv4_only": True, "addresses": ["fd00::5"]}, "IPv6 is turned off by -4"),
    ({"ipv6_only": True, "gateways": ["10.0.2.1"]}, "IPv4 is turned off by -6"),
    ({"ipv6_only": True, "netmask": "24"}, "-n sets the IPv4 netmask"),
    ({"dns_forward": ["10.0.2.100"]}, "is the guest's own address"),
    ({"dns": ["resolver"]}, "-D 'resolver': not an IPv4 or IPv6 address"),
])
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(AddressError) as caught:
        network(**options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "-a", "10.0.3.5/24", "-g", "10.0.3.5", "--", "true"], "both 10.0.3.5"),
    (["passt", "-s", "/nonexistent/vm.sock", "-4", "-6"], "exclude each other"),
    (["run", "-T", "70000", "--", "true"], "ports must be within 1-65535"),
    (["run", "-U", "53:x", "--", "true"], "not a port or range"),
])
def test_cli_reports_one_line(argv: list[str], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing is started: the options are checked first."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ustack {argv[0]}: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_stock_guest_gets_the_custom_network() -> None:
    net = network(addresses=["192.168.7.10/24", "fd77::10/64"], gateways=["192.168.7.1"],
                  dns_forward=["192.168.7.53"])
    link = make_guest_link(net)
    client = DHCPClient(link.guest, link.nic_guest)
    client.start()
    link.run(2.0)
    nic = link.nic_guest
    assert nic.has_address(packed("192.168.7.10"))
    assert any(a.addr[:8] == packed("fd77::")[:8] for a in nic.addresses[16])
    assert sorted(link.guest.dns_servers) == sorted([packed("192.168.7.53"), packed("fd77::1")])
    # the forwarder answers on the --dns-forward address
    ep = UDPEndpoint(link.guest, 4)
    ep.sendto(bytes(DNS(id=1, rd=1, qd=DNSQR(qname="example.org"))), (packed("192.168.7.53"), 53))
    link.run(0.1)
    assert link.gateway.stats["dns.rx_query"] == 1


@pytest.mark.parametrize("only", ["ipv4_only", "ipv6_only"])
def test_one_family_gets_no_services_for_the_other(only: str) -> None:
    link = make_guest_link(network(**{only: True}))
    ports = {b.local_port for b in link.gateway.demux[IPProto.UDP].bindings()}
    services = link.services
    if only == "ipv4_only":
        assert services.ra is None and services.dhcpv6 is None
        assert dhcp.SERVER_PORT in ports and dhcpv6.SERVER_PORT not in ports
        assert not link.nic_gw.addresses[16] or all(
            not a.addr.startswith(packed("fd00:0:0:2::")[:8]) for a in link.nic_gw.addresses[16])
    else:
        assert services.dhcp is None
        assert dhcp.SERVER_PORT not in ports and dhcpv6.SERVER_PORT in ports
        assert not link.nic_gw.addresses[4]
