# SPDX-License-Identifier: MIT
"""A control socket for a running ustack process: ``ustack ss`` and ``ustack stats``
ask it for connections and counters as JSON, one request per connection."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from ustack.stack import Stack
from ustack.transport.tcp.info import snapshot
from ustack.wire.proto import IPProto


def runtime_dir() -> Path:
    """/run/ustack for root, $XDG_RUNTIME_DIR/ustack or /tmp/ustack-UID otherwise."""
    if os.geteuid() == 0:
        return Path("/run/ustack")
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "ustack" if base else Path(f"/tmp/ustack-{os.getuid()}")


def default_path(kind: str, name: str) -> Path:
    return runtime_dir() / f"{kind}-{name}.sock"


def connections(stack: Stack) -> list[dict[str, Any]]:
    proto = stack.transport_protocols.get(IPProto.TCP)
    rows = []
    for ep in sorted(getattr(proto, "connections", ()), key=lambda e: e.local_port):
        info = snapshot(ep).as_dict()
        info.update(local=f"{ipaddress.ip_address(ep.local_addr)}:{ep.local_port}",
                    peer=f"{ipaddress.ip_address(ep.remote_addr)}:{ep.remote_port}",
                    recv_q=ep.receiver.buffered, send_q=len(ep.sender.buffer))
        rows.append(info)
    return rows


def listeners(stack: Stack) -> list[dict[str, Any]]:
    proto = stack.transport_protocols.get(IPProto.TCP)
    if proto is None:
        return []
    rows = []
    for binding in stack.demux[IPProto.TCP].bindings():
        ep = binding.endpoint
        if getattr(ep, "listener", None) is not None:
            queue = len(ep.listener.accept_queue)  # type: ignore[attr-defined]
            rows.append({"local": f"{ipaddress.ip_address(binding.local_addr)}:"
                                  f"{binding.local_port}", "state": "LISTEN",
                         "recv_q": queue, "send_q": ep.listener.backlog})  # type: ignore[attr-defined]
    return rows


class ControlServer:
    def __init__(self, stack: Stack, path: Path) -> None:
        self.stack = stack
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            command = (await reader.readline()).decode().strip()
            if command == "ss":
                reply: Any = {"listen": listeners(self.stack),
                              "connections": connections(self.stack)}
            elif command == "stats":
                reply = {"stack": self.stack.stats.snapshot(),
                         "nics": {nic.name: nic.stats.snapshot()
                                  for nic in self.stack.nics.values()}}
            else:
                reply = {"error": f"unknown command {command!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def query(path: Path, command: str, timeout: float = 5.0) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return json.loads(b"".join(chunks))
