# SPDX-License-Identifier: MIT
"""Link endpoints: tap, channel (in-memory pair), loopback, sniffer, impairment."""
