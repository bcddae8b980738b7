"""Transports: how the client's JSON-RPC requests reach a sessiond server.

Written by hand, unlike the rest of the package: this module knows JSON-RPC 2.0 framing but
nothing of sessiond's methods. TcpTransport pipelines calls on one connection (newline-
delimited JSON, as sessiond serves TCP), StdioTransport on the standard input and output of a
server it starts, through the same connection code; HttpTransport posts each call on its own.
All are safe to use from several threads at once.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import itertools
import json
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol, TypeVar

__all__ = [
    "PROXY_FROM_ENVIRONMENT",
    "HttpTransport",
    "ServerExitedError",
    "StdioTransport",
    "TcpTransport",
    "Transport",
    "TransportClosedError",
]


class Transport(Protocol):
    """Carries JSON-RPC calls to a sessiond server."""

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        """Sends one request and returns the reply object, whether it holds a result or an
        error. Raises OSError when no reply comes."""
        ...

    def close(self) -> None:
        """Releases the transport; calls still waiting for a reply fail (a StdioTransport first
        lets its server answer those it has sent)."""
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


def _naming(exc: OSError, what: str) -> OSError:
    """Returns an error of exc's class that says what failed, with its errno: "[Errno 111]
    sessiond: cannot connect to 127.0.0.1:7400: Connection refused"."""
    if exc.errno is not None and exc.strerror:
        return type(exc)(exc.errno, f"{what}: {exc.strerror}")
    try:
        return type(exc)(f"{what}: {exc}")
    except TypeError:  # a class that takes other arguments
        return OSError(f"{what}: {exc}")


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


_T = TypeVar("_T", bound="_ClosedOnExit")


class _ClosedOnExit(ABC):
    """A transport, or a client, used in a with statement is closed when the block ends."""

    @abstractmethod
    def close(self) -> None:
        """Releases the transport."""

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class TcpTransport(_ClosedOnExit):
    """JSON-RPC over TCP to sessiond's TCP listener (by default 127.0.0.1:7400), one JSON value
    per line each way, on one connection at a time.

    Calls from several threads are pipelined on the connection: a writer thread sends the
    requests in the order they come and a reader thread hands each reply, in whatever order
    the server sends them, to its call by id. timeout bounds connecting and each call from its
    start to its reply, the sending included, so a server that stops reading fails calls on
    time too (None waits for ever). A call that timed out was perhaps sent and answered later;
    the connection stays usable.

    When the connection ends other than by close (sessiond closes a connection idle for
    readIdleTimeoutSeconds, 5 minutes by default; a restart or the network may end one too; a
    server at its maxConnections or shutting down refuses one with a -32000 error), the next
    call connects again. Calls in flight when it ended raise the loss, or the refusal as
    ServerUnavailableError, and are not sent again, since the server may have run them.
    """

    def __init__(self, address: str, *, timeout: float | None = 30.0) -> None:
        self._address = address
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._connection: _Connection = _TcpConnection(address, timeout=timeout)
        # The dial under way, shared by the calls that find the connection lost; None when
        # none is.
        self._dialing: Future[_Connection] | None = None

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise TransportClosedError("sessiond: transport closed")
            connection = self._connection
        if connection.lost():
            connection = self._connect_again(connection)
        return connection.call(method, params)

    def _connect_again(self, lost: _Connection) -> _Connection:
        """Connects again, outside the lock, so that close and the calls that have a
        connection never wait for it. Calls that find the connection lost meanwhile share
        this one dial, each waiting for it within its timeout, rather than each open one at a
        server that may just have said it is full."""
        with self._lock:
            if self._closed:
                raise TransportClosedError("sessiond: transport closed")
            if self._connection is not lost:
                return self._connection  # another call has connected again already
            dialing = self._dialing
            mine = dialing is None
            if dialing is None:
                dialing = self._dialing = Future()
        if not mine:
            try:
                return dialing.result(timeout=self._timeout)
            except FutureTimeoutError:
                raise TimeoutError(f"sessiond: no connection to {self._address} within {self._timeout} s") from None
        try:
            fresh = _TcpConnection(self._address, timeout=self._timeout)
        except BaseException as exc:
            with self._lock:
                self._dialing = None
            dialing.set_exception(exc if isinstance(exc, Exception) else ConnectionError("sessiond: connecting again was interrupted"))
            raise
        with self._lock:
            self._dialing = None
            closed = self._closed
            if not closed:
                self._connection = fresh
        if closed:
            fresh.close()
            dialing.set_exception(TransportClosedError("sessiond: transport closed"))
            raise TransportClosedError("sessiond: transport closed")
        dialing.set_result(fresh)
        lost.close()
        return fresh

    def close(self) -> None:
        """Closes the connection; calls still waiting for a reply raise TransportClosedError."""
        with self._lock:
            self._closed = True
            connection = self._connection
        connection.close()


_SERVER_UNAVAILABLE = -32000
"""The code of the error with id null by which the server refuses a connection."""


class _Connection:
    """One pipelined connection over a byte stream, one JSON value per line each way, as
    sessiond serves TCP and stdio, with its reader and writer threads. Subclasses make the
    stream: _send writes to it, _describe_loss says why it ended, and _interrupt and _release
    end it."""

    _ANSWERS_ON_CLOSE = False
    """Whether the server answers the requests it has read when close ends the stream (sessiond
    on stdio, whose input _interrupt closes), so that close leaves the calls waiting to those
    replies rather than fail them at once."""

    def __init__(self, reader: BinaryIO, *, timeout: float | None, name: str, peer: str) -> None:
        self._timeout = timeout
        self._peer = peer  # the server in errors: "127.0.0.1:7400", "the stdio server"
        self._reader_file = reader
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._error: OSError | None = None
        # An error with id null that came while no call was waiting, and no reply since: if
        # the stream ends next, calls fail with it rather than "connection lost". (A refusal
        # of the connection, -32000, stops it at once: see _dispatch.)
        self._unclaimed: dict[str, Any] | None = None
        # The error calls fail with, as their reply: the refusal, or the unclaimed error the
        # stream ended on.
        self._refusal: dict[str, Any] | None = None
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: stop
        self._reader = threading.Thread(target=self._read, name=f"sessiond-{name}-reader", daemon=True)
        self._reader.start()
        self._writer = threading.Thread(target=self._write, name=f"sessiond-{name}-writer", daemon=True)
        self._writer.start()

    def _send(self, data: bytes) -> None:
        """Writes data to the stream, all of it, or raises OSError."""
        raise NotImplementedError

    def _describe_loss(self, error: OSError) -> OSError:
        """Returns the error calls fail with when the stream ended without close or a refusal;
        error says how it ended."""
        return error

    def _interrupt(self) -> None:
        """Makes a _send that waits for the other end fail, for close."""

    def _reader_wait(self) -> float:
        """How long close waits, once _interrupt has returned, for the reader to reach the end
        of the stream."""
        return 5.0

    def _release(self) -> None:
        """Releases the stream once the writer has ended, for close."""

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            if self._error is not None:
                raise self._error
            request_id = next(self._ids)
            reply: Future[dict[str, Any]] = Future()
            self._pending[request_id] = reply
            # Queued under the lock: a failure of the connection (_stop) fails it, or comes
            # after and finds it pending.
            self._outbox.put(_encode(request_id, method, params) + b"\n")
        try:
            return reply.result(timeout=self._timeout)
        except FutureTimeoutError:
            # The entry stays pending until the server answers: see _dispatch.
            raise TimeoutError(f"sessiond: no reply to {method} from {self._peer} within {self._timeout} s") from None

    def _write(self) -> None:
        """Sends the queued requests, in order, until close or a failed send."""
        while (data := self._outbox.get()) is not None:
            try:
                self._send(data)
            except (OSError, ValueError) as exc:  # ValueError: a pipe closed meanwhile
                # The server closed the connection; the reader may be about to find why (a
                # refusal it sent first, or its exit): give it a moment.
                self._reader.join(timeout=1.0)
                error: OSError = ConnectionError(f"sessiond: connection to {self._peer} lost: {exc}")
                with self._lock:
                    explain = self._error is None and self._unclaimed is None
                self._stop(self._describe_loss(error) if explain else error)
                return

    def _read(self) -> None:
        error: OSError
        try:
            for line in self._reader_file:
                if line.strip():
                    self._dispatch(line)
            error = ConnectionError(f"sessiond: connection to {self._peer} lost: the server closed it")
        except (OSError, ValueError) as exc:  # ValueError: read from a file that close closed
            error = ConnectionError(f"sessiond: connection to {self._peer} lost: {exc}")
        with self._lock:
            if self._refusal is None and self._error is None:
                self._refusal = self._unclaimed
            explain = self._error is None and self._refusal is None
        self._stop(self._describe_loss(error) if explain else error)
        # The stream has ended: nothing reads it any more. (close may have left this thread
        # waiting in a read that a process the server started held open.)
        with contextlib.suppress(OSError, ValueError):
            self._reader_file.close()

    def _dispatch(self, line: bytes) -> None:
        """Hands a reply to the call with its id. The server answers with id null a request it
        could not read at all; when a single call is unanswered, that reply is its own."""
        reply = _decode(line)
        if reply is None:
            return
        request_id = reply.get("id")
        error = reply.get("error")
        if request_id is None and isinstance(error, dict) and error.get("code") == _SERVER_UNAVAILABLE:
            # The server refuses the connection (tooManyConnections, shuttingDown) and closes
            # it next, having run none of its requests: every call waiting fails with the
            # refusal, and so do calls made from now on rather than be sent on a closing
            # connection.
            with self._lock:
                if self._error is None:
                    self._refusal = reply
            self._stop(ConnectionError(f"sessiond: connection to {self._peer} refused by the server"))
            return
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
        self._outbox.put(None)  # the writer ends: nothing more is queued (call sees _error)
        for waiting in pending:
            if waiting.done():
                continue
            if refusal is not None:
                waiting.set_result(refusal)
            else:
                waiting.set_exception(self._error)

    def lost(self) -> bool:
        """Reports whether the connection ended other than by close: lost, or refused by the
        server."""
        with self._lock:
            return self._error is not None and not isinstance(self._error, TransportClosedError)

    def close(self) -> None:
        """Closes the connection: calls made from now on raise TransportClosedError, unsent, and
        so do the calls waiting for a reply, at once, or with _ANSWERS_ON_CLOSE once the stream
        has ended without their reply."""
        closed = TransportClosedError("sessiond: transport closed")
        if self._ANSWERS_ON_CLOSE:
            with self._lock:
                self._error = closed  # what the end of the stream fails the calls left with
            self._outbox.put(None)  # the writer ends once it has sent the requests queued
        else:
            self._stop(closed)
        self._interrupt()
        self._writer.join(timeout=5)
        self._release()
        # The reader closes the stream when it ends. One still waiting in a read (a process
        # the server started holds the output open) is left to end with the stream: closing
        # the file here would wait for that read.
        self._reader.join(timeout=self._reader_wait())
        self._stop(closed)  # the calls left waiting by a reader that has not ended


class _TcpConnection(_Connection):
    """One TCP connection of a TcpTransport."""

    def __init__(self, address: str, *, timeout: float | None = 30.0) -> None:
        try:
            self._sock = socket.create_connection(_split_address(address), timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"sessiond: no connection to {address} within {timeout} s") from exc
        except OSError as exc:
            raise _naming(exc, f"sessiond: cannot connect to {address}") from exc
        self._sock.settimeout(None)
        super().__init__(self._sock.makefile("rb"), timeout=timeout, name="tcp", peer=address)

    def _send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _interrupt(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # a send that waits for the server fails
        except OSError:
            pass

    def _release(self) -> None:
        self._sock.close()


class ServerExitedError(ConnectionError):
    """A server that a StdioTransport started exited before close: returncode is its exit
    status (negative for a signal) and stderr_tail the end of what it wrote on stderr, which
    says why ("… is in use by another process", say)."""

    def __init__(self, returncode: int | None, stderr_tail: str) -> None:
        status = "closed its output" if returncode is None else f"exited ({_describe_exit(returncode)})"
        super().__init__(f"sessiond: the server {status}" + (f"; its stderr ends: {stderr_tail}" if stderr_tail else ""))
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def _describe_exit(returncode: int) -> str:
    return f"exit status {returncode}" if returncode >= 0 else f"signal {-returncode}"


class StdioTransport(_ClosedOnExit):
    """JSON-RPC on the standard input and output of a sessiond server that it starts as a
    child process, one JSON value per line each way:

        StdioTransport(["sessiond", "serve", "--stdio", "--in-memory"],
                       env={**os.environ, "SESSIOND_ADMIN_PASSWORD": password})

    args, env and cwd are subprocess.Popen's. stderr, a binary or text file such as
    sys.stderr, receives the server's logs; they are discarded when it is None, but the end of
    them is kept either way. Calls from several threads are pipelined as over TCP; timeout
    bounds each call (None waits for ever). Starting raises OSError when the command cannot be
    run. When the server exits before close, calls in flight and later ones raise
    ServerExitedError with its exit status and the end of its stderr; it is not started again.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stderr: IO[bytes] | IO[str] | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self._process = subprocess.Popen(
            list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd
        )
        self._stderr_tail = _Tail(self._process, stderr)
        self._connection = _StdioConnection(self._process, self._stderr_tail, timeout=timeout)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int:
        """The process id of the server."""
        return self._process.pid

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise TransportClosedError("sessiond: transport closed")
        return self._connection.call(method, params)

    def close(self) -> None:
        """Closes the server's standard input, on which sessiond answers the calls in flight
        and exits. Those calls get their replies; a call the server exits without answering
        raises TransportClosedError, as do calls made once close has begun, which are not
        sent. Waits for the exit, killing the server if it takes more than 10 seconds, then at
        most a second for the end of its output (a process the server started may hold it
        open), and raises ServerExitedError if its exit status was not 0."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._connection.close()
        if self._process.returncode:
            raise ServerExitedError(self._process.returncode, self._stderr_tail.text())


_STDIO_EXIT_TIMEOUT = 10.0
"""How long StdioTransport.close waits for the server to exit before killing it."""

_STDIO_OUTPUT_AFTER_EXIT = 1.0
"""How long StdioTransport.close waits, after the server's exit, for the end of its output and
stderr, which a process the server started may hold open (as the Go and TypeScript SDKs)."""

_STDIO_EXIT_WAIT = 2.0
"""How long the error of a server whose output ended waits for its exit and the rest of its
stderr."""


class _Tail:
    """Reads a process's stderr in a thread of its own, copies it to a file if given, and
    keeps its end for errors."""

    _KEEP = 4096

    def __init__(self, process: subprocess.Popen[bytes], copy: IO[bytes] | IO[str] | None) -> None:
        assert process.stderr is not None
        self._stderr = process.stderr
        self._copy = copy
        self._lock = threading.Lock()
        self._tail = b""
        self._reader = threading.Thread(target=self._read, name="sessiond-stdio-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self._stderr.read1(65536):
            with self._lock:
                self._tail = (self._tail + chunk)[-2 * self._KEEP :]
            if self._copy is not None:
                try:
                    if isinstance(self._copy, io.TextIOBase):
                        self._copy.write(chunk.decode("utf-8", "replace"))
                    else:
                        self._copy.write(chunk)  # type: ignore[arg-type]
                    self._copy.flush()
                except (OSError, ValueError):
                    self._copy = None  # a closed file: the logs go nowhere, the tail is kept
        with contextlib.suppress(OSError, ValueError):
            self._stderr.close()  # ended: close may have left it to this thread

    def join(self, timeout: float) -> None:
        """Waits for the end of stderr, at most timeout seconds."""
        self._reader.join(timeout)

    def text(self) -> str:
        """The last lines of stderr, at most 4 KiB of them, trimmed."""
        with self._lock:
            tail = self._tail
        text = tail[-self._KEEP :].decode("utf-8", "replace")
        if len(tail) > self._KEEP:
            text = "…" + text[text.find("\n") + 1 :]  # from a line's start
        return text.strip()


class _StdioConnection(_Connection):
    """The connection of a StdioTransport: the server's stdout and stdin."""

    _ANSWERS_ON_CLOSE = True

    def __init__(self, process: subprocess.Popen[bytes], stderr_tail: _Tail, *, timeout: float | None) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._stderr_tail = stderr_tail
        self._output_deadline = 0.0  # set by _interrupt
        super().__init__(process.stdout, timeout=timeout, name="stdio", peer="the stdio server")

    def _send(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

    def _describe_loss(self, error: OSError) -> OSError:
        try:
            returncode: int | None = self._process.wait(_STDIO_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            returncode = None
        self._stderr_tail.join(_STDIO_EXIT_WAIT)
        exited = ServerExitedError(returncode, self._stderr_tail.text())
        exited.__cause__ = error
        return exited

    def _interrupt(self) -> None:
        # The writer ends once it has sent the requests queued, then stdin closes and the
        # server answers them and exits. A server that reads no more, or does not exit, is
        # killed after 10 seconds, which also ends a write that waits for it.
        deadline = time.monotonic() + _STDIO_EXIT_TIMEOUT
        self._writer.join(timeout=_STDIO_EXIT_TIMEOUT)
        if self._writer.is_alive():
            self._process.kill()
            self._writer.join()
        try:
            self._stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self._process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The server has exited; its output and stderr end then, unless a process it started
        # holds them open: the rest of both is waited for at most _STDIO_OUTPUT_AFTER_EXIT.
        self._output_deadline = time.monotonic() + _STDIO_OUTPUT_AFTER_EXIT
        self._stderr_tail.join(_STDIO_OUTPUT_AFTER_EXIT)

    def _reader_wait(self) -> float:
        return max(0.0, self._output_deadline - time.monotonic())


class _FromEnvironment:
    """The type of PROXY_FROM_ENVIRONMENT."""

    def __repr__(self) -> str:
        return "PROXY_FROM_ENVIRONMENT"


PROXY_FROM_ENVIRONMENT = _FromEnvironment()
"""HttpTransport's default proxy: the one urllib would use, from the environment."""


def _parse_proxy(proxy: str, origin: str) -> tuple[str, tuple[str, int], dict[str, str]]:
    """Returns the scheme, address and Proxy-Authorization header (none without credentials)
    of a proxy URL; origin says where it came from in errors."""
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    # The URL stays out of the messages: it may hold a password.
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{origin} is a {parts.scheme}:// URL: only http:// and https:// proxies are supported (proxy=None connects directly)"
        )
    if not parts.hostname:
        raise ValueError(f"{origin} has no host")
    try:
        port = parts.port
    except ValueError:  # its message quotes the text after the last ':', a password's end perhaps
        raise ValueError(f"{origin} has no valid port (percent-encode / ? # in a password)") from None
    address = (parts.hostname, port or (443 if parts.scheme == "https" else 80))
    if not (parts.username or parts.password):
        return parts.scheme, address, {}
    credentials = urllib.parse.unquote(parts.username or "") + ":" + urllib.parse.unquote(parts.password or "")
    return parts.scheme, address, {"Proxy-Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii")}


class HttpTransport(_ClosedOnExit):
    """JSON-RPC over HTTP: each call is a POST to url (by default http://127.0.0.1:7401/), on a
    connection of its own.

    bearer_token, when given, is sent as "Authorization: Bearer <token>": the server takes the
    caller's token from it whenever a call leaves the token argument out, so one API key can
    serve every call. timeout bounds connecting and each wait for the server (None waits for
    ever).

    proxy chooses the HTTP proxy of the calls:

    - left out (PROXY_FROM_ENVIRONMENT): the one urllib would use, chosen when the transport
      is made: urllib.request.getproxies()[url's scheme] (http_proxy or https_proxy in the
      environment, either case; on macOS and Windows the system settings too), unless
      urllib.request.proxy_bypass(url's host:port) is true (no_proxy). As with urllib, a
      proxy set applies to 127.0.0.1 and localhost too unless no_proxy names them.
    - "http://[user:password@]host[:port]" (no scheme means http://, the port defaults to 80):
      that proxy.
    - None: no proxy, even when the environment sets one.

    Through a proxy, an http:// url is asked of the proxy by its absolute URI; an https:// url
    goes through a CONNECT tunnel with TLS to url's host inside it. user:password is sent to
    the proxy alone, as "Proxy-Authorization: Basic …" (on the CONNECT for a tunnel). An
    https:// proxy URL (port 443 by default) means what it means to urllib: TLS to the proxy
    for an http:// url, a plain-text CONNECT to it for an https:// url (no TLS inside TLS).
    Other schemes (socks5://, …), whether given or from the environment, raise ValueError
    here, never a direct connection.
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        timeout: float | None = 30.0,
        proxy: str | None | _FromEnvironment = PROXY_FROM_ENVIRONMENT,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r} is not http(s)://host[:port]/path")
        self.url = url
        self.bearer_token = bearer_token
        self.timeout = timeout
        host_port = parts.netloc.rpartition("@")[2]
        origin = "the proxy argument"
        if isinstance(proxy, _FromEnvironment):
            origin = f"the environment's {parts.scheme}_proxy"
            proxy = urllib.request.getproxies().get(parts.scheme)
            if proxy is not None and urllib.request.proxy_bypass(host_port):
                proxy = None
        # Where each call connects (url's host, or the proxy), the tunnel it asks the proxy
        # for, and the request's target and proxy headers.
        self._address: tuple[str, int | None] = (parts.hostname, parts.port)
        self._tunnel: tuple[str, int | None, dict[str, str]] | None = None
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._proxy_headers: dict[str, str] = {}
        proxy_scheme = ""
        if proxy is not None:
            proxy_scheme, self._address, authorization = _parse_proxy(proxy, origin)
            if parts.scheme == "https":
                self._tunnel = (parts.hostname, parts.port, authorization)
            else:
                self._target = f"http://{host_port}{self._target}"
                self._proxy_headers = authorization
        # TLS to url's host (directly or through the tunnel), else to an https:// proxy.
        tls = "https" in (parts.scheme, proxy_scheme)
        self._connection = http.client.HTTPSConnection if tls else http.client.HTTPConnection
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._in_flight: set[http.client.HTTPConnection] = set()
        self._closed = False

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise TransportClosedError("sessiond: transport closed")
            request_id = next(self._ids)
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._proxy_headers}
        if self.bearer_token:
            headers["Authorization"] = "Bearer " + self.bearer_token
        conn = self._connection(*self._address, timeout=self.timeout)
        if self._tunnel is not None:
            conn.set_tunnel(*self._tunnel)
        with self._lock:
            if self._closed:
                raise TransportClosedError("sessiond: transport closed")
            # Known before it connects: close ends a proxy's CONNECT and a TLS handshake too
            # (the plain socket is conn.sock while they run).
            self._in_flight.add(conn)
        connect_failure: OSError | None = None
        try:
            try:
                conn.connect()
            except OSError as exc:
                connect_failure = exc
                raise
            if self._closed:  # closed while conn.sock was still None
                raise TransportClosedError("sessiond: transport closed")
            conn.request("POST", self._target, body=_encode(request_id, method, params), headers=headers)
            response = conn.getresponse()
            # sessiond answers some faults (413, 503, …) with a JSON-RPC error body too.
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            if self._closed:
                raise TransportClosedError(f"sessiond: transport closed: no reply to {method}") from exc
            if isinstance(exc, http.client.HTTPException):
                # A reply cut short (IncompleteRead) or not HTTP at all: no reply, as for a
                # connection that failed, which callers catch as OSError.
                raise ConnectionError(f"sessiond: no complete HTTP reply to {method} from {self.url}: {exc!r}") from exc
            if exc is connect_failure and not isinstance(exc, TimeoutError):
                raise _naming(exc, f"sessiond: cannot connect to {self.url} for {method}") from exc
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"sessiond: no reply to {method} from {self.url} within {self.timeout} s") from exc
            raise _naming(exc, f"sessiond: no reply to {method} from {self.url}") from exc
        finally:
            with self._lock:
                self._in_flight.discard(conn)
            conn.close()
        reply = _decode(body)
        if reply is None:
            raise ConnectionError(f"sessiond: HTTP {status} from {self.url} to {method}: the reply is not a JSON-RPC response")
        return reply

    def close(self) -> None:
        """Refuses later calls; calls in flight raise TransportClosedError."""
        with self._lock:
            self._closed = True
            in_flight = list(self._in_flight)
        for conn in in_flight:
            sock = conn.sock  # None before it connects and once its call is over
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
