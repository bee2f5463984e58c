# SPDX-License-Identifier: MIT
"""TCP (RFC 9293) with SACK, timestamps, window scaling and pluggable strategies."""
