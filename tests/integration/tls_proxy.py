"""A machine in the middle for attested-TLS tests: it terminates TLS with its own key,
relays to the real node over a second TLS connection, and records every byte a client
managed to send it after the handshake."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator

from modellease._hazmat import TlsPrivateKey
from modellease.enclave.tls import NodeCertificate

BUFFER = 65536


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
            socket.create_connection(("127.0.0.1", self.upstream_port))
        )
        with self._lock:
            self._open += [client, upstream]
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: ssl.SSLSocket, target: ssl.SSLSocket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(BUFFER):
                if record:
                    with self._lock:
                        self.captured += data
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.close()

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
