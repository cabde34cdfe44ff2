"""
The Python SDK facing a hostile node (or a man in the middle): answers that drip without end,
redirects to another host, refusals that are retried, event-stream fields a client cannot take
(a ``retry:`` of thousands of digits, a cursor that is no header value, a line without an end).
Each case runs against a small scripted server on 127.0.0.1 that speaks raw HTTP/1.1. Runs
without a node.

Each test plays an attack and states the defence that holds against it, kept as a regression test
(those first written as ``test_FINDING_…`` failed until their fix was in).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyberspace.client import MIN_SERVER_RETRY_DELAY  # noqa: E402
from cyberspace import (  # noqa: E402
    ApiProblem,
    Client,
    ConnectionFailed,
    CyberspaceError,
    EventTooLarge,
    InvalidResponse,
    RequestTimedOut,
)

TOKEN = "agent-t0ken-that-must-stay-home"


def event(cursor: str) -> bytes:
    body = {"cursor": cursor, "hlc": [1, 0], "source": "board", "type": "claim", "subject": "b/t", "data": {}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Conn:
    """One accepted connection: the request read, and ways to answer it byte by byte."""

    def __init__(self, sock: socket.socket, request: Dict[str, Any], done: threading.Event) -> None:
        self.sock = sock
        self.request = request
        self.done = done

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def head(self, status: str, headers: Dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()] + ["", ""]
        self.send("\r\n".join(lines).encode())

    def stream(self) -> None:
        self.head("200 OK", {"Content-Type": "text/event-stream", "Connection": "close"})

    def hold(self, seconds: float = 10.0) -> None:
        self.done.wait(seconds)


Script = Callable[[Conn, int], None]


class RawServer:
    """Accepts connections on 127.0.0.1, reads each request's head, and hands it to ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: List[Dict[str, Any]] = []
        self.done = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                more = sock.recv(4096)
                if not more:
                    return
                data += more
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            with self.lock:
                n = len(self.requests)
                request = {"method": method, "target": target, "headers": headers, "at": time.monotonic()}
                self.requests.append(request)
            self.script(Conn(sock, request, self.done), n)
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.done.set()
        self.listener.close()


class AttackCase(unittest.TestCase):
    def serve(self, script: Script) -> RawServer:
        server = RawServer(script)
        self.addCleanup(server.stop)
        return server

    def run_bounded(self, work: Callable[[], Any], limit: float) -> Dict[str, Any]:
        """Runs ``work`` in a thread; answers its value or error, or ``hung`` if it is still running after ``limit`` s."""
        outcome: Dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = work()
            except BaseException as err:  # noqa: BLE001 - what the call raised is the point
                outcome["error"] = err

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(limit)
        if thread.is_alive():
            outcome["hung"] = True
        return outcome


class TimeoutTest(AttackCase):
    def test_a_request_timeout_bounds_the_whole_answer_not_each_read(self) -> None:
        sent: List[int] = [0]

        def script(c: Conn, n: int) -> None:
            c.head("200 OK", {"Content-Type": "application/json", "Content-Length": "400"})
            # one byte every 0.1 s: each read is quick, the answer never ends (bounded: 300 bytes, 30 s)
            for _ in range(300):
                if c.done.wait(0.1) or not c.send(b" "):
                    return
                sent[0] += 1

        server = self.serve(script)
        client = Client(server.url, TOKEN, timeout=0.5)
        outcome = self.run_bounded(client.whoami, 8.0)
        self.assertNotIn(
            "hung",
            outcome,
            f"whoami() with timeout=0.5 s was still reading after 8 s ({sent[0]} bytes dripped): "
            "the timeout bounds each socket read, not the request",
        )
        self.assertIsInstance(outcome.get("error"), RequestTimedOut)

    def test_a_request_timeout_bounds_headers_that_drip_too(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.send(b"HTTP/1.1 200 OK\r\n")
            # one header line every 0.1 s (bounded: 300 lines, 30 s)
            for i in range(300):
                if c.done.wait(0.1) or not c.send(f"X-Drip-{i}: x\r\n".encode()):
                    return

        server = self.serve(script)
        outcome = self.run_bounded(Client(server.url, TOKEN, timeout=0.5).whoami, 8.0)
        self.assertNotIn("hung", outcome, "whoami() with timeout=0.5 s was still reading headers after 8 s")
        self.assertIsInstance(outcome.get("error"), RequestTimedOut)

    def test_a_refusal_that_drips_its_body_does_not_hold_the_event_stream(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.head("503 Service Unavailable", {"Content-Type": "application/problem+json", "Content-Length": "400"})
            for _ in range(300):
                if c.done.wait(0.1) or not c.send(b" "):
                    return

        server = self.serve(script)
        outcome = self.run_bounded(lambda: Client(server.url, TOKEN).events(max_retries=0, read_timeout=0.5), 8.0)
        self.assertNotIn("hung", outcome, "events() with read_timeout=0.5 s was still reading a 503's body after 8 s")
        self.assertIsInstance(outcome.get("error"), ConnectionFailed)


class EventStreamFieldsTest(AttackCase):
    def test_a_retry_of_thousands_of_digits_does_not_escape_as_a_ValueError(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.stream()
            c.send(b"retry: " + b"9" * 5000 + b"\n\n" + event("c1"))
            c.hold()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_retries=0)
        self.addCleanup(stream.close)
        try:
            first = next(stream)
        except CyberspaceError:
            return  # refused as the client's own error: fine
        except ValueError as err:
            self.fail(f"a retry: field of 5000 digits escaped the iterator as {type(err).__name__}: {err}")
        self.assertEqual(first["cursor"], "c1")

    def test_a_cursor_that_is_no_header_value_ends_the_stream_with_a_cyberspace_error(self) -> None:
        for cursor in ["c\u20ac1", "c1\r\nX-Injected: yes"]:
            with self.subTest(cursor=cursor):

                def script(c: Conn, n: int) -> None:
                    c.stream()
                    if n == 0:
                        c.send(event(cursor))  # then the connection ends: the client reconnects with it
                    else:
                        c.send(event("c2"))
                        c.hold()

                server = self.serve(script)
                stream = Client(server.url, TOKEN).events(max_retries=1)
                self.addCleanup(stream.close)
                self.assertEqual(next(stream)["cursor"], cursor)
                try:
                    got = next(stream)
                except CyberspaceError:
                    got = None
                except ValueError as err:
                    self.fail(
                        f"the node's cursor {cursor!r}, sent back as Last-Event-ID, raised {type(err).__name__}: {err}"
                    )
                for r in server.requests:
                    self.assertNotIn("x-injected", r["headers"], "a header was injected")
                if got is not None:
                    self.assertEqual(got["cursor"], "c2")

    def test_retry_0_is_taken_as_the_floor_not_a_hot_loop(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.stream()
            c.send(b"retry: 0\n" + event(f"c{n}"))  # then the connection ends (bounded: the client reads 4)

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_retries=1)
        self.addCleanup(stream.close)
        self.assertEqual([next(stream)["cursor"] for _ in range(4)], ["c0", "c1", "c2", "c3"])
        # a lower bound, not a speed claim: the client waits at least the floor between connections
        for before, after in zip(server.requests, server.requests[1:4]):
            gap = after["at"] - before["at"]
            self.assertGreaterEqual(gap, MIN_SERVER_RETRY_DELAY * 0.9, f"reconnected {gap:.3f} s after the last connection")

    def test_a_line_without_end_is_refused_at_max_event_size(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.stream()
            c.send(b"data: ")
            for _ in range(256):  # 4 MiB at most
                if c.done.is_set() or not c.send(b"x" * 16384):
                    return

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_event_size=64 * 1024, max_retries=0)
        self.addCleanup(stream.close)
        with self.assertRaises(EventTooLarge):
            next(stream)

    def test_a_comment_line_without_end_is_refused_too(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.stream()
            c.send(b":")
            for _ in range(256):
                if c.done.is_set() or not c.send(b"heartbeat" * 2000):
                    return

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_event_size=64 * 1024, max_retries=0)
        self.addCleanup(stream.close)
        with self.assertRaises(EventTooLarge):
            next(stream)


class RedirectAndRetryTest(AttackCase):
    def test_a_redirect_is_not_followed_and_the_token_stays_home(self) -> None:
        elsewhere = self.serve(lambda c, n: c.head("200 OK", {"Content-Length": "2", "Content-Type": "application/json"}))

        def script(c: Conn, n: int) -> None:
            c.head("307 Temporary Redirect", {"Location": elsewhere.url + "/collect", "Content-Length": "0"})

        server = self.serve(script)
        client = Client(server.url, TOKEN)
        with self.assertRaises(CyberspaceError):
            client.complete_task("release:t1", result={"secret": "my work"})
        with self.assertRaises(CyberspaceError):
            client.events(max_retries=0)
        self.assertEqual(elsewhere.requests, [], "the client followed a redirect to another host")
        self.assertEqual(server.requests[0]["headers"].get("authorization"), f"Bearer {TOKEN}")

    def test_a_401_on_the_stream_is_not_retried(self) -> None:
        problem = json.dumps({"name": "ApiTokenError", "title": "no", "status": 401, "detail": "revoked"}).encode()

        def script(c: Conn, n: int) -> None:
            c.head("401 Unauthorized", {"Content-Type": "application/problem+json", "Content-Length": str(len(problem))})
            c.send(problem)

        server = self.serve(script)
        with self.assertRaises(ApiProblem) as raised:
            Client(server.url, TOKEN).events(max_retries=5)
        self.assertEqual(raised.exception.status, 401)
        self.assertEqual(len(server.requests), 1)

    def test_a_problem_body_past_the_answer_bound_is_refused(self) -> None:
        def script(c: Conn, n: int) -> None:
            c.head("400 Bad Request", {"Content-Type": "application/problem+json", "Content-Length": str(8 << 20)})
            c.send(b'{"detail": "' + b"x" * (2 << 20))

        server = self.serve(script)
        client = Client(server.url, TOKEN, max_response_bytes=64 * 1024)
        with self.assertRaises(InvalidResponse):
            client.whoami()


if __name__ == "__main__":
    unittest.main()
