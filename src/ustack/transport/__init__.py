# SPDX-License-Identifier: MIT
"""Transport protocols: UDP, ICMP echo ("ping" sockets), and TCP."""
