# SPDX-License-Identifier: MIT
"""A small HTTP/1.1 file server and client over ustack streams (RFC 9110/9112 subset:
GET and HEAD, Content-Length bodies, keep-alive; the client also reads chunked bodies)."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ustack import aio
from ustack.stack import Stack

CHUNK = 1 << 20
SERVER = "ustack"


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    line = await reader.readline()
    if not line:
        return None
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return line.decode("latin-1").rstrip("\r\n"), headers


def _resolve(root: Path, target: str) -> Path | None:
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
    candidate = (root / path.lstrip("/")).resolve()
    if candidate != root and root not in candidate.parents:
        return None  # no escaping the document root
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


class FileServer:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        head = await _read_head(reader)
        if head is None:
            return False
        request, headers = head
        parts = request.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._respond(writer, 400, b"bad request\n", close=True)
            return False
        method, target, version = parts
        self.requests += 1
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if method not in ("GET", "HEAD"):
            await self._respond(writer, 501, b"not implemented\n", close=not keep_alive)
            return keep_alive
        path = _resolve(self.root, target)
        if path is None:
            await self._respond(writer, 404, b"not found\n", close=not keep_alive)
            return keep_alive
        size = path.stat().st_size
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        writer.write(self._head(200, size, ctype, not keep_alive))
        if method == "GET":
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    writer.write(chunk)
                    await writer.drain()
        await writer.drain()
        return keep_alive

    @staticmethod
    def _head(status: int, length: int, ctype: str, close: bool) -> bytes:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
                  501: "Not Implemented"}.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {SERVER}",
                 f"Content-Length: {length}", f"Content-Type: {ctype}",
                 f"Connection: {'close' if close else 'keep-alive'}", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                       close: bool) -> None:
        writer.write(self._head(status, len(body), "text/plain", close) + body)
        await writer.drain()


async def serve_files(stack: Stack, root: str | os.PathLike[str], port: int,
                      host: str = "0.0.0.0") -> aio.StreamServer:
    server = FileServer(root)
    return await aio.start_server(stack, server.handle, host, port)


# --- the client -------------------------------------------------------------------------------

@dataclass
class FetchResult:
    status: int
    length: int
    seconds: float

    @property
    def rate(self) -> float:
        """Bits per second."""
        return self.length * 8 / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int | None], None]


def split_url(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http://HOST[:PORT]/PATH URLs are supported, not {url!r}")
    return parts.hostname, parts.port or 80, (parts.path or "/") + (
        f"?{parts.query}" if parts.query else "")


async def fetch(stack: Stack, url: str, output: str | os.PathLike[str],
                progress: Progress | None = None) -> FetchResult:
    """GET ``url`` over ustack into ``output``; returns the status and the transfer rate."""
    host, port, target = split_url(url)
    start = time.monotonic()
    reader, writer = await aio.open_connection(stack, host, port)
    host_header = f"[{host}]" if ":" in host else host
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
                 f"User-Agent: {SERVER}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    head = await _read_head(reader)
    if head is None:
        raise ConnectionError("the server closed the connection without a response")
    status_line, headers = head
    status = int(status_line.split()[1])
    length = int(headers["content-length"]) if "content-length" in headers else None
    received = 0
    with open(output, "wb") as out:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readline()).split(b";")[0], 16):
                out.write(await reader.readexactly(size))
                received += size
                await reader.readline()
        else:
            while length is None or received < length:
                data = await reader.read(CHUNK if length is None else min(CHUNK, length - received))
                if not data:
                    break
                out.write(data)
                received += len(data)
                if progress is not None:
                    progress(received, length)
    writer.close()
    if length is not None and received != length:
        raise ConnectionError(f"short body: {received} of {length} bytes")
    return FetchResult(status, received, time.monotonic() - start)
