"""The SDK scenario against a live sessiond, over TCP, HTTP and stdio.

sdk/sdktest (go test ./sdk/sdktest) starts the server and runs these tests with its addresses
in SESSIOND_TCP_ADDR and SESSIOND_HTTP_URL, the admin password in SESSIOND_ADMIN_PASSWORD,
SESSIOND_RECORD_FILE, where every call is recorded for the Go test to check against the
schemas, and the sessiond command and test configuration in SESSIOND_BINARY and
SESSIOND_CONFIG, which the stdio tests start. Without them the tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable

import sessiond
from sessiond import Client, HttpTransport, LabelValue, ResponseOptions, StdioTransport, TcpTransport
from tests import requests_written

TCP_ADDR = os.environ.get("SESSIOND_TCP_ADDR", "")
HTTP_URL = os.environ.get("SESSIOND_HTTP_URL", "")
ADMIN_PASSWORD = os.environ.get("SESSIOND_ADMIN_PASSWORD", "")
RECORD_FILE = os.environ.get("SESSIOND_RECORD_FILE", "")
BINARY = os.environ.get("SESSIOND_BINARY", "")
CONFIG = os.environ.get("SESSIOND_CONFIG", "")
PASSWORD = "scenario-password"

_record_lock = threading.Lock()


class Recorder:
    """A transport that records every call and its reply in RECORD_FILE, one JSON line each."""

    def __init__(self, inner: sessiond.Transport, bearer: str | None = None) -> None:
        self.inner = inner
        self.bearer = bearer

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        reply = self.inner.call(method, params)
        record: dict[str, Any] = {"sdk": "python", "method": method, "params": params}
        if self.bearer:
            record["bearer"] = self.bearer
        if reply.get("error") is not None:
            record["error"] = reply["error"]
        else:
            record["result"] = reply.get("result")
        if RECORD_FILE:
            with _record_lock, open(RECORD_FILE, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        return reply

    def close(self) -> None:
        self.inner.close()


@unittest.skipUnless(
    TCP_ADDR and HTTP_URL and ADMIN_PASSWORD,
    "needs a live sessiond: run `go test ./sdk/sdktest`, which starts one",
)
class ScenarioTest(unittest.TestCase):
    """The scenario every SDK runs: an admin creates an account; the account logs in, describes
    and alters its session, tickles it, creates an API key, lists its sessions and revokes the
    key; then three errors come back typed."""

    def test_tcp(self) -> None:
        with Client(Recorder(TcpTransport(TCP_ADDR))) as client:
            self.run_scenario(client, "py-tcp", None)

    def test_http(self) -> None:
        # proxy=None: the server is the test's own, which a proxy set in the environment of
        # whoever runs the tests could not reach, or should not see.
        def with_bearer(token: str) -> Client:
            return Client(Recorder(HttpTransport(HTTP_URL, bearer_token=token, proxy=None), bearer=token))

        with Client(Recorder(HttpTransport(HTTP_URL, proxy=None))) as client:
            self.run_scenario(client, "py-http", with_bearer)

    @unittest.skipUnless(BINARY and CONFIG, "needs the sessiond command: run `go test ./sdk/sdktest`, which builds it")
    def test_stdio(self) -> None:
        transport = start_stdio("--in-memory")
        with Client(Recorder(transport)) as client:
            self.run_scenario(client, "py-stdio", None)
        self.assertIsNotNone(transport._process.poll(), "close returned before the server exited")

    def test_pipelining(self) -> None:
        """Many threads share one TCP connection; each call gets its own reply."""
        with Client(TcpTransport(TCP_ADDR)) as client:
            admin = client.create_session(username="admin", password=ADMIN_PASSWORD)
            sessions = [
                client.create_session(username="admin", password=ADMIN_PASSWORD, description=f"py pipelined {i}")
                for i in range(4)
            ]

            def describe(i: int) -> None:
                want = sessions[i % len(sessions)]
                got = client.describe_sessions(auth_token=admin.auth_token, session_ids=[want.session_id])
                self.assertEqual([s.description for s in got.sessions], [want.description])

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(describe, range(64)))

    def run_scenario(self, client: Client, user: str, with_bearer: Callable[[str], Client] | None) -> None:
        admin = client.create_session(username="admin", password=ADMIN_PASSWORD)
        account = client.create_account(
            auth_token=admin.auth_token,
            username=user,
            password=PASSWORD,
            account_description=f"made by the {user} scenario",
        )
        self.assertEqual(account.username, user)
        self.assertEqual(account.roles, [])
        self.assertIsNone(account.last_login_timestamp)
        self.assertIsInstance(account.created_timestamp, datetime)

        login = client.create_session(username=user, password=PASSWORD, description="scenario login")
        self.assertTrue(login.auth_token)
        self.assertEqual(login.username, user)
        self.assertFalse(login.permanent_session)
        self.assertIsNotNone(login.expires_at)

        described = client.describe_sessions(auth_token=login.auth_token, session_ids=[login.session_id])
        self.assertEqual([s.session_id for s in described.sessions], [login.session_id])
        self.assertEqual(described.sessions[0].description, "scenario login")

        altered = client.alter_session(
            auth_token=login.auth_token,
            description="altered",
            idle_connection_timeout_seconds=120,
            default_response_options=ResponseOptions(data_format="objects"),
        )
        self.assertEqual(altered.description, "altered")
        self.assertEqual(altered.idle_connection_timeout_seconds, 120)
        self.assertEqual(altered.default_response_options.data_format, "objects")

        # A tickle, with the authToken as the session key (the same kind of credential).
        now = datetime.now(timezone.utc).isoformat()
        self.assertIs(
            client.set_user_preference(session_key=login.auth_token, bean=LabelValue(label="TickleTime", value=now)),
            True,
        )
        # The NetX methods, positional on the wire.
        key = client.authenticate(login=user, password=PASSWORD)
        self.assertNotIn(key, ("", "-1"))
        self.assertTrue(client.set_user_preference(session_key=key, bean=LabelValue(label="color", value="blue")))
        self.assertEqual(client.get_user_preference(session_key=key, label="color"), "blue")
        self.assertIsNone(client.get_user_preference(session_key=key, label="unset"))
        self.assertTrue(client.logout(session_key=key))

        api_key = client.create_session(
            username=user, password=PASSWORD, description="scenario API key", permanent_session=True
        )
        self.assertTrue(api_key.permanent_session)
        self.assertEqual(api_key.idle_connection_timeout_seconds, -1)
        self.assertIsNone(api_key.expires_at)

        listed = client.list_sessions(auth_token=login.auth_token)
        ids = [s.session_id for s in listed.sessions]
        self.assertIn(login.session_id, ids)
        self.assertIn(api_key.session_id, ids)
        self.assertTrue(all(s.auth_token is None for s in listed.sessions), "listSessions shows tokens")
        if with_bearer is not None:
            # Over HTTP the API key can stand in for auth_token as a bearer token.
            with with_bearer(api_key.auth_token) as keyed:
                self.assertEqual(len(keyed.list_sessions().sessions), len(listed.sessions))
                self.assertTrue(keyed.set_user_preference(bean=LabelValue(label="TickleTime", value="x")))

        revoked = client.revoke_sessions(auth_token=login.auth_token, session_ids=[api_key.session_id])
        self.assertEqual(revoked.revoked, 1)
        with self.assertRaises(sessiond.InvalidAuthTokenError):
            client.ping_session(auth_token=api_key.auth_token)

        # Three errors, typed.
        with self.assertRaises(sessiond.InvalidCredentialsError) as bad_password:
            client.create_session(username=user, password="wrong")
        self.assertEqual(bad_password.exception.code, 450)
        self.assertEqual(bad_password.exception.reason, "invalidCredentials")
        with self.assertRaises(sessiond.InvalidAuthTokenError) as bad_token:
            client.ping_session(auth_token="not-a-token")
        self.assertEqual(bad_token.exception.code, 12031)
        with self.assertRaises(sessiond.InvalidParamsError) as bad_params:
            client.create_session(username="", password=PASSWORD)
        self.assertEqual(bad_params.exception.code, -32602)
        self.assertEqual(bad_params.exception.field, "username")
        self.assertIsInstance(bad_params.exception, sessiond.SessiondError)

        doc = client.discover()
        self.assertEqual(doc.openrpc, "1.3.2")
        self.assertIn("components", doc.extra)
        client.delete_session(auth_token=login.auth_token)
        self.assertEqual(client.drop_accounts(auth_token=admin.auth_token, usernames=[user]).dropped, [user])


if __name__ == "__main__":
    unittest.main()


def start_stdio(*args: str) -> StdioTransport:
    """Starts `sessiond serve --stdio` with the test configuration and extra arguments."""
    return StdioTransport(
        [BINARY, "serve", "--stdio", "--config", CONFIG, "--log-format", "json", *args],
        env={**os.environ, "SESSIOND_ADMIN_PASSWORD": ADMIN_PASSWORD},
        timeout=30,
    )


@unittest.skipUnless(BINARY and CONFIG and ADMIN_PASSWORD, "needs the sessiond command: run `go test ./sdk/sdktest`, which builds it")
class StdioTest(unittest.TestCase):
    def test_early_exit(self) -> None:
        """A stdio server that exits early (its data directory in use by another) fails calls,
        and close, with ServerExitedError holding its exit status and the end of its stderr."""
        data = tempfile.mkdtemp(prefix="sessiond-py-stdio-")
        try:
            with Client(start_stdio("--data", data)) as first:
                first.ping_session()  # it holds the data directory
                second = Client(start_stdio("--data", data))  # which the second finds in use
                for _ in range(2):
                    with self.assertRaises(sessiond.ServerExitedError) as caught:
                        second.ping_session()
                    self.assertEqual(caught.exception.returncode, 1)
                    self.assertIn("is in use by another process", caught.exception.stderr_tail)
                    self.assertRegex(str(caught.exception), r"^sessiond: the server exited \(exit status 1\); its stderr ends: .*in use")
                with self.assertRaises(sessiond.ServerExitedError):
                    second.close()
        finally:
            shutil.rmtree(data, ignore_errors=True)

    def test_close_lets_calls_in_flight_finish(self) -> None:
        """Closing lets the logins in flight get their sessions, and a call after close raises
        TransportClosedError."""
        # The default configuration: hashing the password takes a login tens of ms.
        transport = StdioTransport(
            [BINARY, "serve", "--stdio", "--in-memory"], env={**os.environ, "SESSIOND_ADMIN_PASSWORD": ADMIN_PASSWORD}, timeout=30
        )
        client = Client(transport)
        written = requests_written(transport)
        with ThreadPoolExecutor(3) as pool:
            logins = [pool.submit(client.create_session, username="admin", password=ADMIN_PASSWORD) for _ in range(3)]
            for _ in logins:
                self.assertTrue(written.acquire(timeout=30), "a login was not sent")
            client.close()
            for login in logins:
                self.assertTrue(login.result().auth_token)
        with self.assertRaises(sessiond.TransportClosedError):
            client.ping_session()

    def test_logs_go_to_stderr_file(self) -> None:
        """The server's stderr is copied to the file given, a text one too."""
        with tempfile.TemporaryFile("w+") as logs:
            transport = StdioTransport(
                [BINARY, "serve", "--stdio", "--in-memory", "--config", CONFIG, "--log-format", "json"],
                env={**os.environ, "SESSIOND_ADMIN_PASSWORD": ADMIN_PASSWORD},
                stderr=logs,
            )
            with Client(transport) as client:
                client.ping_session()
            logs.seek(0)
            self.assertIn('"msg":"sessiond ready"', logs.read())

    def test_missing_command(self) -> None:
        """A command that is not there raises FileNotFoundError at once."""
        with self.assertRaises(FileNotFoundError):
            StdioTransport(["/nonexistent/sessiond", "serve", "--stdio"])
