# SPDX-License-Identifier: MIT
"""``ustack run`` in an isolated world: the guest reaches "remote" servers in a namespace
of their own through ustack, which runs in an outer namespace whose only other way
out is a sink that forwards nothing. Every test checks the sink saw nothing."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.hostrun import NEEDS_ROOT
from tests.interop.test_guest import unprivileged_userns  # noqa: F401  (a fixture)
from tests.interop.topology import OUTER4, REMOTE4, REMOTE6, World, world

pytestmark = [pytest.mark.interop, NEEDS_ROOT]

BLOB = bytes(range(256)) * 4096 * 8  # 8 MiB


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    www = tmp_path_factory.mktemp("remote-www")
    (www / "blob.bin").write_bytes(BLOB)
    with world(www) as the_world:
        yield the_world
        assert the_world.sink_packets() == 0, "something left through the sink"


def guest_python(w: World, script: str, *args: str, extra: tuple[str, ...] = (),
                 timeout: float = 600) -> str:
    proc = w.ustack_run(*extra, "--", sys.executable, "-c", script, *args, timeout=timeout,
                        check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_curl_to_remote_http_over_ipv4_and_ipv6(w: World, tmp_path: Path) -> None:
    out = w.ustack_run("--", "sh", "-c",
                       f"curl -sS --fail http://{REMOTE4}/blob.bin | sha256sum; "
                       f"curl -sS --fail 'http://[{REMOTE6}]/blob.bin' | sha256sum").stdout
    digest = hashlib.sha256(BLOB).hexdigest()
    assert out.count(digest) == 2, out
    assert w.sink_packets() == 0


def test_closed_port_is_refused_at_once(w: World) -> None:
    script = ("import socket, sys, time\n"
              "t = time.monotonic()\n"
              "try:\n"
              "    socket.create_connection((sys.argv[1], 81), timeout=10)\n"
              "except ConnectionRefusedError as e:\n"
              "    print('refused', round(time.monotonic() - t, 3), e)\n")
    out = guest_python(w, script, REMOTE4)
    assert out.startswith("refused"), out
    assert float(out.split()[1]) < 1.0
    assert "Connection refused" in out


def test_dns_query_through_ustacks_forwarder(w: World) -> None:
    script = ("import socket\n"
              "ns = [l.split()[1] for l in open('/etc/resolv.conf')\n"
              "      if l.startswith('nameserver')]\n"
              "q = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'"
              " + b'\\x04test\\x07example\\x00' + b'\\x00\\x01\\x00\\x01'\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
              "s.sendto(q, (ns[0], 53)); r = s.recv(512)\n"
              "print(ns[0], r[:2].hex(), socket.inet_ntoa(r[-4:]))\n")
    out = guest_python(w, script).split()
    assert out == ["10.0.2.2", "1234", REMOTE4], out  # answered by the remote DNS server
    names = guest_python(w, "import socket; print(socket.gethostbyname('anything.test'))")
    assert names.strip() == REMOTE4


def test_ping_a_remote_address(w: World) -> None:
    out = w.ustack_run("--", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", REMOTE4).stdout
    assert " 0% packet loss" in out, out
    out6 = w.ustack_run("--", "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2",
                        REMOTE6).stdout
    assert " 0% packet loss" in out6, out6


def test_one_gigabyte_each_way(w: World) -> None:
    size = 1 << 30
    script = ("import socket, hashlib, sys, time\n"
              "size = int(sys.argv[2]); block = bytes(range(256)) * 4096\n"
              "t = time.monotonic()\n"
              "s = socket.create_connection((sys.argv[1], 9000))\n"
              "sent = 0\n"
              "while sent < size:\n"
              "    s.sendall(block); sent += len(block)\n"
              "s.shutdown(socket.SHUT_WR)\n"
              "remote = s.makefile().readline().split()\n"
              "up = time.monotonic() - t\n"
              "want = hashlib.sha256(); [want.update(block) for _ in range(size // len(block))]\n"
              "t = time.monotonic()\n"
              "s = socket.create_connection((sys.argv[1], 9001)); s.sendall(b'%d\\n' % size)\n"
              "got = hashlib.sha256(); n = 0\n"
              "while chunk := s.recv(1 << 20):\n"
              "    got.update(chunk); n += len(chunk)\n"
              "down = time.monotonic() - t\n"
              "print(remote[0], remote[1] == want.hexdigest(), n, got.hexdigest() == "
              "want.hexdigest(), round(size * 8 / up / 1e6), round(size * 8 / down / 1e6))\n")
    out = guest_python(w, script, REMOTE4, str(size), timeout=900).split()
    assert out[:4] == [str(size), "True", str(size), "True"], out
    print(f"1 GiB up {out[4]} Mbit/s, down {out[5]} Mbit/s")


def test_hundred_parallel_connections(w: World) -> None:
    script = ("import socket, sys, threading\n"
              "ok = []\n"
              "def one(i):\n"
              "    s = socket.create_connection((sys.argv[1], 7), timeout=20)\n"
              "    msg = b'%d ' % i * 1000\n"
              "    s.sendall(msg); s.shutdown(socket.SHUT_WR)\n"
              "    got = b''\n"
              "    while chunk := s.recv(65536): got += chunk\n"
              "    ok.append(got == msg)\n"
              "socks = [threading.Thread(target=one, args=(i,)) for i in range(100)]\n"
              "[t.start() for t in socks]; [t.join() for t in socks]\n"
              "print(sum(ok))\n")
    assert guest_python(w, script, REMOTE4).strip() == "100"


def test_port_forwarding_into_the_guest(w: World) -> None:
    import subprocess

    server = ("import socket\n"
              "l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "l.bind(('0.0.0.0', 80)); l.listen()\n"
              "for _ in range(2):\n"
              "    c, addr = l.accept(); c.sendall(('hello ' + addr[0]).encode()); c.close()\n")
    proc = subprocess.Popen(["ip", "netns", "exec", w.outer, sys.executable, "-m",
                             "ustack.cli.main", "run", "-t", "8080:80", "--", sys.executable,
                             "-c", server], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        client = ("import socket, sys, time\n"
                  "for i in range(100):\n"
                  "    try:\n"
                  "        s = socket.create_connection((sys.argv[1], 8080), timeout=5)\n"
                  "        data = s.recv(100)\n"
                  "        if data: print(data.decode()); break\n"
                  "    except OSError: pass\n"
                  "    time.sleep(0.1)\n")
        local = w.run(sys.executable, "-c", client, "127.0.0.1").stdout.strip()
        assert local == "hello 10.0.2.2"  # the host's loopback appears as the gateway
        remote = subprocess.run(["ip", "netns", "exec", w.remote, sys.executable, "-c", client,
                                 OUTER4], capture_output=True, text=True, timeout=60).stdout
        assert remote.strip() == f"hello {REMOTE4}"  # the real client address
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



@pytest.mark.usefixtures("unprivileged_userns")
def test_unprivileged_user_runs_ustack(w: World) -> None:
    """As uid 65534 with no capabilities: ustack makes a user namespace for the guest."""
    from tests.interop.test_guest import NOBODY, isolated

    script = (f"id -u; curl -sS --fail http://{REMOTE4}/blob.bin | sha256sum; "
              f"ping -n -c 1 -W 2 {REMOTE4} >/dev/null && echo pinged")
    run = isolated([sys.executable, "-m", "ustack.cli.main", "run", "--", "sh", "-c", script],
                   user=NOBODY, tun="open", netns=w.outer)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.split()
    assert lines[0] == "0"  # root inside its own user namespace ...
    assert hashlib.sha256(BLOB).hexdigest() in lines
    assert "pinged" in lines
    assert w.sink_packets() == 0


def test_udp_flows_to_a_remote_server(w: World) -> None:
    """A guest's UDP flow to a remote address leaves over a host UDP socket (no forwarder)."""
    script = ("import socket, sys\n"
              "fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n"
              "s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5)\n"
              "q = b'\\xab\\xcd\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'"
              " + b'\\x01x\\x00\\x00\\x01\\x00\\x01'\n"
              "for i in range(20):\n"
              "    s.sendto(q, (sys.argv[1], 53)); r = s.recv(512); assert r[:2] == q[:2]\n"
              "print(socket.inet_ntoa(r[-4:]))\n")
    assert guest_python(w, script, REMOTE4).strip() == REMOTE4
    assert guest_python(w, script, REMOTE6).strip() == REMOTE4  # an A record, asked over v6


def test_udp_port_forwarding_into_the_guest(w: World) -> None:
    import subprocess

    server = ("import socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53))\n"
              "for _ in range(3):\n"
              "    data, addr = s.recvfrom(100)\n"
              "    s.sendto(data + b' from ' + addr[0].encode(), addr)\n")
    proc = subprocess.Popen(["ip", "netns", "exec", w.outer, sys.executable, "-m",
                             "ustack.cli.main", "run", "-u", "5353:53", "--", sys.executable,
                             "-c", server], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    client = ("import socket, sys, time\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)\n"
              "for i in range(100):\n"
              "    s.sendto(b'ping', (sys.argv[1], 5353))\n"
              "    try:\n"
              "        print(s.recv(100).decode()); break\n"
              "    except OSError: time.sleep(0.1)\n")
    try:
        local = w.run(sys.executable, "-c", client, "127.0.0.1").stdout.strip()
        assert local == "ping from 10.0.2.2"
        remote = subprocess.run(["ip", "netns", "exec", w.remote, sys.executable, "-c", client,
                                 OUTER4], capture_output=True, text=True, timeout=60).stdout
        assert remote.strip() == f"ping from {REMOTE4}"
    finally:
        proc.kill()
        proc.wait()
