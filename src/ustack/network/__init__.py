# SPDX-License-Identifier: MIT
"""Network protocols: IPv4, ARP, IPv6 with NDP, ICMPv4 and ICMPv6."""
