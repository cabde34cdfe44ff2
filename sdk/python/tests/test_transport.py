"""
The client's own protocol handling, against a small scripted HTTP server on 127.0.0.1 (the routes
themselves are tested against a real node in test_client.py): the event stream reconnecting with
Last-Event-ID after a dropped connection and after reconnect(), `event: missed` resumed or raised,
a 410 as CursorExpired, retries that end, close() from another thread, the read timeout, the bound
on an event; and for plain requests: problem details, connection failures and timeouts naming the
URL, percent-encoded paths, query and body encoding, pages followed and a stuck page cursor refused.
Runs without a node.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyberspace import (  # noqa: E402
    ApiProblem,
    Client,
    ConnectionFailed,
    CursorExpired,
    EventsMissed,
    EventTooLarge,
    InvalidResponse,
    RequestTimedOut,
    hlc_text,
)

TOKEN = "agent-t0ken"


def event(cursor: str, hlc: List[int], kind: str = "claim") -> bytes:
    body = {"cursor": cursor, "hlc": hlc, "source": "board", "type": kind, "subject": "b1/t1", "data": {}}
    return f"id: {cursor}\ndata: {json.dumps(body)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, ScriptedServer)
        server.serve(self)

    do_POST = do_PUT = do_DELETE = do_GET

    # helpers for scripts
    def body(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def json(self, status: int, value: Any, kind: str = "application/json") -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def drop(self) -> None:
        """Breaks the connection mid-stream (no final chunk)."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def hold(self, seconds: float = 10.0) -> None:
        server = self.server
        assert isinstance(server, ScriptedServer)
        server.done.wait(seconds)


Script = Callable[[Handler, int], None]


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = script
        self.requests: List[Dict[str, Any]] = []
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, h: Handler) -> None:
        with self.lock:
            n = len(self.requests)
            self.requests.append(
                {
                    "method": h.command,
                    "path": h.path,
                    "last_event_id": h.headers.get("last-event-id"),
                    "authorization": h.headers.get("authorization"),
                    "accept": h.headers.get("accept"),
                }
            )
        self.script(h, n)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that go away mid-answer are what these tests do

    def stop(self) -> None:
        self.done.set()
        self.shutdown()
        self.server_close()


class TransportCase(unittest.TestCase):
    def serve(self, script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        self.addCleanup(server.stop)
        return server


class EventStreamTest(TransportCase):
    def test_reconnects_after_a_dropped_connection_resuming_after_the_last_event(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            if n == 0:
                h.chunk(b"retry: 10\n\n" + event("c1", [5, 0]) + event("c2", [5, 1]))
                h.chunk(b"id: c3\ndata: {\"cursor\": \"c3\", \"half")  # cut inside an event
                h.drop()
            else:
                h.chunk(event("c3", [6, 0]))
                h.hold()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(since="4.0")
        with stream:
            got = [next(stream)["cursor"] for _ in range(3)]
        self.assertEqual(got, ["c1", "c2", "c3"], "no event lost or repeated; the half event was dropped")
        self.assertEqual(stream.reconnects, 1)
        self.assertEqual(stream.last_event_id, "c3")
        first, second = server.requests
        self.assertEqual(first["path"], "/api/events/stream?since=4.0")
        self.assertIsNone(first["last_event_id"])
        self.assertEqual(second["path"], "/api/events/stream", "the cursor, not the HLC, says where to go on")
        self.assertEqual(second["last_event_id"], "c2")
        self.assertEqual(first["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(first["accept"], "text/event-stream")

    def test_reconnect_drops_the_connection_and_goes_on_after_the_last_event(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            h.chunk(event(f"c{n + 1}", [7, n]))
            h.hold()

        server = self.serve(script)
        with Client(server.url, TOKEN).events(last_event_id="c0") as stream:
            self.assertEqual(next(stream)["cursor"], "c1")
            stream.reconnect()
            self.assertEqual(next(stream)["cursor"], "c2")
        self.assertEqual([r["last_event_id"] for r in server.requests], ["c0", "c1"])
        self.assertEqual(stream.reconnects, 1)

    def test_missed_events_resume_from_the_cursor_the_node_names(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            if n == 0:
                h.chunk(event("c1", [1, 0]) + b'event: missed\ndata: {"missed": 5, "resume": "c1"}\n\n')
                h.end_stream()
            else:
                h.chunk(event("c2", [1, 1]))
                h.hold()

        server = self.serve(script)
        with Client(server.url, TOKEN).events() as stream:
            self.assertEqual([next(stream)["cursor"], next(stream)["cursor"]], ["c1", "c2"])
        self.assertEqual(server.requests[1]["last_event_id"], "c1")

    def test_missed_events_raise_when_asked_to(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            h.chunk(event("c1", [1, 0]) + b'event: missed\ndata: {"missed": 5, "resume": "c1"}\n\n')
            h.end_stream()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(resume_missed=False)
        self.assertEqual(next(stream)["cursor"], "c1")
        with self.assertRaises(EventsMissed) as raised:
            next(stream)
        self.assertEqual((raised.exception.missed, raised.exception.resume), (5, "c1"))
        with self.assertRaises(StopIteration):
            next(stream)
        self.assertEqual(len(server.requests), 1)

    def test_a_cursor_from_another_run_raises_cursor_expired_naming_the_hlc_to_resume_from(self) -> None:
        gone = {
            "type": "urn:cyberspace:error:EventCursorExpiredError",
            "title": "The event cursor has expired",
            "status": 410,
            "detail": "the cursor is from another run of this node: resume with since=<hlc>",
            "name": "EventCursorExpiredError",
        }

        def script(h: Handler, n: int) -> None:
            if n == 0:
                h.json(410, {**gone, "hlc": [1763600000000, 2]}, "application/problem+json")
                return
            if n == 2:
                h.json(410, gone, "application/problem+json")
                return
            h.start_stream()
            h.chunk(b"retry: 10\n\n" + event("c1", [1763700000000, 3]))
            h.drop()

        server = self.serve(script)
        with self.assertRaises(CursorExpired) as at_once:
            Client(server.url, TOKEN).events(last_event_id="old")
        self.assertEqual(at_once.exception.status, 410)
        self.assertEqual(at_once.exception.since, "1763600000000.2", "the HLC the node names")
        stream = Client(server.url, TOKEN).events()
        self.assertEqual(next(stream)["cursor"], "c1")
        with self.assertRaises(CursorExpired) as later:
            next(stream)
        self.assertEqual(later.exception.name, "EventCursorExpiredError")
        self.assertEqual(later.exception.since, "1763700000000.3", "else the last event's")
        self.assertIsInstance(later.exception, ApiProblem)

    def test_gives_up_after_max_retries_failed_attempts_in_a_row(self) -> None:
        def script(h: Handler, n: int) -> None:
            if n == 0:
                h.start_stream()
                h.chunk(b"retry: 5\n\n" + event("c1", [1, 0]))
                h.drop()
            else:
                h.json(503, {"name": "UnavailableError", "title": "busy", "status": 503, "detail": "busy"})

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_retries=3)
        self.assertEqual(next(stream)["cursor"], "c1")
        with self.assertRaises(ConnectionFailed) as raised:
            next(stream)
        self.assertIn("UnavailableError", raised.exception.reason)
        self.assertIn("last_event_id='c1'", str(raised.exception))
        self.assertEqual(len(server.requests), 1 + 3, "the first connection, then max_retries attempts")

    def test_refusals_on_connecting_are_not_retried(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.json(401, {"name": "UnauthorizedError", "title": "no", "status": 401, "detail": "revoked"})

        server = self.serve(script)
        with self.assertRaises(ApiProblem) as raised:
            Client(server.url, TOKEN).events()
        self.assertEqual((raised.exception.status, raised.exception.name), (401, "UnauthorizedError"))
        self.assertEqual(len(server.requests), 1)

    def test_close_from_another_thread_ends_a_blocked_read(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            h.chunk(b": nothing yet\n\n")
            h.hold()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(read_timeout=120, max_retries=0)
        got: List[Any] = ["not run"]

        def read() -> None:
            got[0] = list(stream)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.2)  # let the reader block in its read (were it not yet, close() still ends it)
        stream.close()
        # were close() not to unblock the read, it would sit for the 120 s read timeout
        reader.join(30)
        self.assertFalse(reader.is_alive(), "close() did not end the blocked read")
        self.assertEqual(got[0], [])
        self.assertEqual(len(server.requests), 1)

    def test_a_silent_stream_times_out_and_is_retried(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            h.chunk(b"retry: 5\n\n")
            h.hold()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(read_timeout=0.2, max_retries=1)
        with self.assertRaises(ConnectionFailed) as raised:
            next(stream)
        self.assertIn("RequestTimedOut", raised.exception.reason)
        self.assertEqual(len(server.requests), 2)

    def test_an_event_past_the_bound_raises_and_ends_the_stream(self) -> None:
        def script(h: Handler, n: int) -> None:
            h.start_stream()
            h.chunk(b"data: " + b"x" * 5000 + b"\n\n")
            h.hold()

        server = self.serve(script)
        stream = Client(server.url, TOKEN).events(max_event_size=1000)
        with self.assertRaises(EventTooLarge) as raised:
            next(stream)
        self.assertIn("/api/events/stream", raised.exception.url)
        with self.assertRaises(StopIteration):
            next(stream)

    def test_an_answer_that_is_not_an_event_stream_is_refused(self) -> None:
        server = self.serve(lambda h, n: h.json(200, {"events": []}))
        with self.assertRaises(InvalidResponse):
            Client(server.url, TOKEN).events()


class RequestTest(TransportCase):
    def test_problem_details_become_api_problem(self) -> None:
        problem = {
            "type": "urn:cyberspace:error:InvalidRequestError",
            "title": "The request is not valid",
            "status": 400,
            "detail": "body.title: too short",
            "name": "InvalidRequestError",
            "errors": [{"field": "body.title", "message": "too short"}],
            "extra": 1,
        }
        server = self.serve(lambda h, n: h.json(400, problem, "application/problem+json"))
        with self.assertRaises(ApiProblem) as raised:
            Client(server.url, TOKEN).create_worknode("b1", "")
        err = raised.exception
        self.assertEqual((err.status, err.name, err.type), (400, "InvalidRequestError", problem["type"]))
        self.assertEqual((err.title, err.detail), (problem["title"], problem["detail"]))
        self.assertEqual(err.errors, [{"field": "body.title", "message": "too short"}])
        self.assertEqual(dict(err.problem)["extra"], 1, "extension members are kept")
        self.assertIn("POST", str(err))
        self.assertIn("/api/worknodes", str(err))

    def test_an_answer_that_is_not_a_problem_still_raises_api_problem(self) -> None:
        def script(h: Handler, n: int) -> None:
            data = b"upstream broke"
            h.send_response(502)
            h.send_header("content-type", "text/plain")
            h.send_header("content-length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        server = self.serve(script)
        with self.assertRaises(ApiProblem) as raised:
            Client(server.url, TOKEN).whoami()
        self.assertEqual((raised.exception.status, raised.exception.name), (502, "Http502"))
        self.assertEqual(raised.exception.detail, "upstream broke")

    def test_a_closed_port_raises_connection_failed_naming_the_url(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(ConnectionFailed) as raised:
            Client(f"http://127.0.0.1:{port}", TOKEN).whoami()
        self.assertEqual(raised.exception.url, f"http://127.0.0.1:{port}/api/whoami")
        self.assertIn(f"127.0.0.1:{port}/api/whoami", str(raised.exception))

    def test_a_node_that_does_not_answer_times_out(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        with self.assertRaises(RequestTimedOut) as raised:
            Client(f"http://127.0.0.1:{port}", TOKEN, timeout=0.2).get_board("b1")
        self.assertEqual(raised.exception.timeout, 0.2)
        self.assertIn("/api/boards/b1", str(raised.exception))

    def test_paths_queries_and_bodies_are_encoded(self) -> None:
        seen: List[Any] = []

        def script(h: Handler, n: int) -> None:
            seen.append(h.body())
            h.json(200, {"items": [], "next": None} if "worknodes?" in h.path else {})

        server = self.serve(script)
        client = Client(server.url + "/", TOKEN)
        client.get_worknode("b1:t 1/x?y")
        client.get_agent("..")
        client.get_document("notes#1")
        list(client.list_worknodes("b1", ready=True, status="working"))
        client.assign_task("b1:t1", None, as_="z6Mkagent")
        client.complete_task("b1:t1", result={"n": 1})
        client.delete_worknode("b1:t1", as_="z6Mk x")
        paths = [r["path"] for r in server.requests]
        self.assertEqual(
            paths,
            [
                "/api/worknodes/b1:t%201%2Fx%3Fy",
                "/api/agents/%2E%2E",
                "/api/documents/notes%231",
                "/api/worknodes?board=b1&status=working&ready=true",
                "/api/tasks/b1:t1/assign",
                "/api/tasks/b1:t1/complete",
                "/api/worknodes/b1:t1?as=z6Mk+x",
            ],
        )
        self.assertEqual(seen[4], {"assignee": None, "as": "z6Mkagent"}, "a null assignee is sent as null")
        self.assertEqual(seen[5], {"result": {"n": 1}}, "unset fields are left out")
        with self.assertRaises(ValueError):
            client.get_worknode("")
        with self.assertRaises(ValueError):
            client.create_worknode("b1", "x", priority=float("nan"))  # type: ignore[arg-type]

    def test_pages_are_followed_and_a_cursor_that_does_not_move_is_refused(self) -> None:
        def script(h: Handler, n: int) -> None:
            if "after=p2" in h.path:
                h.json(200, {"boards": [{"name": "c"}], "next": None})
            elif "after=p1" in h.path:
                h.json(200, {"boards": [{"name": "b"}], "next": "p2"})
            elif "/api/boards" in h.path:
                h.json(200, {"boards": [{"name": "a"}], "next": "p1"})
            else:
                h.json(200, {"members": [{"peer": "x"}], "next": "same"})

        server = self.serve(script)
        client = Client(server.url, TOKEN)
        self.assertEqual([b["name"] for b in client.list_boards(limit=1)], ["a", "b", "c"])
        self.assertEqual(server.requests[0]["path"], "/api/boards?limit=1")
        self.assertEqual(server.requests[2]["path"], "/api/boards?limit=1&after=p2")
        with self.assertRaises(InvalidResponse):
            list(client.members())

    def test_an_answer_past_the_bound_is_refused(self) -> None:
        server = self.serve(lambda h, n: h.json(200, {"x": "y" * 10_000}))
        with self.assertRaises(InvalidResponse):
            Client(server.url, TOKEN, max_response_bytes=1000).fleet()

    def test_bad_arguments_are_refused_before_sending(self) -> None:
        with self.assertRaises(ValueError):
            Client("ftp://127.0.0.1:1")
        with self.assertRaises(ValueError):
            Client("http://127.0.0.1:1", "bad\r\ntoken")
        with self.assertRaises(ValueError):
            Client("http://127.0.0.1:1").events(last_event_id="x\ny")
        self.assertEqual(hlc_text([1763700000000, 2]), "1763700000000.2")
        self.assertEqual(hlc_text("1763700000000.0"), "1763700000000.0")
        for bad in ("yesterday", "1.2.3", [1], [1, -1], [True, 0]):
            with self.assertRaises(ValueError):
                hlc_text(bad)  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
