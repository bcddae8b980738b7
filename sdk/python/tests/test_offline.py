"""Tests of the Python SDK that need no server: a fake transport answers."""

from __future__ import annotations

import json
import socket
import threading
import time
import unittest
from datetime import datetime, timezone
from typing import Any

import sessiond
from sessiond import Client, LabelValue, Session


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

    def test_models_round_trip(self) -> None:
        session = Session.from_wire(SESSION)
        self.assertEqual(session.session_start_timestamp, datetime(2024, 10, 9, 5, 1, 23, tzinfo=timezone.utc))
        self.assertEqual(session.default_response_options.data_format, "arrays")
        self.assertEqual(session.to_wire(), SESSION)


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
        the call."""
        for before in (True, False):
            with self.subTest(before=before):
                server = socket.create_server(("127.0.0.1", 0))
                port = server.getsockname()[1]
                sent = threading.Event()

                def serve() -> None:
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
            transport = sessiond.HttpTransport(f"http://127.0.0.1:{port}/", timeout=5)
            with self.assertRaises(ConnectionError):
                Client(transport).ping_session(auth_token="x")
        finally:
            thread.join(5)
            server.close()


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
        transport = sessiond.HttpTransport(f"http://127.0.0.1:{self.port}/", timeout=30)
        caller, outcome = _call_in_thread(transport)
        self.acceptor.join(5)  # the connection is made
        time.sleep(0.2)  # and the request sent
        began = time.monotonic()
        transport.close()
        caller.join(5)
        self.assertLess(time.monotonic() - began, 2.0)
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0], sessiond.TransportClosedError)
        with self.assertRaises(sessiond.TransportClosedError):
            transport.call("pingSession", {})


class ReconnectTest(unittest.TestCase):
    def test_connects_again_after_a_close(self) -> None:
        """The next call after the server closed the connection (as sessiond closes idle ones)
        connects again; a refused connection keeps its refusal instead."""
        for refuse in (False, True):
            with self.subTest(refuse=refuse):
                server = socket.create_server(("127.0.0.1", 0))
                port = server.getsockname()[1]
                accepted: list[int] = []

                def serve() -> None:
                    while True:
                        try:
                            conn, _ = server.accept()
                        except OSError:
                            return
                        accepted.append(1)
                        with conn:
                            if refuse:
                                conn.sendall(REFUSAL)
                                continue
                            line = conn.makefile("rb").readline()
                            if line:
                                request_id = json.loads(line)["id"]
                                conn.sendall(b'{"jsonrpc":"2.0","id":%d,"result":{}}\n' % request_id)

                thread = threading.Thread(target=serve, daemon=True)
                thread.start()
                try:
                    transport = sessiond.TcpTransport(f"127.0.0.1:{port}", timeout=5)
                    with Client(transport) as client:
                        for _ in range(3):
                            if refuse:
                                transport._connection._reader.join(5)  # the refusal and the end have come
                                with self.assertRaises(sessiond.SessiondError) as caught:
                                    client.ping_session()
                                self.assertEqual(caught.exception.reason, "tooManyConnections")
                            else:
                                client.ping_session()
                                lost = transport._connection
                                lost._reader.join(5)  # the server has closed it, and the client seen it
                                lost._writer.join(5)
                                self.assertFalse(lost._writer.is_alive(), "the writer of a lost connection lingers")
                    self.assertEqual(len(accepted), 1 if refuse else 3)
                    with self.assertRaises(sessiond.TransportClosedError):
                        transport.call("pingSession", {})
                finally:
                    server.shutdown(socket.SHUT_RDWR)  # ends the accept (a close alone does not)
                    server.close()
                    thread.join(5)

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
