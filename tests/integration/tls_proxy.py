"""A machine in the middle for attested-TLS tests: it terminates TLS with its own key,
relays to the real node over a second TLS connection, and records every byte a client
managed to send it after the handshake.

Each connection is relayed by one thread that waits on both ends with ``select``: an
OpenSSL connection must never be read and written from two threads at once (doing so
lost a relayed request now and then)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Iterator

from modellease._hazmat import TlsPrivateKey
from modellease.enclave.tls import NodeCertificate

BUFFER = 65536
TIMEOUT = 30.0


class TlsProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.certificate = NodeCertificate.issue(
            TlsPrivateKey.generate(), evidence=b"{}", name="mallory"
        )
        self.captured = bytearray()  # what clients sent, decrypted: what a MITM would read
        self.handshakes_failed = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._server_context = self.certificate.server_context()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []  # closed by close(), whatever the relays do

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve_forever(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(raw,), daemon=True).start()

    def _relay(self, raw: socket.socket) -> None:
        raw.settimeout(TIMEOUT)
        with self._lock:
            self._open.append(raw)
        try:
            client = self._server_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with self._lock:
                self.handshakes_failed += 1
            raw.close()
            return
        upstream_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        upstream_context.check_hostname = False
        upstream_context.verify_mode = ssl.CERT_NONE
        upstream = upstream_context.wrap_socket(
            socket.create_connection(("127.0.0.1", self.upstream_port), timeout=TIMEOUT)
        )
        with self._lock:
            self._open += [client, upstream]
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed by close()
            self._pump(client, upstream)
        for end in (client, upstream):
            with contextlib.suppress(OSError):
                end.close()

    def _pump(self, client: ssl.SSLSocket, upstream: ssl.SSLSocket) -> None:
        """Copy both ways until either end closes, recording what the client sends."""
        peer = {client: upstream, upstream: client}
        for end in peer:
            end.setblocking(False)
        while True:
            ready = [end for end in peer if end.pending()]
            if not ready:
                ready, _, _ = select.select(list(peer), [], [], TIMEOUT)
                if not ready:
                    return
            for source in ready:
                try:
                    data = source.recv(BUFFER)
                except ssl.SSLWantReadError:
                    continue  # a TLS record with no application data (a session ticket)
                if not data:
                    return
                if source is client:
                    with self._lock:
                        self.captured += data
                target = peer[source]
                target.settimeout(TIMEOUT)
                target.sendall(data)
                target.setblocking(False)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.close()


@contextlib.contextmanager
def tls_proxy(upstream_url: str) -> Iterator[TlsProxy]:
    """A :class:`TlsProxy` in front of ``upstream_url`` (``https://127.0.0.1:<port>``)."""
    proxy = TlsProxy(int(upstream_url.rsplit(":", 1)[1]))
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.close()
        thread.join(timeout=5)
