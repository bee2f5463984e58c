# SPDX-License-Identifier: MIT
"""Type aliases shared by the wire formats."""

from __future__ import annotations

from typing import TypeAlias

#: Anything the parsers and checksum accept: bytes, bytearray or a memoryview of them.
Buffer: TypeAlias = bytes | bytearray | memoryview
