# SPDX-License-Identifier: MIT
"""Network namespace plumbing with pyroute2: namespaces, taps moved into them, addresses.

A typical set-up for a kernel peer (tests, ``ustack run``)::

    ns = Namespace.create("ust-1234")          # named, like `ip netns add`, lo up
    tap = ns.create_tap("ust0", mtu=1500)      # opened here, moved there, up there
    ns.add_address("ust0", "10.1.0.1/24")      # the kernel side of the link
    ns.add_address("ust0", "fd01::1/64")       # IFA_F_NODAD: usable at once
    ...
    tap.close(); ns.delete()

The tap is created in the current namespace (where ustack runs) and then moved:
its fd stays attached across the move (Documentation/networking/tuntap.rst),
so ustack reads and writes the frames of a device that lives in the other
namespace. Named namespaces are bind mounts under /var/run/netns, the same as
iproute2's, so ``ip netns exec NAME ...`` finds them.

Errors are :class:`NamespaceError` (an OSError) with a one-line message that
says what to do.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as _netns
from pyroute2.netlink.exceptions import NetlinkError

from ustack.link.tap import DEFAULT_BATCH, TapEndpoint

IFA_F_NODAD = 0x02  # include/uapi/linux/if_addr.h: skip duplicate address detection
_NUD_PERMANENT = 0x80  # include/uapi/linux/neighbour.h
_PRIVILEGE_HINT = "run as root (CAP_SYS_ADMIN and CAP_NET_ADMIN) or inside `unshare -rnm`"


class NamespaceError(OSError):
    """A namespace operation failed; the message says what to do."""


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"bad namespace name {name!r}")


def _error(exc: BaseException, what: str) -> NamespaceError:
    """Turn an OSError or a NetlinkError into a NamespaceError with advice."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno.EIO
    if code in (errno.EPERM, errno.EACCES):
        return NamespaceError(code, f"{what}: permission denied: {_PRIVILEGE_HINT}")
    if code == errno.EEXIST:
        return NamespaceError(code, f"{what}: the name is already in use: pick another name "
                              "or remove what holds it")
    if code == errno.ENOENT:
        return NamespaceError(code, f"{what}: not found: create it first")
    return NamespaceError(code, f"{what}: {os.strerror(code)}")


def exists(name: str) -> bool:
    """Is there a named network namespace ``name`` (in /var/run/netns)?"""
    _check_name(name)
    return name in _netns.listnetns()


def create(name: str, exist_ok: bool = False) -> bool:
    """Create the named namespace; returns False if it already existed (and ``exist_ok``)."""
    _check_name(name)
    if exists(name):
        if exist_ok:
            return False
        raise NamespaceError(errno.EEXIST, f"network namespace {name!r} already exists: "
                             "pick another name or delete it (ip netns del)")
    try:
        _netns.create(name)
    except OSError as exc:
        # pyroute2 may leave the empty mount point behind when unshare or mount fails
        try:
            _netns.remove(name)
        except OSError:
            pass
        raise _error(exc, f"creating network namespace {name!r}") from None
    return True


def delete(name: str) -> bool:
    """Remove the named namespace; returns False if there was none.

    The namespace itself goes away once nothing holds it any more (processes,
    sockets, a moved tap whose fd is still open).
    """
    _check_name(name)
    if not exists(name):
        return False
    try:
        _netns.remove(name)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _error(exc, f"removing network namespace {name!r}") from None
    return True


@contextmanager
def _rtnl(netns: str | None, what: str) -> Iterator[Any]:
    """An rtnetlink socket in ``netns`` (None: the current one); errors get advice."""
    try:
        # flags=0: never create the namespace as a side effect (pyroute2's default is O_CREAT)
        ipr = IPRoute() if netns is None else IPRoute(netns=netns, flags=0)
    except OSError as exc:
        raise _error(exc, what) from None
    try:
        yield ipr
    except NetlinkError as exc:
        raise _error(exc, what) from None
    finally:
        ipr.close()


def _index(ipr: Any, ifname: str, where: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NamespaceError(errno.ENODEV, f"no interface {ifname!r} in {where}")
    return int(found[0])


def move_link(ifname: str, target: str) -> None:
    """Move interface ``ifname`` from the current namespace into ``target``."""
    with _rtnl(None, f"moving {ifname!r} into {target!r}") as ipr:
        index = _index(ipr, ifname, "the current namespace")
        ipr.link("set", index=index, net_ns_fd=target)


class Namespace:
    """A named network namespace and the rtnetlink operations done inside it."""

    def __init__(self, name: str) -> None:
        _check_name(name)
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @classmethod
    def create(cls, name: str, exist_ok: bool = False, lo_up: bool = True) -> Namespace:
        """Create the namespace (and bring its ``lo`` up); deleted again if that fails."""
        created = create(name, exist_ok)
        ns = cls(name)
        if lo_up:
            try:
                ns.link_up("lo")
            except BaseException:
                if created:
                    delete(name)
                raise
        return ns

    def exists(self) -> bool:
        return exists(self.name)

    def delete(self) -> bool:
        return delete(self.name)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.delete()

    def _rtnl(self, what: str) -> Any:
        return _rtnl(self.name, f"{what} in namespace {self.name!r}")

    # --- links ----------------------------------------------------------------------------------

    def index(self, ifname: str) -> int:
        with self._rtnl(f"looking up {ifname!r}") as ipr:
            return _index(ipr, ifname, f"namespace {self.name!r}")

    def link_up(self, ifname: str, mtu: int | None = None) -> None:
        """Bring ``ifname`` up (setting its MTU first, if given)."""
        with self._rtnl(f"bringing {ifname!r} up") as ipr:
            index = _index(ipr, ifname, f"namespace {self.name!r}")
            if mtu is not None:
                ipr.link("set", index=index, mtu=mtu)
            ipr.link("set", index=index, state="up")

    def link_address(self, ifname: str) -> bytes:
        """The kernel side's MAC address of ``ifname``."""
        with self._rtnl(f"looking up {ifname!r}") as ipr:
            index = _index(ipr, ifname, f"namespace {self.name!r}")
            mac = ipr.link("get", index=index)[0].get("IFLA_ADDRESS")
        return bytes.fromhex(str(mac).replace(":", ""))

    def link_down(self, ifname: str) -> None:
        with self._rtnl(f"taking {ifname!r} down") as ipr:
            ipr.link("set", index=_index(ipr, ifname, f"namespace {self.name!r}"),
                     state="down")

    def move_in(self, ifname: str) -> None:
        """Move ``ifname`` from the current namespace into this one."""
        move_link(ifname, self.name)

    def create_tap(self, name: str, *, mtu: int = 1500, mac: bytes | None = None,
                   offload: bool = True, batch: int = DEFAULT_BATCH,
                   up: bool = True) -> TapEndpoint:
        """A tap created here, moved into the namespace, its MTU set and (by default) up.

        The returned endpoint is ustack's side; the kernel side is ``name`` in the
        namespace. ``mac`` is ustack's link address (random when None).
        """
        tap = TapEndpoint.open(name, mtu=mtu, mac=mac, offload=offload, batch=batch)
        try:
            self.move_in(tap.name)
            if up:
                self.link_up(tap.name, mtu)
            else:
                with self._rtnl(f"setting the MTU of {name!r}") as ipr:
                    ipr.link("set", index=_index(ipr, tap.name, self.name), mtu=mtu)
        except BaseException:
            tap.close()  # the device dies with its fd
            raise
        return tap

    # --- addresses and routes -------------------------------------------------------------------

    def add_address(self, ifname: str, address: str) -> None:
        """Assign ``"addr/len"``; IPv6 addresses skip DAD (IFA_F_NODAD) to be usable at once."""
        iface = ipaddress.ip_interface(address)
        kwargs: dict[str, Any] = {"address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        if iface.version == 6:
            kwargs["flags"] = IFA_F_NODAD
        with self._rtnl(f"adding {address} to {ifname!r}") as ipr:
            ipr.addr("add", index=_index(ipr, ifname, f"namespace {self.name!r}"), **kwargs)

    def add_route(self, destination: str, gateway: str | None = None,
                  ifname: str | None = None, metric: int | None = None) -> None:
        """Add a route: ``destination`` is a prefix or ``default`` / ``default6``."""
        if destination in ("default", "default4"):
            destination = "0.0.0.0/0"
        elif destination == "default6":
            destination = "::/0"
        net = ipaddress.ip_network(destination, strict=False)
        kwargs: dict[str, Any] = {"dst": str(net.network_address), "dst_len": net.prefixlen,
                                  "family": 2 if net.version == 4 else 10}
        if gateway is not None:
            kwargs["gateway"] = gateway
        if metric is not None:
            kwargs["priority"] = metric
        with self._rtnl(f"adding a route to {destination}") as ipr:
            if ifname is not None:
                kwargs["oif"] = _index(ipr, ifname, f"namespace {self.name!r}")
            ipr.route("add", **kwargs)

    def add_neighbor(self, ifname: str, address: str, lladdr: bytes) -> None:
        """A permanent neighbor entry (ARP/NDP need not run for ``address``)."""
        ip = ipaddress.ip_address(address)
        mac = ":".join(f"{b:02x}" for b in lladdr)
        with self._rtnl(f"adding neighbor {address}") as ipr:
            ipr.neigh("add", dst=str(ip), lladdr=mac, state=_NUD_PERMANENT,
                      ifindex=_index(ipr, ifname, f"namespace {self.name!r}"),
                      family=2 if ip.version == 4 else 10)

    def addresses(self, ifname: str) -> list[str]:
        """The addresses on ``ifname`` as ``"addr/len"`` strings."""
        with self._rtnl(f"listing addresses of {ifname!r}") as ipr:
            index = _index(ipr, ifname, f"namespace {self.name!r}")
            return [f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"
                    for msg in ipr.addr("dump", index=index)]
