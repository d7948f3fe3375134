"""The HTTP server: landing page, /metrics (refreshing what is due first), health and readiness.

With --web.config.file (webconfig.py) it serves HTTPS and asks for basic authentication on every path but
the probes' /-/healthy and /-/ready, which tell nothing about the estate.
"""

from __future__ import annotations

import contextlib
import html
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted

from . import __version__
from .webconfig import HANDSHAKE_TIMEOUT, BasicAuth, ServerTls

if TYPE_CHECKING:
    from .wiring import Exporter

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
DEADLINE_MARGIN = 0.5  # seconds kept back from Prometheus' scrape timeout for rendering and the network
# Open without basic authentication: kubelet's probes carry no password, and these say only "OK"/"Ready".
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
log = logging.getLogger("exporter.web")


def scrape_deadline(environ: Environ, default_timeout: float, now: float) -> float:
    """When a scrape must stop waiting for refreshes: Prometheus' timeout header minus a margin."""
    timeout = default_timeout
    header = environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS")
    if header:
        with contextlib.suppress(ValueError):
            timeout = float(header)
    return now + max(0.0, timeout - DEADLINE_MARGIN - 0.05 * timeout)


class ExporterApp:
    def __init__(self, exporter: Exporter, vault_names: Callable[[], list[str]], default_timeout: float,
                 auth: BasicAuth | None = None) -> None:
        self.auth = auth
        self.refresher = exporter.refresher
        self.exposition = exporter.exposition
        self.registry_app = make_wsgi_app(exporter.registry)
        self.vault_names = vault_names
        self.default_timeout = default_timeout

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if self.auth is not None and path not in OPEN_PATHS and not self.auth.allows(
                environ.get("HTTP_AUTHORIZATION")):
            # Before anything else: a caller without the password neither reads nor starts a refresh.
            return _unauthorized(start_response)
        if path == "/metrics":
            self.refresher.refresh_due(scrape_deadline(environ, self.default_timeout, time.monotonic()))
            return self._metrics(environ, start_response)
        if path == "/-/healthy":
            return _text(start_response, "200 OK", "OK\n")
        if path == "/-/ready":
            if self.refresher.ready():
                return _text(start_response, "200 OK", "Ready\n")
            return _text(start_response, "503 Service Unavailable", "Not ready: first refresh not done\n")
        if path == "/":
            return _text(start_response, "200 OK", self._landing_page(), "text/html; charset=utf-8")
        return _text(start_response, "404 Not Found", "Not found\n")

    def _metrics(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD") or "name[]" in parse_qs(
                environ.get("QUERY_STRING", "")):
            # name[] filtering and odd methods: prometheus_client's own (uncached) handling.
            body: Iterable[bytes] = self.registry_app(environ, start_response)
            return body
        _, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):  # what Prometheus always asks for
            headers.append(("Content-Encoding", "gzip"))
            chunks = self.exposition.render_gzip(openmetrics)
        else:
            chunks = self.exposition.render(openmetrics)
        start_response("200 OK", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else chunks

    def _landing_page(self) -> str:
        vaults = "".join(f"<li>{html.escape(name)}</li>" for name in self.vault_names()) or "<li>none yet</li>"
        return (
            "<!doctype html><html><head><title>Azure Backup Exporter</title></head><body>"
            f"<h1>Azure Backup Exporter</h1><p>Version {html.escape(__version__)}</p>"
            '<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Ready</a></p>'
            f"<h2>Watched vaults</h2><ul>{vaults}</ul></body></html>\n")


def _text(start_response: StartResponse, status: str, body: str,
          content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def _unauthorized(start_response: StartResponse) -> list[bytes]:
    data = b"Unauthorized\n"
    start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                        ("Content-Length", str(len(data))),
                                        ("WWW-Authenticate", 'Basic realm="azure-backup-exporter", charset="UTF-8"')])
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ServerTls | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return (sock if self.tls is None else self.tls.wrap(sock)), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A refused handshake (no client certificate, plain HTTP on the TLS port, a scanner) is the client's
        # problem: one debug line, not socketserver's traceback on stderr.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            # In the request's own thread, with a deadline: a client that stalls the handshake holds only itself.
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve(app: ExporterApp, host: str, port: int, tls: ServerTls | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Start serving in a thread (HTTPS with `tls`); returns the server (for shutdown) and its thread."""
    server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    server.tls = tls
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return server, thread
