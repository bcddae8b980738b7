"""Tests of the Python SDK that need no server: a fake transport answers."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from unittest import mock

import sessiond
from sessiond import Client, LabelValue, Session, SessionWithToken
from tests import requests_written


class FakeTransport:
    """Answers every call with reply and remembers the params it was given."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.calls: list[tuple[str, Any]] = []

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        self.calls.append((method, params))
        return self.reply

    def close(self) -> None:
        pass


SESSION = {
    "authToken": "sdt_x",
    "sessionId": "ses_1",
    "username": "alice",
    "description": "",
    "defaultApi": "admin",
    "defaultDebug": "none",
    "defaultDatabaseName": "faircom",
    "defaultOwnerName": "admin",
    "defaultBinaryFormat": "hex",
    "defaultResponseOptions": {"binaryFormat": "hex", "dataFormat": "arrays", "numberFormat": "number"},
    "idleConnectionTimeoutSeconds": 3600,
    "idleCursorTimeoutSeconds": 600,
    "permanentSession": False,
    "origin": "createSession",
    "sessionStartTimestamp": "2024-10-09T05:01:23Z",
    "sessionLastAccessedTimestamp": "2024-10-09T05:01:23Z",
    "expiresAt": None,
    "clientAddress": "127.0.0.1",
    "hostname": "host",
    "hostUuid": "u",
    "hostIpAddresses": [],
    "defaultRetentionPolicy": "autoPurge",
    "defaultRetentionUnit": "week",
    "defaultRetentionPeriod": 4,
}


class OfflineTest(unittest.TestCase):
    def test_positional_params(self) -> None:
        """NetX methods send positional params, by name when the session key is left out."""
        fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "result": True})
        client = Client(fake)
        bean = LabelValue(label="TickleTime", value="now")
        self.assertTrue(client.set_user_preference(session_key="key", bean=bean))
        client.set_user_preference(bean=bean)
        client.authenticate(login="alice", password="")
        client.logout()
        self.assertEqual(
            fake.calls,
            [
                ("setUserPreference", ["key", {"label": "TickleTime", "value": "now"}]),
                ("setUserPreference", {"bean": {"label": "TickleTime", "value": "now"}}),
                ("authenticate", ["alice", ""]),
                ("logout", {}),
            ],
        )

    def test_named_params_leave_out_none(self) -> None:
        fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "result": SESSION})
        Client(fake).create_session(username="alice", password="pw", permanent_session=False)
        self.assertEqual(fake.calls, [("createSession", {"username": "alice", "password": "pw", "permanentSession": False})])

    def test_errors_are_typed(self) -> None:
        fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "error": {"code": 12031, "message": "m", "data": {"reason": "invalidAuthToken"}}})
        with self.assertRaises(sessiond.InvalidAuthTokenError) as caught:
            Client(fake).ping_session(auth_token="x")
        self.assertEqual((caught.exception.code, caught.exception.reason), (12031, "invalidAuthToken"))
        unknown = sessiond.error_from_wire({"code": 7, "message": "new"})
        self.assertIs(type(unknown), sessiond.SessiondError)
        self.assertEqual(str(unknown), "new (code 7)")
        refused = sessiond.error_from_wire({"code": -32000, "message": "Server unavailable", "data": {"reason": "tooManyConnections"}})
        self.assertEqual(str(refused), "Server unavailable (code -32000): tooManyConnections")

    def test_str_for_a_list_param_is_a_type_error(self) -> None:
        """Every list parameter of every method refuses a str or bytes (which list() would split
        into characters) with a TypeError naming it, and sends nothing; a tuple is a list."""
        list_params = 0
        for name, method in inspect.getmembers(Client, inspect.isfunction):
            if name.startswith("_") or name in ("call", "close"):
                continue
            params = list(inspect.signature(method).parameters.values())[1:]
            required = {
                p.name: LabelValue(label="l", value="v") if p.annotation == "LabelValue" else "x"
                for p in params
                if p.default is inspect.Parameter.empty and not p.annotation.startswith("list[")
            }
            for param in params:
                if not param.annotation.startswith("list["):
                    continue
                list_params += 1
                value = "admin" if "Literal" in param.annotation else "bob"
                for wrong in (value, value.encode()):
                    with self.subTest(method=name, param=param.name, value=wrong):
                        fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "result": {}})
                        with self.assertRaisesRegex(TypeError, rf"^{param.name} must be a list, not (str|bytes)$"):
                            getattr(Client(fake), name)(**required, **{param.name: wrong})
                        self.assertEqual(fake.calls, [])
                fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "m"}})
                with self.assertRaises(sessiond.InvalidParamsError):
                    getattr(Client(fake), name)(**required, **{param.name: (value,)})
                wire = fake.calls[0][1]
                sent = wire if isinstance(wire, dict) else {}
                self.assertIn([value], sent.values(), f"{name}({param.name}=({value!r},)) sent {wire}")
        self.assertGreaterEqual(list_params, 10)  # the ten of this API when written

    def test_models_round_trip(self) -> None:
        session = Session.from_wire(SESSION)
        self.assertEqual(session.session_start_timestamp, datetime(2024, 10, 9, 5, 1, 23, tzinfo=timezone.utc))
        self.assertEqual(session.default_response_options.data_format, "arrays")
        self.assertEqual(session.to_wire(), SESSION)

    def test_session_with_token_is_a_session(self) -> None:
        """A login's SessionWithToken is a Session whose auth_token is required; it reads and
        writes the same JSON object as before, members it does not know left out."""
        fake = FakeTransport({"jsonrpc": "2.0", "id": 1, "result": {**SESSION, "newMember": 1}})
        login = Client(fake).create_session(username="alice", password="pw")
        self.assertIsInstance(login, SessionWithToken)
        self.assertIsInstance(login, Session)
        self.assertEqual(login.auth_token, "sdt_x")
        self.assertEqual(login.to_wire(), SESSION)
        without_token = {name: value for name, value in SESSION.items() if name != "authToken"}
        with self.assertRaises(KeyError):
            SessionWithToken.from_wire(without_token)
        members = {f.name: getattr(login, f.name) for f in dataclasses.fields(login) if f.name != "auth_token"}
        with self.assertRaises(TypeError):
            SessionWithToken(**members)
        self.assertIsNone(Session(**members).auth_token)


if __name__ == "__main__":
    unittest.main()


REFUSAL = (
    b'{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable",'
    b'"data":{"reason":"tooManyConnections","limit":1}},"id":null}\n'
)


class RefusedConnectionTest(unittest.TestCase):
    def test_refusal_is_the_error(self) -> None:
        """A connection the server refuses (an error with id null, then the end of the stream)
        fails calls with that error, not a lost connection, whether it comes before or after
        the call (before it, the call connects again and is refused again)."""
        for before in (True, False):
            with self.subTest(before=before):
                server = socket.create_server(("127.0.0.1", 0))
                port = server.getsockname()[1]
                sent = threading.Event()

                def serve() -> None:
                    for _ in range(2 if before else 1):
                        conn, _ = server.accept()
                        with conn:
                            if not before:
                                conn.makefile("rb").readline()
                            conn.sendall(REFUSAL)
                            sent.set()

                thread = threading.Thread(target=serve)
                thread.start()
                try:
                    with Client(sessiond.TcpTransport(f"127.0.0.1:{port}", timeout=5)) as client:
                        if before:
                            sent.wait(5)
                            time.sleep(0.1)  # the reader has read it and the end
                        with self.assertRaises(sessiond.SessiondError) as caught:
                            client.ping_session()
                        self.assertEqual(caught.exception.code, -32000)
                        self.assertEqual(caught.exception.reason, "tooManyConnections")
                finally:
                    thread.join(5)
                    server.close()



class StdioTailTest(unittest.TestCase):
    def test_exit_quotes_the_last_4_kib_of_stderr(self) -> None:
        """A stdio server that exits is reported with the last 4 KiB of its stderr, as in the
        Go SDK."""
        # 40 lines of 100 bytes: all of them fit in 4 KiB, the first would not in 2.
        script = "import sys\nfor i in range(40): sys.stderr.write(f'line {i:02} ' + 'x' * 91 + '\\n')\nsys.exit(3)"
        transport = sessiond.StdioTransport([sys.executable, "-c", script], timeout=5)
        try:
            with self.assertRaises(sessiond.ServerExitedError) as caught:
                transport.call("pingSession", {})
            self.assertRegex(caught.exception.stderr_tail, r"^line 00 x+\nline 01 ")
            self.assertRegex(caught.exception.stderr_tail, r"line 39 x+$")
        finally:
            with contextlib.suppress(sessiond.ServerExitedError):
                transport.close()


class StdioCloseTest(unittest.TestCase):
    def test_call_left_unanswered_raises_closed(self) -> None:
        """A call that the server exits without answering after close raises
        TransportClosedError."""
        # A server that reads its input to the end and exits, answering nothing.
        transport = sessiond.StdioTransport([sys.executable, "-c", "import sys; sys.stdin.buffer.read()"], timeout=5)
        written = requests_written(transport)
        with ThreadPoolExecutor(1) as pool:
            unanswered = pool.submit(transport.call, "pingSession", {})
            self.assertTrue(written.acquire(timeout=5), "the call was not sent")
            transport.close()
            with self.assertRaises(sessiond.TransportClosedError):
                unanswered.result()


    def test_close_with_a_process_holding_the_output(self) -> None:
        """close returns about a second after the server's exit even when a process the server
        started holds its output open, and the call answered before the exit has its reply."""
        # A server that starts a long-lived child (inheriting its stdout and stderr), writes
        # the child's pid to the file named by its argument, answers one request, and exits
        # at the end of its input.
        script = (
            "import json, pathlib, subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "pathlib.Path(sys.argv[1]).write_text(str(child.pid))\n"
            "request = json.loads(sys.stdin.buffer.readline())\n"
            "sys.stdout.write(json.dumps({'jsonrpc': '2.0', 'id': request['id'], 'result': {}}) + '\\n')\n"
            "sys.stdout.flush()\n"
            "sys.stdin.buffer.read()\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            pid_file = os.path.join(tmp, "child.pid")
            transport = sessiond.StdioTransport([sys.executable, "-c", script, pid_file], timeout=5)
            try:
                self.assertEqual(transport.call("pingSession", {}).get("result"), {})
                closing = threading.Thread(target=transport.close, daemon=True)
                closing.start()
                closing.join(3)
                self.assertFalse(closing.is_alive(), "close has not returned 3 s after it began")
            finally:
                with contextlib.suppress(OSError, ValueError):
                    with open(pid_file) as f:
                        os.kill(int(f.read()), signal.SIGTERM)


class ErrorsNameWhatFailedTest(unittest.TestCase):
    def test_tcp_connect_failure_names_the_address(self) -> None:
        """A TCP connect that fails raises the OSError of its cause (ConnectionRefusedError),
        with its errno, saying which address it could not reach."""
        port = _closed_port()
        with self.assertRaises(ConnectionRefusedError) as caught:
            sessiond.TcpTransport(f"127.0.0.1:{port}", timeout=5)
        self.assertIsNotNone(caught.exception.errno)
        self.assertIn(f"sessiond: cannot connect to 127.0.0.1:{port}: ", str(caught.exception))

    def test_http_connect_failure_names_the_url_and_method(self) -> None:
        """An HTTP call whose connect fails raises the OSError of its cause, naming the URL and the method."""
        port = _closed_port()
        transport = sessiond.HttpTransport(f"http://127.0.0.1:{port}/", timeout=5, proxy=None)
        with self.assertRaises(ConnectionRefusedError) as caught:
            transport.call("pingSession", {})
        self.assertIn(f"sessiond: cannot connect to http://127.0.0.1:{port}/ for pingSession: ", str(caught.exception))

    def test_timeouts_name_the_method_and_the_server(self) -> None:
        """A call without a reply in time raises TimeoutError naming the method and the address
        or URL, over TCP and HTTP."""
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []

        def serve() -> None:  # accepts, and never answers
            for _ in range(2):
                accepted.append(server.accept()[0])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with sessiond.TcpTransport(f"127.0.0.1:{port}", timeout=0.2) as tcp:
                with self.assertRaisesRegex(TimeoutError, rf"^sessiond: no reply to pingSession from 127\.0\.0\.1:{port} within 0\.2 s$"):
                    tcp.call("pingSession", {})
            http = sessiond.HttpTransport(f"http://127.0.0.1:{port}/", timeout=0.2, proxy=None)
            with self.assertRaisesRegex(TimeoutError, rf"^sessiond: no reply to pingSession from http://127\.0\.0\.1:{port}/ within 0\.2 s$"):
                http.call("pingSession", {})
        finally:
            thread.join(5)
            for conn in accepted:
                conn.close()
            server.close()


def _closed_port() -> int:
    """Returns a loopback port that nothing listens on (a server's, closed)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        return int(server.getsockname()[1])


class CutHttpReplyTest(unittest.TestCase):
    def test_cut_reply_is_a_connection_error(self) -> None:
        """An HTTP reply cut short (fewer bytes than its Content-Length) raises ConnectionError,
        an OSError as a failed connection is, not http.client's IncompleteRead."""
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                request = conn.makefile("rb")  # read it all: unread input would reset the connection
                length = 0
                for line in iter(request.readline, b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request.read(length)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":\"2.0\",")

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            transport = sessiond.HttpTransport(f"http://127.0.0.1:{port}/", timeout=5, proxy=None)
            with self.assertRaises(ConnectionError):
                Client(transport).ping_session(auth_token="x")
        finally:
            thread.join(5)
            server.close()


def _close_fails_the_call(
    test: unittest.TestCase, transport: Any, caller: threading.Thread, outcome: list[BaseException]
) -> None:
    """Closes transport and checks that the call of _call_in_thread ends at once with
    TransportClosedError."""
    began = time.monotonic()
    transport.close()
    caller.join(5)
    test.assertLess(time.monotonic() - began, 2.0)
    test.assertEqual(len(outcome), 1)
    test.assertIsInstance(outcome[0], sessiond.TransportClosedError)


def _call_in_thread(transport: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Starts a pingSession call on transport in a thread of its own; the list gets what the
    call raises."""
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            transport.call("pingSession", {})
        except BaseException as exc:  # noqa: BLE001 - the caller checks it
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


class StalledServerTest(unittest.TestCase):
    """A server that accepts one connection and neither reads nor answers."""

    def setUp(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.acceptor = threading.Thread(target=lambda: self.accepted.append(self.server.accept()[0]))
        self.acceptor.start()

    def tearDown(self) -> None:
        self.acceptor.join(5)
        for conn in self.accepted:
            conn.close()
        self.server.close()

    def test_tcp_timeout_covers_sending(self) -> None:
        """Calls whose requests a server does not read (the socket's buffers full) fail at their
        timeout like calls it does not answer, a small call queued behind them too."""
        transport = sessiond.TcpTransport(f"127.0.0.1:{self.port}", timeout=1)
        try:
            results: list[tuple[type[BaseException] | None, float]] = []
            lock = threading.Lock()

            def call(size: int) -> None:
                began = time.monotonic()
                try:
                    transport.call("setUserPreference", {"label": "big", "value": "x" * size})
                    outcome: type[BaseException] | None = None
                except BaseException as exc:  # noqa: BLE001 - recorded and checked below
                    outcome = type(exc)
                with lock:
                    results.append((outcome, time.monotonic() - began))

            callers = [threading.Thread(target=call, args=(1 << 20,)) for _ in range(16)]
            callers.append(threading.Thread(target=call, args=(10,)))
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(10)
            self.assertEqual(len(results), len(callers), "calls still blocked")
            for outcome, took in results:
                self.assertIs(outcome, TimeoutError)
                self.assertLess(took, 3.0)
        finally:
            transport.close()

    def test_http_close_fails_calls_in_flight(self) -> None:
        """Closing an HTTP transport fails its call in flight at once and refuses later calls."""
        transport = sessiond.HttpTransport(f"http://127.0.0.1:{self.port}/", timeout=30, proxy=None)
        caller, outcome = _call_in_thread(transport)
        self.acceptor.join(5)  # the connection is made
        time.sleep(0.2)  # and the request sent
        _close_fails_the_call(self, transport, caller, outcome)
        with self.assertRaises(sessiond.TransportClosedError):
            transport.call("pingSession", {})


class FakeServer:
    """A TCP server on a free loopback port, for the duration of a with block, that hands each
    connection it accepts to handle(conn, n), n counting the connections from 1, one at a time."""

    def __init__(self, handle: Callable[[socket.socket, int], None], backlog: int = 0) -> None:
        self.handle = handle
        self.accepted = 0
        self.server = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            self.handle(conn, self.accepted)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # ends the accept (a close alone does not)
        self.server.close()
        self.thread.join(5)


def answer_pings(conn: socket.socket, most: int | None = None) -> None:
    """Answers the requests on conn with empty results, at most most of them, then closes it."""
    with conn, conn.makefile("rb") as lines:
        for answered, line in enumerate(lines, 1):
            request_id = json.loads(line)["id"]
            conn.sendall(b'{"jsonrpc":"2.0","id":%d,"result":{}}\n' % request_id)
            if answered == most:
                return


class ReconnectTest(unittest.TestCase):
    def test_connects_again_after_a_close(self) -> None:
        """The next call after the server closed the connection (as sessiond closes idle ones)
        connects again."""
        with FakeServer(lambda conn, _: answer_pings(conn, most=1)) as server:
            transport = sessiond.TcpTransport(server.address, timeout=5)
            with Client(transport) as client:
                for _ in range(3):
                    client.ping_session()
                    lost = transport._connection
                    lost._reader.join(5)  # the server has closed it, and the client seen it
                    lost._writer.join(5)
                    self.assertFalse(lost._writer.is_alive(), "the writer of a lost connection lingers")
            self.assertEqual(server.accepted, 3)
            with self.assertRaises(sessiond.TransportClosedError):
                transport.call("pingSession", {})

    def test_connects_again_after_a_refusal(self) -> None:
        """After the server refused the connection before any call (tooManyConnections), each
        call connects again: it fails with the refusal while the server refuses, and works once
        the server accepts."""
        refusing = threading.Event()
        refusing.set()

        def handle(conn: socket.socket, _: int) -> None:
            if refusing.is_set():
                with conn:
                    conn.sendall(REFUSAL)
                return
            answer_pings(conn)

        with FakeServer(handle) as server:
            transport = sessiond.TcpTransport(server.address, timeout=5)
            with Client(transport) as client:
                transport._connection._reader.join(5)  # the refusal and the end have come
                with self.assertRaises(sessiond.ServerUnavailableError) as caught:
                    client.ping_session()  # on a connection of its own, refused too
                self.assertEqual(caught.exception.reason, "tooManyConnections")
                self.assertEqual(server.accepted, 2)
                transport._connection._reader.join(5)
                refusing.clear()  # a slot is free
                client.ping_session()
                client.ping_session()
                self.assertEqual(server.accepted, 3)

    def test_refusal_fails_every_waiting_call(self) -> None:
        """A refusal that comes while several pipelined calls wait fails each of them with it
        (ServerUnavailableError, not a lost connection), and the next call connects again."""
        refusal = REFUSAL.replace(b'"tooManyConnections","limit":1', b'"shuttingDown"')

        def handle(conn: socket.socket, n: int) -> None:
            if n > 1:
                answer_pings(conn)
                return
            with conn, conn.makefile("rb") as lines:
                for _ in range(3):
                    lines.readline()  # the three calls wait
                conn.sendall(refusal)  # and the server runs none of them

        with FakeServer(handle) as server, Client(sessiond.TcpTransport(server.address, timeout=5)) as client:
            errors: list[BaseException | None] = [None] * 3

            def call(index: int) -> None:
                try:
                    client.ping_session()
                except BaseException as exc:  # checked below
                    errors[index] = exc

            callers = [threading.Thread(target=call, args=(i,)) for i in range(3)]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(10)
            for error in errors:
                self.assertIsInstance(error, sessiond.ServerUnavailableError)
                assert isinstance(error, sessiond.ServerUnavailableError)
                self.assertEqual(error.reason, "shuttingDown")
            client.ping_session()
            self.assertEqual(server.accepted, 2)

    def test_calls_after_a_loss_share_one_connect(self) -> None:
        """Eight threads calling at once after the connection was lost open one connection
        between them, not one each."""

        def handle(conn: socket.socket, n: int) -> None:
            if n == 1:
                conn.close()  # the first connection is lost
                return
            threading.Thread(target=answer_pings, args=(conn,), daemon=True).start()

        with FakeServer(handle, backlog=16) as server:

            class SlowTcpConnection(sessiond.transport._TcpConnection):
                """Connects after a pause, so that every thread finds the connection lost before
                any connect again ends."""

                def __init__(self, address: str, *, timeout: float | None = 30.0) -> None:
                    if server.accepted:
                        time.sleep(0.2)
                    super().__init__(address, timeout=timeout)

            with mock.patch.object(sessiond.transport, "_TcpConnection", SlowTcpConnection):
                transport = sessiond.TcpTransport(server.address, timeout=5)
                with Client(transport) as client:
                    transport._connection._reader.join(5)  # the loss has come
                    start = threading.Barrier(8)
                    failures: list[BaseException] = []

                    def call() -> None:
                        start.wait(5)
                        try:
                            client.ping_session()
                        except BaseException as exc:  # checked below
                            failures.append(exc)

                    callers = [threading.Thread(target=call) for _ in range(8)]
                    for caller in callers:
                        caller.start()
                    for caller in callers:
                        caller.join(10)
                    self.assertEqual(failures, [])
                    self.assertEqual(server.accepted, 2)  # the first and the one connect again

    def test_close_does_not_wait_for_a_connect(self) -> None:
        """close() returns at once while a call connects again to a server whose new
        connections hang (a backlog of 0, with one connection waiting to be accepted)."""
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        transport = sessiond.TcpTransport(f"127.0.0.1:{port}", timeout=3)
        first, _ = server.accept()
        first.close()  # as an idle connection is closed
        transport._connection._reader.join(5)
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))  # waits to be accepted: the queue is full
            caller, outcome = _call_in_thread(transport)
            time.sleep(0.2)  # the call is connecting
            began = time.monotonic()
            transport.close()
            self.assertLess(time.monotonic() - began, 1.0)
            caller.join(10)
            self.assertEqual(len(outcome), 1)
            self.assertIsInstance(outcome[0], OSError)  # the connect's timeout, or the close
        finally:
            filler.close()
            server.close()


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers a JSON-RPC POST with what the server got: its path and headers (names in lower
    case)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {name.lower(): value for name, value in self.headers.items()}
        result = {"path": self.path, "headers": headers}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@contextlib.contextmanager
def _echo_server(context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Runs an _EchoHandler server on 127.0.0.1, over TLS with context, and yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}/rpc"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copies source to sink until source ends, then ends sink's sending side."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Proxy:
    """A tiny HTTP proxy on 127.0.0.1 (over TLS with context) that records the head of each
    request it gets in heads, as (request line, headers with names in lower case), then:
    "forward" sends an absolute-URI request on to its host and makes a CONNECT a tunnel,
    "hold" waits for the client to hang up, "drop" hangs up."""

    def __init__(self, mode: str = "forward", context: ssl.SSLContext | None = None) -> None:
        self.mode, self.context = mode, context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        self.heads: list[tuple[str, dict[str, str]]] = []
        self.received = threading.Event()  # set once a head is recorded
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def __enter__(self) -> _Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # ends the accept (a close alone does not)
        self.listener.close()
        self.acceptor.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            with conn.makefile("rb") as stream:
                lines: list[str] = []
                while (line := stream.readline()) not in (b"\r\n", b""):
                    lines.append(line.decode("latin-1").rstrip("\r\n"))
                if not lines:
                    return
                headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
                self.heads.append((lines[0], headers))
                self.received.set()
                if self.mode == "hold":
                    stream.read()
                elif self.mode == "forward":
                    self._forward(conn, stream, lines, headers)
        finally:
            conn.close()

    def _forward(self, conn: socket.socket, stream: Any, lines: list[str], headers: dict[str, str]) -> None:
        method, target, version = lines[0].split()
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port))) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                inbound = threading.Thread(target=_pipe, args=(conn, upstream))
                inbound.start()
                _pipe(upstream, conn)
                inbound.join(5)
            return
        url = urllib.parse.urlsplit(target)
        body = stream.read(int(headers.get("content-length", 0)))
        head = [f"{method} {url.path or '/'} {version}"]
        head += [line for line in lines[1:] if not line.lower().startswith("proxy-authorization:")]
        with socket.create_connection((url.hostname, url.port or 80)) as upstream:
            upstream.sendall("\r\n".join(head + ["", ""]).encode("latin-1") + body)
            _pipe(upstream, conn)


def _server_context(certificate: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    return context


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


class ProxyTest(unittest.TestCase):
    """HttpTransport through an HTTP proxy, in an environment without proxy settings but the
    ones a test makes."""

    def setUp(self) -> None:
        environment = mock.patch.dict(os.environ)  # restores the environment after the test
        environment.start()
        self.addCleanup(environment.stop)
        for name in list(os.environ):
            if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
                del os.environ[name]

    def certificate(self) -> str | None:
        """Makes a self-signed certificate for 127.0.0.1 with the openssl command, if there is
        one, and returns the file of it and its key, removed after the test."""
        if shutil.which("openssl") is None:
            return None
        directory = tempfile.TemporaryDirectory(prefix="sessiond-test-")
        self.addCleanup(directory.cleanup)
        path = os.path.join(directory.name, "localhost.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path, "-out", path, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        return path

    def test_explicit_proxy_gets_the_absolute_uri(self) -> None:
        """A call through a given proxy reaches the server, the proxy getting the absolute URI and the URL's credentials."""
        with _echo_server() as url, _Proxy() as proxy:
            proxied = f"http://al%40ice:pa%3Ass@127.0.0.1:{proxy.port}"
            reply = sessiond.HttpTransport(url, bearer_token="key", timeout=5, proxy=proxied).call("pingSession", {})
        self.assertEqual(proxy.heads[0][0], f"POST {url} HTTP/1.1")
        self.assertEqual(proxy.heads[0][1].get("proxy-authorization"), _basic("al@ice:pa:ss"))
        self.assertEqual(reply["result"]["path"], "/rpc")
        self.assertEqual(reply["result"]["headers"].get("authorization"), "Bearer key")

    def test_environment_proxy_and_no_proxy(self) -> None:
        """By default the proxy is urllib's choice from the environment: http_proxy, unless no_proxy names the host."""
        with _echo_server() as url, _Proxy() as proxy:
            os.environ["HTTP_PROXY"] = proxy.url
            sessiond.HttpTransport(url, timeout=5).call("pingSession", {})
            self.assertEqual([line for line, _ in proxy.heads], [f"POST {url} HTTP/1.1"])
            sessiond.HttpTransport(url, timeout=5, proxy=None).call("pingSession", {})
            os.environ["NO_PROXY"] = "example.com, 127.0.0.1"
            sessiond.HttpTransport(url, timeout=5).call("pingSession", {})
            self.assertEqual(len(proxy.heads), 1, "proxy=None or no_proxy went through the proxy")

    def test_close_fails_a_call_waiting_in_the_proxy(self) -> None:
        """close() at once fails with TransportClosedError a call the proxy holds, waiting for its reply or its CONNECT's."""
        with socket.create_server(("127.0.0.1", 0)) as unused:
            port = unused.getsockname()[1]  # nothing listens there: a direct call fails at once
        for scheme in ("http", "https"):
            with self.subTest(scheme=scheme), _Proxy("hold") as proxy:
                transport = sessiond.HttpTransport(f"{scheme}://127.0.0.1:{port}/", timeout=30, proxy=proxy.url)
                caller, outcome = _call_in_thread(transport)
                self.assertTrue(proxy.received.wait(5), "the call did not reach the proxy")
                _close_fails_the_call(self, transport, caller, outcome)

    def test_unsupported_proxy_scheme_is_refused(self) -> None:
        """A socks5:// proxy or one whose port does not parse, given or from the environment, raises ValueError without the password."""
        for proxy in ("socks5://alice:secret@127.0.0.1:1080", "http://alice:se:cret#x@127.0.0.1:3128"):
            with self.subTest(proxy=proxy), self.assertRaises(ValueError) as caught:
                sessiond.HttpTransport("http://127.0.0.1:7401/", proxy=proxy)
            self.assertNotIn("cret", str(caught.exception))
        os.environ["HTTPS_PROXY"] = "socks5h://127.0.0.1:1080"
        with self.assertRaises(ValueError):
            sessiond.HttpTransport("https://127.0.0.1:7401/")

    def test_https_goes_through_a_connect_tunnel(self) -> None:
        """An https:// call asks the proxy for a CONNECT tunnel, with the credentials, and runs TLS to the server through it."""
        certificate = self.certificate()
        if certificate is None:  # no TLS server: a proxy that records the CONNECT and hangs up
            with _Proxy("drop") as proxy, self.assertRaises(OSError):
                sessiond.HttpTransport("https://127.0.0.1:7401/", timeout=5, proxy=f"http://u:p@127.0.0.1:{proxy.port}").call("pingSession", {})
            self.assertEqual(proxy.heads[0][0].rpartition(" ")[0], "CONNECT 127.0.0.1:7401")
            self.assertEqual(proxy.heads[0][1].get("proxy-authorization"), _basic("u:p"))
            return
        os.environ["SSL_CERT_FILE"] = certificate  # the client trusts the test's certificate
        with _echo_server(_server_context(certificate)) as url, _Proxy() as proxy:
            reply = sessiond.HttpTransport(url, timeout=5, proxy=f"http://u:p@127.0.0.1:{proxy.port}").call("pingSession", {})
        port = urllib.parse.urlsplit(url).port
        self.assertEqual(proxy.heads[0][0].rpartition(" ")[0], f"CONNECT 127.0.0.1:{port}")
        self.assertEqual(proxy.heads[0][1].get("proxy-authorization"), _basic("u:p"))
        self.assertEqual(reply["result"]["path"], "/rpc")
        self.assertNotIn("proxy-authorization", reply["result"]["headers"])

    def test_https_proxy_is_reached_over_tls(self) -> None:
        """An https:// proxy URL means TLS to the proxy for an http:// server, as urllib has it."""
        certificate = self.certificate()
        if certificate is None:  # no TLS proxy: a listener that checks a TLS handshake begins
            with socket.create_server(("127.0.0.1", 0)) as listener:
                first: list[bytes] = []

                def accept() -> None:
                    with contextlib.suppress(OSError), listener.accept()[0] as conn:
                        first.append(conn.recv(1))

                listener.settimeout(5)
                accepter = threading.Thread(target=accept)
                accepter.start()
                with self.assertRaises(OSError):
                    proxied = f"https://127.0.0.1:{listener.getsockname()[1]}"
                    sessiond.HttpTransport("http://127.0.0.1:7401/", timeout=5, proxy=proxied).call("pingSession", {})
                accepter.join(5)
            self.assertEqual(first, [b"\x16"])  # a TLS handshake record
            return
        os.environ["SSL_CERT_FILE"] = certificate  # the client trusts the test's certificate
        with _echo_server() as url, _Proxy(context=_server_context(certificate)) as proxy:
            reply = sessiond.HttpTransport(url, timeout=5, proxy=proxy.url).call("pingSession", {})
        self.assertEqual(proxy.heads[0][0], f"POST {url} HTTP/1.1")
        self.assertEqual(reply["result"]["path"], "/rpc")
