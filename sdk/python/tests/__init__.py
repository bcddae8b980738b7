"""What the test modules share."""

from __future__ import annotations

import threading

import sessiond


def requests_written(transport: sessiond.StdioTransport) -> threading.Semaphore:
    """Returns a semaphore released each time transport has written a request to its server,
    a call's sign that it is in flight. Call it before the calls."""
    connection = transport._connection
    written = threading.Semaphore(0)
    send = connection._send

    def counting_send(data: bytes) -> None:
        send(data)
        written.release()

    connection._send = counting_send  # type: ignore[method-assign]
    return written
