"""A hand-driven XEP-0174 peer for lab tests, honest or hostile, in one lab host.

The test starts one agent per host with :class:`Agent`; the agent runs *inside* the
host's network namespace (``ip netns exec NS python tests/lab/xmpp_agent.py ADDRESS``)
and takes one JSON command a line on stdin, answering each with one JSON line on
stdout. Its mDNS is python-zeroconf bound to ADDRESS alone (the namespace's one
interface: never the machine's own); its TCP connections are plain sockets. Bytes
travel base64-encoded. The commands are the ``op_*`` methods of :class:`_Server`.

The agent imports nothing of p2pchat: what it announces and sends is written here, as
a stranger's client would write it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

SERVICE_TYPE = "_presence._tcp.local."
ANSWER_TIMEOUT = 120.0  # a guard against a hung agent, not a speed test


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


# ------------------------------------------------------------------ the test's side


class AgentError(Exception):
    """The agent could not do what it was asked; the message says why."""


class Agent:
    """One agent process in ``host`` (a tests.lab.netlab.Host); ``ask`` runs a command."""

    def __init__(self, host: Any, log: Path) -> None:
        self.host = host
        self.address: str = host.address
        self.log_path = log
        with open(log, "a") as stderr:
            self.process = subprocess.Popen(
                [*host.exec_prefix, sys.executable, __file__, host.address],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        host.processes.append(self.process)  # the lab kills it, whatever happens
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ask("ready")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        try:
            answer = self._answers.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            raise AgentError(f"agent at {self.address}: no answer to {op}") from None
        if answer is None:
            raise AgentError(f"agent at {self.address} died: {self.log_path.read_text()[-2000:]}")
        if "error" in answer:
            raise AgentError(f"agent at {self.address}, {op}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit")
                self.process.wait(timeout=15)
            except (AgentError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


# ------------------------------------------------------------------ the agent's side


class _Server:
    def __init__(self, address: str) -> None:
        from zeroconf import Zeroconf

        self.address = address
        self.zeroconf = Zeroconf(interfaces=[address])
        self.infos: dict[str, Any] = {}
        self.sockets: dict[str, socket.socket] = {}

    def _info(
        self, name: str, port: int, txt: dict[str, str], server: str, address: str = ""
    ) -> Any:
        from zeroconf import ServiceInfo

        return ServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address or self.address)],
            port=port,
            properties=txt,
            server=server,
        )

    # ---------------------------------------------------------------- mDNS

    def op_ready(self) -> dict[str, Any]:
        return {}

    def op_announce(
        self, name: str, port: int, txt: dict[str, str], server: str, address: str = ""
    ) -> dict[str, Any]:
        """Announce the instance ``name`` at our address, or at ``address`` (another of
        this host's), without probing: the name is ours."""
        info = self._info(name, port, txt, server, address)
        self.zeroconf.register_service(info, cooperating_responders=True)
        self.infos[name] = info
        return {}

    def op_announce_many(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        """Announce several instances (each given as ``op_announce`` takes it) at once."""
        infos = [self._info(**instance) for instance in instances]

        async def register_all() -> None:
            broadcasts = [
                await self.zeroconf.async_register_service(info, cooperating_responders=True)
                for info in infos
            ]
            await asyncio.gather(*broadcasts)

        loop = self.zeroconf.loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(register_all(), loop).result(60)
        for instance, info in zip(instances, infos, strict=True):
            self.infos[instance["name"]] = info
        return {}

    def op_withdraw(self, name: str) -> dict[str, Any]:
        self.zeroconf.unregister_service(self.infos.pop(name))
        return {}

    def op_flood(
        self, prefix: str, count: int, port: int, server: str, names_only: bool = False
    ) -> dict[str, Any]:
        """Announce ``count`` instances at once: all answered for from now on, and all
        their records multicast together (as few packets as fit), twice, as a flooder
        in a hurry would, instead of one registration after another. ``names_only``:
        only their PTR records, never answered for (names that never resolve)."""
        from zeroconf._protocol.outgoing import DNSOutgoing
        from zeroconf.const import _FLAGS_AA, _FLAGS_QR_RESPONSE

        machine = server.split(".")[0]
        txt = {"txtvers": "1", "status": "avail"}
        infos = [
            self._info(f"{prefix}{index}@{machine}", port, txt, server) for index in range(count)
        ]

        async def announce_all() -> int:
            packets = 0
            if not names_only:
                for info in infos:
                    self.zeroconf.registry.async_add(info)
            # Each packet whole, as an announcement is (its instances' PTR, SRV and TXT
            # records, and the host's address): a receiver can resolve what it has.
            per_packet = 32 if names_only else 6
            for round_ in range(2):
                if round_:
                    await asyncio.sleep(1.0)
                for first in range(0, len(infos), per_packet):
                    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
                    for info in infos[first : first + per_packet]:
                        out.add_answer_at_time(info.dns_pointer(), 0)
                        if not names_only:
                            out.add_answer_at_time(info.dns_service(), 0)
                            out.add_answer_at_time(info.dns_text(), 0)
                    if not names_only:
                        for record in infos[0].dns_addresses():
                            out.add_answer_at_time(record, 0)
                    packets += len(out.packets())
                    self.zeroconf.async_send(out)
            return packets

        started = time.monotonic()
        loop = self.zeroconf.loop
        assert loop is not None
        packets = asyncio.run_coroutine_threadsafe(announce_all(), loop).result(60)
        if not names_only:
            for info in infos:
                self.infos[instance_of(info.name)] = info
        return {"packets": packets, "seconds": time.monotonic() - started}

    def op_resolve(self, name: str, timeout_ms: int = 3000) -> dict[str, Any]:
        info = self.zeroconf.get_service_info(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", timeout_ms)
        if info is None:
            return {"found": False}
        return {"found": True, "port": info.port, "addresses": info.parsed_addresses()}

    # ---------------------------------------------------------------- TCP

    def op_connect(self, conn: str, host: str, port: int, source: str = "") -> dict[str, Any]:
        """Connect to ``host``:``port`` from our address, or from ``source``."""
        sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
        self.sockets[conn] = sock
        return {"local": sock.getsockname()[1]}

    def op_send(self, conn: str, data: str) -> dict[str, Any]:
        """Write ``data`` whole; what broke the write, if anything."""
        try:
            self.sockets[conn].sendall(unb64(data))
        except OSError as error:
            return {"broken": type(error).__name__}
        return {"broken": ""}

    def op_send_stanza(
        self, conn: str, head: str, fill: str, size: int, tail: str
    ) -> dict[str, Any]:
        """Write ``head``, then ``size`` bytes of ``fill`` repeated, then ``tail``, in
        64 KiB writes, until done or the peer breaks the connection: how much of the
        filling was written."""
        sock = self.sockets[conn]
        pattern = unb64(fill)
        chunk = pattern * (65536 // len(pattern))
        sent = 0
        try:
            sock.sendall(unb64(head))
            while sent < size:
                piece = chunk[: size - sent]
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(unb64(tail))
        except TimeoutError:
            return {"sent": sent, "broken": "timeout"}
        except OSError as error:
            return {"sent": sent, "broken": type(error).__name__}
        return {"sent": sent, "broken": ""}

    def op_read_until(self, conn: str, marker: str, timeout: float = 30) -> dict[str, Any]:
        """Read until ``marker`` (base64) has arrived, the peer closes, or ``timeout``."""
        sock, wanted, data = self.sockets[conn], unb64(marker), b""
        deadline = time.monotonic() + timeout
        closed = False
        while wanted not in data and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not piece:
                closed = True
                break
            data += piece
        sock.settimeout(10)
        return {"found": wanted in data, "closed": closed, "data": b64(data[-4096:])}

    def op_wait_closed(self, conn: str, timeout: float = 30) -> dict[str, Any]:
        """Read until the peer closes (EOF or reset) or ``timeout`` passes; what came
        and how long the closing took."""
        sock, data = self.sockets[conn], b""
        started = time.monotonic()
        deadline = started + timeout
        closed = False
        how = ""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            except OSError as error:
                closed, how = True, type(error).__name__
                break
            if not piece:
                closed, how = True, "eof"
                break
            data += piece
        sock.settimeout(10)
        return {"closed": closed, "how": how, "seconds": time.monotonic() - started,
                "data": b64(data[-4096:])}  # fmt: skip

    def op_still_open(self, conn: str) -> dict[str, Any]:
        """Whether the peer has not closed this connection (nothing to read, no EOF)."""
        sock = self.sockets[conn]
        sock.setblocking(False)
        try:
            piece = sock.recv(65536, socket.MSG_PEEK)
            open_ = bool(piece)
        except BlockingIOError:
            open_ = True
        except OSError:
            open_ = False
        sock.settimeout(10)
        return {"open": open_}

    def op_close(self, conn: str) -> dict[str, Any]:
        self.sockets.pop(conn).close()
        return {}

    def op_quit(self) -> dict[str, Any]:
        for sock in self.sockets.values():
            sock.close()
        self.zeroconf.unregister_all_services()
        self.zeroconf.close()
        return {"quit": True}


def instance_of(name: str) -> str:
    return name.removesuffix("." + SERVICE_TYPE)


def main(address: str) -> None:
    server = _Server(address)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            answer = getattr(server, f"op_{op}")(**command)
        except Exception as error:  # reported to the test, which fails with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)
        if answer.get("quit"):
            return


if __name__ == "__main__":
    main(sys.argv[1])
