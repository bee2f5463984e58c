# SPDX-License-Identifier: MIT
"""The guest-forwarding mode: a guest's flows terminated by ustack and carried over host
sockets (tcp/udp/icmp), port forwarding into the guest, and the services that
configure the guest (DHCPv4, router advertisements, DHCPv6, DNS forwarding)."""
