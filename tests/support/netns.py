"""Hosts for tests: network namespaces (`ip netns`) joined by veth pairs to a bridge in the
tests' own namespace, so that processes started "on a host" reach each other, and a server the
tests run, only over that network, each at an address of its own.

    with hosts_network(["writer", "replica-1", "replica-2"]) as net:
        server = PostgresServer(listen=net.gateway)          # reachable from every host
        subprocess.Popen(net.hosts["replica-1"].command(["rag", "serve", "--host", net.hosts["replica-1"].address]))

Where namespaces cannot be made (no CAP_NET_ADMIN, no `ip`), `hosts_network` says why in
`net.fallback_reason` and gives every host an address of its own on loopback (127.0.0.0/8 is all
loopback on Linux) and commands that run here: the same steps, one network stack.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    namespace: str | None  # None: on loopback, in the tests' own namespace

    def command(self, args: Sequence[str]) -> list[str]:
        """`args` run on this host (`ip netns exec` execs them: the pid is the command's own)."""
        return ["ip", "netns", "exec", self.namespace, *args] if self.namespace else list(args)


@dataclass
class Network:
    gateway: str  # where the tests' namespace is reached from every host (servers listen here)
    hosts: dict[str, Host] = field(default_factory=dict)
    fallback_reason: str | None = None  # why the hosts share loopback instead of namespaces

    @property
    def namespaces(self) -> bool:
        return self.fallback_reason is None


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    probe = f"ragprobe{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if result.returncode:
        return f"`ip netns add` failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@contextmanager
def hosts_network(names: Sequence[str]) -> Iterator[Network]:
    """A bridge with one namespace per name on it (10.X.Y.0/24, picked at random so that
    concurrent runs do not collide), all removed at the end; loopback addresses where namespaces
    cannot be made."""
    reason = namespaces_unavailable()
    if reason is not None:
        net = Network(gateway="127.0.0.1", fallback_reason=reason)
        for i, name in enumerate(names, start=2):
            net.hosts[name] = Host(name, f"127.0.0.{i}", None)
        yield net
        return
    tag = f"{os.getpid() % 10000}{random.randrange(100, 1000)}"
    bridge = f"rbr{tag}"[:15]
    subnet = f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}"
    made: list[str] = []
    links: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        links.append(bridge)
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        net = Network(gateway=f"{subnet}.1")
        for i, name in enumerate(names, start=2):
            namespace = f"rag{tag}-{i}"
            outside, inside = f"rv{tag}o{i}"[:15], f"rv{tag}i{i}"[:15]
            _ip("netns", "add", namespace)
            made.append(namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            links.append(outside)  # deleting one end deletes the pair
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "addr", "add", f"{subnet}.{i}/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            net.hosts[name] = Host(name, f"{subnet}.{i}", namespace)
        yield net
    finally:
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        for link in links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
