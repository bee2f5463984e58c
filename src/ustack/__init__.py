# SPDX-License-Identifier: MIT
"""ustack: a userspace TCP/IP stack in Python."""

__version__ = "0.1.0"
