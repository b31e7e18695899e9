"""The authenticated, encrypted link between the two nodes of a direct PSI, and the tunnel that carries the
PSI engine's own connections over it.

SecretFlow's engine (spu) connects its parties with brpc: each party runs a server and dials the other's,
with no authentication and no encryption of its own. So each node's engine listens on 127.0.0.1 only and
dials, as its peer, a local port of ours; our tunnel carries those loopback connections, multiplexed, over
one TCP connection that the provider dials to the consumer's listener (the only port opened to the
outside, for one job). Before anything of the engine flows, both sides prove that they hold the job's
session key, which travelled only inside the sealed rendezvous message:

    provider → consumer   magic ‖ nc                          (32 random bytes)
    consumer → provider   ns ‖ HMAC(k, "consumer" ‖ nc ‖ ns)   (32 random bytes, tag)
    provider → consumer   HMAC(k, "provider" ‖ nc ‖ ns)

Each direction then has its own key, HMAC(k, label ‖ nc ‖ ns), and every frame is AES-256-GCM under it
with a counter nonce: a frame altered, dropped, replayed or reordered breaks the link (and so the PSI).
Standard library and ``cryptography`` only: this module runs in the node's own virtualenv, not the engine's.
"""
from __future__ import annotations

import contextlib
import hmac
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"DXPSIDIRECT1"
KEY_SIZE = 32
_NONCE = 32
_TAG = 32
_FRAME_LENGTH = struct.Struct(">I")
_FRAME_HEAD = struct.Struct(">BI")  # kind, stream
_MAX_FRAME = 1 << 20  # bytes of ciphertext; a larger length is an attack or a bug
_CHUNK = 256 * 1024
HANDSHAKE_SECONDS = 10.0
OPEN, DATA, CLOSE, BYE = 1, 2, 3, 4


class LinkRefused(Exception):
    """The peer did not prove the session key, or broke the link's framing or encryption."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    parts, left = [], size
    while left:
        chunk = sock.recv(min(left, _CHUNK))
        if not chunk:
            raise ConnectionError("The peer closed the link.")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _mac(key: bytes, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, label + b"".join(parts), sha256).digest()


class Channel:
    """One authenticated connection: whole frames of (kind, stream, data), encrypted, in order."""

    def __init__(self, sock: socket.socket, *, send_key: bytes, recv_key: bytes) -> None:
        self.sock = sock
        _no_delay(sock)
        self._send, self._recv = AESGCM(send_key), AESGCM(recv_key)
        self._sent = self._received = 0
        self._lock = threading.Lock()
        self.bytes_sent = 0

    def send(self, kind: int, stream: int, data: bytes = b"") -> None:
        with self._lock:
            nonce = b"\0\0\0\0" + self._sent.to_bytes(8, "big")
            self._sent += 1
            sealed = self._send.encrypt(nonce, _FRAME_HEAD.pack(kind, stream) + data, None)
            self.sock.sendall(_FRAME_LENGTH.pack(len(sealed)) + sealed)
            self.bytes_sent += len(sealed) + _FRAME_LENGTH.size

    def recv(self) -> tuple[int, int, bytes]:
        (size,) = _FRAME_LENGTH.unpack(_recv_exact(self.sock, _FRAME_LENGTH.size))
        if not _FRAME_HEAD.size < size <= _MAX_FRAME:
            raise LinkRefused("A frame of the direct link has an impossible length.")
        nonce = b"\0\0\0\0" + self._received.to_bytes(8, "big")
        self._received += 1
        try:
            plain = self._recv.decrypt(nonce, _recv_exact(self.sock, size), None)
        except InvalidTag:
            raise LinkRefused("A frame of the direct link failed authentication.") from None
        kind, stream = _FRAME_HEAD.unpack_from(plain)
        return kind, stream, plain[_FRAME_HEAD.size :]


def _keys(key: bytes, nc: bytes, ns: bytes) -> tuple[bytes, bytes]:
    """(consumer → provider, provider → consumer) traffic keys."""
    return _mac(key, b"keys consumer->provider", nc, ns), _mac(key, b"keys provider->consumer", nc, ns)


def handshake_accept(sock: socket.socket, key: bytes) -> Channel:
    """The consumer's side: the dialler must prove ``key`` (LinkRefused otherwise)."""
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        hello = _recv_exact(sock, len(MAGIC) + _NONCE)
        if not hmac.compare_digest(hello[: len(MAGIC)], MAGIC):
            raise LinkRefused("The peer does not speak the direct PSI link.")
        nc, ns = hello[len(MAGIC) :], secrets.token_bytes(_NONCE)
        sock.sendall(ns + _mac(key, b"consumer", nc, ns))
        if not hmac.compare_digest(_recv_exact(sock, _TAG), _mac(key, b"provider", nc, ns)):
            raise LinkRefused("The peer did not prove the session key.")
    except (OSError, ConnectionError) as exc:
        raise LinkRefused(f"The handshake of the direct link failed: {exc}") from exc
    sock.settimeout(None)
    to_provider, to_consumer = _keys(key, nc, ns)
    return Channel(sock, send_key=to_provider, recv_key=to_consumer)


def handshake_connect(sock: socket.socket, key: bytes) -> Channel:
    """The provider's side: the listener must prove ``key`` before we prove it in turn."""
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        nc = secrets.token_bytes(_NONCE)
        sock.sendall(MAGIC + nc)
        answer = _recv_exact(sock, _NONCE + _TAG)
        ns = answer[:_NONCE]
        if not hmac.compare_digest(answer[_NONCE:], _mac(key, b"consumer", nc, ns)):
            raise LinkRefused("The listener did not prove the session key.")
        sock.sendall(_mac(key, b"provider", nc, ns))
    except (OSError, ConnectionError) as exc:
        raise LinkRefused(f"The handshake of the direct link failed: {exc}") from exc
    sock.settimeout(None)
    to_provider, to_consumer = _keys(key, nc, ns)
    return Channel(sock, send_key=to_consumer, recv_key=to_provider)


def loopback_listener() -> socket.socket:
    """A listening socket on 127.0.0.1 at a port the OS chooses."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now (for the engine's own server, which takes a port, not a socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Tunnel:
    """Carries the local engine's loopback connections over the channel, both ways.

    A connection the local engine makes to ``alias`` (the address it was given for its peer) opens a
    stream that the other side connects to its engine's server at ``engine_port``, and the reverse.
    Stream ids are odd from the consumer, even from the provider, so the two sides never collide.
    """

    def __init__(self, channel: Channel, *, alias: socket.socket, engine_port: int, consumer: bool,
                 connect_seconds: float = 60.0) -> None:
        self.channel, self.alias, self.engine_port = channel, alias, engine_port
        self._next = 1 if consumer else 2
        self._streams: dict[int, socket.socket] = {}
        self._pumps: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._connect_seconds = connect_seconds
        self._peer_done = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._guarded(self._read), daemon=True).start()
        threading.Thread(target=self._guarded(self._accept), daemon=True).start()

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - kept for the owner, who ends the run
                if not self._peer_done.is_set() and self.error is None:
                    self.error = exc
                self._peer_done.set()
        return run

    def _accept(self) -> None:
        while True:
            try:
                local, _ = self.alias.accept()
            except OSError:
                return  # closed: the run is over
            _no_delay(local)
            with self._lock:
                stream, self._next = self._next, self._next + 2
                self._streams[stream] = local
            self.channel.send(OPEN, stream)
            self._pump_start(stream, local)

    def _pump_start(self, stream: int, local: socket.socket) -> None:
        pump = threading.Thread(target=self._pump, args=(stream, local), daemon=True)
        self._pumps.append(pump)
        pump.start()

    def _pump(self, stream: int, local: socket.socket) -> None:
        """Local engine → peer, until the local side closes."""
        try:
            while chunk := local.recv(_CHUNK):
                self.channel.send(DATA, stream, chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.channel.send(CLOSE, stream)

    def _engine_connect(self) -> socket.socket:
        # The peer's engine may dial before ours listens: both start when the handshake is done.
        deadline = time.monotonic() + self._connect_seconds
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.engine_port), timeout=5)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _read(self) -> None:
        """Peer → local engine, until the peer says it is done."""
        while True:
            kind, stream, data = self.channel.recv()
            if kind == BYE:
                self._peer_done.set()
                return
            if kind == OPEN:
                local = self._engine_connect()
                local.settimeout(None)
                _no_delay(local)
                with self._lock:
                    self._streams[stream] = local
                self._pump_start(stream, local)
            elif kind == DATA:
                target = self._streams.get(stream)
                if target is not None:
                    try:
                        target.sendall(data)
                    except OSError:
                        self._streams.pop(stream, None)
            elif kind == CLOSE:
                target = self._streams.pop(stream, None)
                if target is not None:
                    _close(target)
            else:
                raise LinkRefused(f"The direct link carried an unknown frame kind {kind}.")

    def finish(self, *, wait_seconds: float = 30.0) -> None:
        """The local engine has exited: forward what it left, say so, wait for the peer to say so, close."""
        _close(self.alias)
        for pump in list(self._pumps):
            pump.join(timeout=wait_seconds)
        with contextlib.suppress(OSError):
            self.channel.send(BYE, 0)
        self._peer_done.wait(timeout=wait_seconds)
        with self._lock:
            for local in self._streams.values():
                _close(local)
            self._streams.clear()
        _close(self.channel.sock)


def _no_delay(sock: socket.socket) -> None:
    # The engine's protocol is rounds of small messages: Nagle's delay on each hop would add up to seconds.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
