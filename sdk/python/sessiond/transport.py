"""Transports: how the client's JSON-RPC requests reach a sessiond server.

Written by hand, unlike the rest of the package: this module knows JSON-RPC 2.0 framing but
nothing of sessiond's methods. TcpTransport pipelines calls on one connection (newline-
delimited JSON, as sessiond serves TCP); HttpTransport posts each call on its own. Both are
safe to use from several threads at once.
"""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from types import TracebackType
from typing import Any, Protocol

__all__ = ["HttpTransport", "TcpTransport", "Transport", "TransportClosedError"]


class Transport(Protocol):
    """Carries JSON-RPC calls to a sessiond server."""

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        """Sends one request and returns the reply object, whether it holds a result or an
        error. Raises OSError when no reply comes."""
        ...

    def close(self) -> None:
        """Releases the transport; calls still waiting for a reply fail."""
        ...


class TransportClosedError(ConnectionError):
    """The transport was closed."""


def _encode(request_id: int, method: str, params: Any) -> bytes:
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    # json.dumps escapes newlines inside strings, so a request is one line.
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode(data: bytes) -> dict[str, Any] | None:
    """Returns the JSON-RPC response in data, or None if data is not one."""
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
        return None
    return reply


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class TcpTransport:
    """JSON-RPC over one TCP connection to sessiond's TCP listener (by default
    127.0.0.1:7400), one JSON value per line each way.

    Calls from several threads are pipelined: each request is sent at once and a reader thread
    hands each reply, in whatever order the server sends them, to its call by id. timeout
    bounds connecting and each call's wait for its reply (None waits for ever).
    """

    def __init__(self, address: str, *, timeout: float | None = 30.0) -> None:
        self._timeout = timeout
        self._sock = socket.create_connection(_split_address(address), timeout=timeout)
        self._sock.settimeout(None)
        self._reader_file = self._sock.makefile("rb")
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._error: OSError | None = None
        # An error with id null that came while no call was waiting, and no reply since: a
        # server refusing the connection (-32000, tooManyConnections) sends one, then closes.
        self._unclaimed: dict[str, Any] | None = None
        self._refusal: dict[str, Any] | None = None  # the unclaimed error the stream ended on
        self._reader = threading.Thread(target=self._read, name="sessiond-tcp-reader", daemon=True)
        self._reader.start()

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            if self._error is not None:
                raise self._error
            request_id = next(self._ids)
            reply: Future[dict[str, Any]] = Future()
            self._pending[request_id] = reply
        try:
            with self._write_lock:
                self._sock.sendall(_encode(request_id, method, params) + b"\n")
        except OSError:
            # The server closed the connection; the reader may be about to find why (a
            # refusal it sent first): give it a moment.
            self._reader.join(timeout=1.0)
            if reply.done() and reply.exception() is None:
                return reply.result()
            with self._lock:
                self._pending.pop(request_id, None)
                if self._refusal is not None:
                    return self._refusal
            raise
        try:
            return reply.result(timeout=self._timeout)
        except FutureTimeoutError:
            # The entry stays pending until the server answers: see _dispatch.
            raise TimeoutError(f"sessiond: no reply to {method} within {self._timeout} s") from None

    def _read(self) -> None:
        error: OSError
        try:
            for line in self._reader_file:
                if line.strip():
                    self._dispatch(line)
            error = ConnectionError("sessiond: connection lost: the server closed it")
        except OSError as exc:
            error = ConnectionError(f"sessiond: connection lost: {exc}")
        with self._lock:
            self._refusal = self._unclaimed
        self._stop(error)

    def _dispatch(self, line: bytes) -> None:
        """Hands a reply to the call with its id. The server answers with id null a request it
        could not read at all; when a single call is unanswered, that reply is its own."""
        reply = _decode(line)
        if reply is None:
            return
        request_id = reply.get("id")
        with self._lock:
            if request_id is None and reply.get("error") is not None and not self._pending:
                self._unclaimed = reply
                return
            if request_id is None and reply.get("error") is not None and len(self._pending) == 1:
                request_id = next(iter(self._pending))
            waiting = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
            if waiting is not None:
                self._unclaimed = None
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    def _stop(self, error: OSError) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
            pending = list(self._pending.values())
            self._pending.clear()
            refusal = self._refusal
        for waiting in pending:
            if waiting.done():
                continue
            if refusal is not None:
                waiting.set_result(refusal)
            else:
                waiting.set_exception(self._error)

    def close(self) -> None:
        """Closes the connection; calls still waiting for a reply raise TransportClosedError."""
        self._stop(TransportClosedError("sessiond: transport closed"))
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(timeout=5)
        self._reader_file.close()

    def __enter__(self) -> TcpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class HttpTransport:
    """JSON-RPC over HTTP: each call is a POST to url (by default http://127.0.0.1:7401/).

    bearer_token, when given, is sent as "Authorization: Bearer <token>": the server takes the
    caller's token from it whenever a call leaves the token argument out, so one API key can
    serve every call. timeout bounds each request (None waits for ever).
    """

    def __init__(self, url: str, *, bearer_token: str | None = None, timeout: float | None = 30.0) -> None:
        self.url = url
        self.bearer_token = bearer_token
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            request_id = next(self._ids)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.bearer_token:
            headers["Authorization"] = "Bearer " + self.bearer_token
        request = urllib.request.Request(
            self.url, data=_encode(request_id, method, params), headers=headers, method="POST"
        )
        try:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as exc:
                # sessiond answers some faults (413, 503, …) with a JSON-RPC error body.
                status, body = exc.code, exc.read()
        except http.client.HTTPException as exc:
            # A reply cut short (IncompleteRead) or not HTTP at all: no reply, as for a
            # connection that failed, which callers catch as OSError.
            raise ConnectionError(f"sessiond: no complete HTTP reply: {exc!r}") from exc
        reply = _decode(body)
        if reply is None:
            raise ConnectionError(f"sessiond: HTTP {status}: the reply is not a JSON-RPC response")
        return reply

    def close(self) -> None:
        """Does nothing: each call uses a connection of its own."""

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
