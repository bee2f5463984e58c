# SPDX-License-Identifier: MIT
"""Multicast between ustack and the Linux kernel over a tap in a namespace of our own:
the kernel sends to a group a ustack socket joined, ustack sends to a group a kernel
socket joined, and tshark decodes ustack's IGMPv3 and MLDv2 reports from a pcap.

Network rule: the only traffic is between the namespace the test creates and
ustack at the tap's far end; groups are link-scoped or sent with TTL 1.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyroute2 import netns as pyroute2_netns

from tests.interop.hostrun import NEEDS_ROOT, namespace
from ustack.link.sniffer import SnifferEndpoint
from ustack.netns import Namespace
from ustack.nic import NIC
from ustack.runtime import StackThread

pytestmark = [pytest.mark.interop, NEEDS_ROOT]

KERNEL4, USTACK4 = "10.207.0.1", "10.207.0.2"
KERNEL6, USTACK6 = "fd00:207::1", "fd00:207::2"
GROUP4, GROUP6 = "239.7.8.9", "ff12::7:8:9"
TAP = "ustmc0"
PORT = 5007


@dataclass
class Host:
    ns: Namespace
    st: StackThread
    nic: NIC
    pcap: Path

    def kernel_socket(self, family: int) -> socket.socket:
        sock: socket.socket = pyroute2_netns.create_socket(self.ns.name, family,
                                                           socket.SOCK_DGRAM)
        sock.settimeout(5.0)
        return sock


@contextmanager
def multicast_host(tmp: Path) -> Iterator[Host]:
    with namespace() as name:
        ns = Namespace(name)
        tap = ns.create_tap(TAP)
        st = StackThread()
        links: list[SnifferEndpoint] = []
        try:
            ns.add_address(TAP, f"{KERNEL4}/24")
            ns.add_address(TAP, f"{KERNEL6}/64")
            stack = st.start()
            pcap = tmp / "multicast.pcap"

            def setup() -> NIC:
                assert st.loop is not None
                link = SnifferEndpoint.to_file(tap, stack.clock, str(pcap))
                links.append(link)
                nic = stack.create_nic(link, "tap0")
                stack.add_address(nic.id, f"{USTACK4}/24")
                stack.add_address(nic.id, f"{USTACK6}/64", dad=False)
                tap.start(st.loop)
                return nic

            nic = st.call(setup)
            yield Host(ns, st, nic, pcap)
        finally:
            if st.loop is not None:
                st.call(links[0].close if links else tap.close)  # flushes the pcap
            st.stop()
            tap.close()


def ustack_socket(host: Host, family: int) -> socket.socket:
    sock: socket.socket = host.st.stack.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(5.0)
    return sock


def test_kernel_sends_to_groups_that_ustack_sockets_joined(tmp_path: Path) -> None:
    with multicast_host(tmp_path) as host:
        rx4 = ustack_socket(host, socket.AF_INET)
        rx4.bind(("0.0.0.0", PORT))
        rx4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                       socket.inet_aton(GROUP4) + socket.inet_aton(USTACK4))
        rx6 = ustack_socket(host, socket.AF_INET6)
        rx6.bind(("::", PORT))
        rx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                       socket.inet_pton(socket.AF_INET6, GROUP6) + struct.pack("=I",
                                                                               host.nic.id))
        tx4 = host.kernel_socket(socket.AF_INET)
        tx4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(KERNEL4))
        tx4.sendto(b"kernel to group v4", (GROUP4, PORT))
        data, source = rx4.recvfrom(100)
        assert (data, source[0]) == (b"kernel to group v4", KERNEL4)
        tx6 = host.kernel_socket(socket.AF_INET6)
        tx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, host.ns.index(TAP))
        deadline = time.monotonic() + 10
        rx6.settimeout(0.5)
        got: bytes | None = None
        while got is None and time.monotonic() < deadline:
            tx6.sendto(b"kernel to group v6", (GROUP6, PORT))  # until the kernel has a source
            try:
                got = rx6.recvfrom(100)[0]
            except TimeoutError:
                pass
        assert got == b"kernel to group v6"
        for sock in (rx4, rx6, tx4, tx6):
            sock.close()


def test_ustack_sends_to_groups_that_kernel_sockets_joined(tmp_path: Path) -> None:
    with multicast_host(tmp_path) as host:
        index = host.ns.index(TAP)
        rx4 = host.kernel_socket(socket.AF_INET)
        rx4.bind(("0.0.0.0", PORT))
        rx4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                       struct.pack("=4s4si", socket.inet_aton(GROUP4), bytes(4), index))
        rx6 = host.kernel_socket(socket.AF_INET6)
        rx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        rx6.bind(("::", PORT))
        rx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                       socket.inet_pton(socket.AF_INET6, GROUP6) + struct.pack("=I", index))
        tx4 = ustack_socket(host, socket.AF_INET)
        tx4.sendto(b"ustack to group v4", (GROUP4, PORT))
        data, source = rx4.recvfrom(100)
        assert (data, source[0]) == (b"ustack to group v4", USTACK4)
        tx6 = ustack_socket(host, socket.AF_INET6)
        tx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, host.nic.id)
        deadline = time.monotonic() + 10
        while True:  # until duplicate address detection gave ustack its link-local source
            try:
                tx6.sendto(b"ustack to group v6", (GROUP6, PORT))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        data6, source6 = rx6.recvfrom(100)
        assert data6 == b"ustack to group v6"
        # link-local preferred for a link-scope group (RFC 6724 rule 2) once it is assigned
        assert source6[0].startswith("fe80::") or source6[0] == USTACK6
        for sock in (rx4, rx6, tx4, tx6):
            sock.close()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_tshark_decodes_igmpv3_and_mldv2_reports_cleanly(tmp_path: Path) -> None:
    with multicast_host(tmp_path) as host:
        sock4 = ustack_socket(host, socket.AF_INET)
        sock4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         socket.inet_aton(GROUP4) + bytes(4))
        sock6 = ustack_socket(host, socket.AF_INET6)
        sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         socket.inet_pton(socket.AF_INET6, GROUP6)
                         + struct.pack("=I", host.nic.id))
        time.sleep(1.2)  # the retransmissions (within 1 s)
        sock4.close()
        sock6.close()
        time.sleep(1.2)
        pcap = host.pcap
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "igmp || icmpv6.type == 143", "-T", "fields",
         "-e", "frame.protocols", "-e", "igmp.version", "-e", "igmp.type",
         "-e", "igmp.maddr", "-e", "icmpv6.type", "-e", "icmpv6.mldr.mar.multicast_address",
         "-e", "icmpv6.mldr.mar.record_type", "-e", "_ws.expert.message"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    lines = fields.splitlines()
    igmp_lines = [line for line in lines if "\t3\t0x22\t" in line]
    mld_lines = [line for line in lines if "\t143\t" in line]
    assert any(GROUP4 in line for line in igmp_lines), fields
    assert any(GROUP6 in line for line in mld_lines), fields
    full = subprocess.run(["tshark", "-r", str(pcap), "-V"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "Malformed" not in full and "[Checksum Status: Bad]" not in full
    assert "Router Alert" in full
    errors = subprocess.run(["tshark", "-r", str(pcap), "-Y",
                             "_ws.malformed || _ws.expert.severity == error"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert errors.strip() == "", errors
