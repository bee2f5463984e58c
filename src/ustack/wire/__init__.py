# SPDX-License-Identifier: MIT
"""Byte formats only: parse from memoryviews, build into buffers.

No I/O, no clock, no stack state. Parsers check lengths once at the boundary
and raise :class:`ParseError` carrying a :class:`DropReason`; after that the
fields of the returned view are plain attributes that cannot fail.
"""

from ustack.wire.errors import DropReason, ParseError

__all__ = ["DropReason", "ParseError"]
