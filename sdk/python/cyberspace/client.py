"""
A client of a Cyberspace node's public HTTP API (``/api/...``), standard library only.

One method per route of ``src/api/routes.ts``, named in snake_case; answers are the JSON the node
sends, typed by ``cyberspace.types``. Lists follow the node's pages by themselves (iterate them);
the event stream is an iterator over server-sent events that reconnects after a dropped
connection, resuming exactly after the last event it had (Last-Event-ID). Every request has a
timeout; every refusal raises ``ApiProblem`` with the node's problem details. A ``Client`` keeps no
connection between calls, so one can be shared between threads.

Example::

    from cyberspace import Client
    client = Client("http://127.0.0.1:4102", token)
    for task in client.agent_tasks(agent_id, status="working"):
        client.complete_task(task["ref"], result={"ok": True})
    for event in client.events(since="1763700000000.0"):
        print(event["type"], event["subject"])
"""

from __future__ import annotations

# EventStream drives the Client's transport (its _open, _read, … beside it in this module)
# pyright: reportPrivateUsage=false

import http.client
import io
import json
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from typing import (
    Any,
    Deque,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)
from urllib.parse import quote, urlencode, urlsplit

from .errors import (
    ApiProblem,
    ConnectionFailed,
    CursorExpired,
    CyberspaceError,
    EventsMissed,
    InvalidResponse,
    RequestTimedOut,
)
from .sse import DEFAULT_MAX_EVENT_SIZE, SseEvent, SseParser
from .types import (
    AgentRecord,
    Artifact,
    AttachedAgent,
    Board,
    Certificate,
    Document,
    DocumentInfo,
    DocumentUpdate,
    Event,
    EventPage,
    Fleet,
    HostedAgent,
    Inbox,
    Member,
    MintedToken,
    NodeInfo,
    OpResult,
    Replied,
    RevokedTokens,
    Sent,
    StoppedAgent,
    Token,
    UpdatedDocument,
    WhoAmI,
    WorkItem,
)

__all__ = ["Client", "EventStream", "hlc_text", "HlcLike", "__version__"]

__version__ = "0.1.0"

#: Seconds a request may take, unless the client or the call says otherwise.
DEFAULT_TIMEOUT = 30.0
#: Seconds an event stream may stay silent: the node sends a heartbeat comment every 15 s.
DEFAULT_STREAM_TIMEOUT = 60.0
#: Largest answer read, in bytes.
DEFAULT_MAX_RESPONSE_BYTES = 32 << 20
#: Failed connection attempts in a row after which an event stream gives up.
DEFAULT_MAX_RETRIES = 5
#: Longest wait between two attempts, in seconds.
MAX_RETRY_DELAY = 30.0
#: Shortest wait a node's ``retry:`` sets, in seconds: ``retry: 0`` does not make the stream reconnect in a hot loop.
MIN_SERVER_RETRY_DELAY = 0.1
#: Longest event cursor sent back as ``Last-Event-ID``, in characters.
MAX_CURSOR_LENGTH = 4096

HlcLike = Union[str, Sequence[int]]
"""An HLC: text ``"<wall_ms>.<logical>"`` or ``[wall_ms, logical]`` as events carry it."""

_HLC_TEXT = re.compile(r"^\d{1,16}\.\d{1,10}$")
# what a header value may hold: visible ASCII and spaces (no CR or LF to split a header with)
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
_NO_BODY = object()


def hlc_text(hlc: HlcLike) -> str:
    """An HLC as the API's text form, ``"<wall_ms>.<logical>"``: from that text, or ``[wall, logical]``."""
    if isinstance(hlc, str):
        if not _HLC_TEXT.match(hlc):
            raise ValueError(f"{hlc!r} is not an HLC: pass <wall ms>.<logical>, e.g. 1763700000000.0")
        return hlc
    parts = list(hlc)
    if (
        len(parts) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts)
        or parts[0] >= 10**16
        or parts[1] >= 10**10
    ):
        raise ValueError(f"{hlc!r} is not an HLC: pass [wall_ms, logical] or the text wall.logical")
    return f"{parts[0]}.{parts[1]}"


def _segment(value: str, what: str) -> str:
    """One path segment, percent-encoded (``:`` kept: task references read ``board:item``)."""
    if not isinstance(value, str) or value == "":
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    encoded = quote(value, safe=":@")
    # a bare . or .. would be resolved away by URL parsing and name another route
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"a query parameter must be text, a number or a boolean, not {type(value).__name__}")


def _ms(seconds: Optional[float], what: str) -> Optional[int]:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"{what} must be a number of seconds, not {seconds!r}")
    return int(round(seconds * 1000))


def _without_none(fields: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _cursor_ok(cursor: str) -> bool:
    """Whether ``cursor`` can go back to the node as a header value (``Last-Event-ID``)."""
    return 0 < len(cursor) <= MAX_CURSOR_LENGTH and _HEADER_SAFE.match(cursor) is not None


class _Deadline:
    """
    When one request must be done by: every read and write of its socket waits at most until then,
    so a node that drips its answer a byte at a time cannot stretch the request past ``seconds``.
    ``lift(idle)`` ends it (an event stream, once open): each read then waits at most ``idle``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at: Optional[float] = time.monotonic() + seconds
        self.idle = seconds

    def lift(self, idle: float) -> None:
        self.at = None
        self.idle = idle

    def left(self) -> float:
        """Seconds a socket operation may wait now; ``socket.timeout`` once the deadline has passed."""
        if self.at is None:
            return self.idle
        left = self.at - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request's deadline passed")
        return left


class _DeadlineSocket:
    """
    A connected socket (plain or TLS) whose every read and write waits at most what its deadline
    leaves. As a socket does, it stays open while a reader made by ``makefile`` is: http.client
    closes the connection's socket once a response that ends with the connection holds it.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closed = False

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer, nbytes, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        # since Python 3.5 a socket's timeout bounds all of sendall, not each piece
        self._sock.settimeout(self._deadline.left())
        self._sock.sendall(data, flags)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"this socket is read as rb, not {mode}")
        self._readers += 1
        return io.BufferedReader(_SocketReader(self))

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self._sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # shutdown, fileno, … as the socket has them
        return getattr(self._sock, name)


class _SocketReader(io.RawIOBase):
    """The raw reader of a _DeadlineSocket (what ``socket.makefile`` gives a plain socket)."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock: Optional[_DeadlineSocket] = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._sock is None:
            raise ValueError("I/O operation on closed socket reader")
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock._reader_closed()
        super().close()


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=min(deadline.seconds, deadline.left()))
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _DeadlineSocket(self.sock, self.deadline))


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, deadline: _Deadline, context: Optional[ssl.SSLContext]) -> None:
        super().__init__(host, port, timeout=min(deadline.seconds, deadline.left()), context=context)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _DeadlineSocket(self.sock, self.deadline))


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Client:
    """
    A client of one node's public API.

    ``url`` is where the API listens (``api.json`` in the node's data directory names it, e.g.
    ``http://127.0.0.1:4102``); ``token`` an agent's token (``POST /api/node/agents`` with kind
    ``external`` mints one) or the node's operator token. ``timeout`` bounds every request, in
    seconds — sending it and reading the whole answer, however slowly the node sends it (connecting
    is bounded by it too, step by step); ``ssl_context`` is for an API served over TLS with a
    certificate of its own.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        user_agent: Optional[str] = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http://host:port or https://host:port, not {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"url must not carry a query, a fragment or credentials: {url!r}")
        if token is not None and (not token or not _HEADER_SAFE.match(token)):
            raise ValueError("token must be non-empty visible ASCII text")
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if user_agent is not None and (not user_agent or not _HEADER_SAFE.match(user_agent)):
            raise ValueError("user_agent must be non-empty visible ASCII text")
        try:
            port = parts.port
        except ValueError as err:
            raise ValueError(f"url has a bad port: {url!r}") from err
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{host}:{self.port}{self.base_path}"
        self.token = token
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        self.max_response_bytes = max_response_bytes
        self.user_agent = user_agent or f"cyberspace-python/{__version__}"

    @classmethod
    def from_env(cls, **options: Any) -> "Client":
        """A client for ``CYBERSPACE_URL`` with ``CYBERSPACE_TOKEN`` (the environment an agent is started with)."""
        url = os.environ.get("CYBERSPACE_URL")
        if not url:
            raise ValueError("CYBERSPACE_URL is not set: pass the node's API url (api.json in its data directory)")
        return cls(url, os.environ.get("CYBERSPACE_TOKEN") or None, **options)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ------------------------------------------------------------------ transport

    def _connection(self, deadline: _Deadline) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return _HTTPSConnection(self.host, self.port, deadline, self.ssl_context)
        return _HTTPConnection(self.host, self.port, deadline)

    def _headers(self, accept: str) -> Dict[str, str]:
        headers = {"Accept": accept, "User-Agent": self.user_agent}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _target(self, path: str, query: Optional[Mapping[str, Any]]) -> str:
        target = self.base_path + path
        pairs = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        if pairs:
            target += "?" + urlencode(pairs)
        return target

    def _open(
        self,
        method: str,
        target: str,
        headers: Dict[str, str],
        data: Optional[bytes],
        deadline: _Deadline,
    ) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """
        Sends one request; answers the connection and the response, whose body is left to read
        (within ``deadline``, which bounds the request from here to its answer's last byte).
        """
        url = self.url + target[len(self.base_path) :]
        conn = self._connection(deadline)
        try:
            conn.request(method, target, body=data, headers=headers)
            return conn, conn.getresponse()
        except socket.timeout:
            conn.close()
            raise RequestTimedOut(url, deadline.seconds) from None
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise ConnectionFailed(url, _describe(err)) from err
        except ValueError as err:
            # a header http.client will not send (CR, LF, not Latin-1): its value came from the node
            conn.close()
            raise InvalidResponse(url, f"the request cannot be sent with what the node gave: {err}") from None

    def _read(self, resp: http.client.HTTPResponse, url: str, deadline: _Deadline) -> bytes:
        try:
            data = resp.read(self.max_response_bytes + 1)
        except socket.timeout:
            raise RequestTimedOut(url, deadline.seconds) from None
        except (OSError, http.client.HTTPException) as err:
            raise ConnectionFailed(url, _describe(err), f"the answer from {url} broke off: {_describe(err)}") from err
        if len(data) > self.max_response_bytes:
            raise InvalidResponse(url, f"the answer is larger than {self.max_response_bytes} bytes")
        return data

    def _problem(self, status: int, data: bytes, resp: http.client.HTTPResponse, method: str, url: str) -> ApiProblem:
        body: Mapping[str, Any] = {}
        try:
            parsed: Any = json.loads(data.decode("utf-8")) if data else None
            if isinstance(parsed, dict):
                body = cast(Dict[str, Any], parsed)
        except (UnicodeDecodeError, ValueError):
            pass
        if not body:
            text = data.decode("utf-8", errors="replace").strip()[:500]
            body = {"title": resp.reason or f"HTTP {status}", "detail": text or resp.reason or f"HTTP {status}"}
        return ApiProblem(status, body, method=method, url=url)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = _NO_BODY,
        timeout: Optional[float] = None,
    ) -> Any:
        """
        Sends ``method path`` (``path`` from ``/api/…``, already encoded) with ``query`` and a JSON
        ``body``; answers the parsed JSON. Raises ``ApiProblem`` for a refusal, ``ConnectionFailed``
        (``RequestTimedOut``) when the node is not reached in time, ``InvalidResponse`` for an answer
        that is not JSON. Every named method goes through here.
        """
        wait = self.timeout if timeout is None else timeout
        target = self._target(path, query)
        url = self.url + target[len(self.base_path) :]
        headers = self._headers("application/json, application/problem+json")
        data: Optional[bytes] = None
        if body is not _NO_BODY:
            try:
                data = json.dumps(body, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            except (TypeError, ValueError) as err:
                raise ValueError(f"the body of {method} {path} is not JSON: {err}") from err
            headers["Content-Type"] = "application/json"
        deadline = _Deadline(wait)
        conn, resp = self._open(method, target, headers, data, deadline)
        try:
            raw = self._read(resp, url, deadline)
        finally:
            conn.close()
        if resp.status >= 400:
            raise self._problem(resp.status, raw, resp, method, url)
        if resp.status < 200 or resp.status >= 300:
            raise InvalidResponse(url, f"unexpected status {resp.status} {resp.reason}")
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            kind = resp.getheader("content-type") or "no content type"
            raise InvalidResponse(url, f"the answer is not JSON ({kind}): {err}") from None

    def _get(self, path: str, query: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        return self.request("GET", path, query=query, timeout=timeout)

    def _pages(self, path: str, field: str, query: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of a paged list: the first page is asked now (a refusal raises here), the rest as iterated."""
        first = self._get(path, query)
        return self._walk(path, field, dict(query), first)

    def _walk(self, path: str, field: str, query: Dict[str, Any], page: Any) -> Iterator[Any]:
        previous: Optional[str] = None
        while True:
            fields = cast(Dict[str, Any], page) if isinstance(page, dict) else {}
            items: Any = fields.get(field)
            if not isinstance(items, list):
                raise InvalidResponse(self.url + path, f"the page has no list {field!r}")
            yield from cast(List[Any], items)
            after: Any = fields.get("next")
            if after is None:
                return
            if not isinstance(after, str) or after == previous:
                raise InvalidResponse(self.url + path, f"the page's next cursor {after!r} does not move on")
            previous = after
            page = self._get(path, {**query, "after": after})

    # ------------------------------------------------------------------ who and where

    def whoami(self) -> WhoAmI:
        """Who this token acts as: ``caller`` (operator or agent), ``principal``, ``node``."""
        return cast(WhoAmI, self._get("/api/whoami"))

    def node(self) -> NodeInfo:
        """The node's peer id, addresses and the kinds of agents it runs."""
        return cast(NodeInfo, self._get("/api/node"))

    def members(self, *, limit: Optional[int] = None) -> Iterator[Member]:
        """The cluster's members as this node sees them (all pages; ``limit`` is the page size)."""
        return self._pages("/api/members", "members", {"limit": limit})

    def fleet(self) -> Fleet:
        """The fleet's status: totals, members' summaries, one row per agent."""
        return cast(Fleet, self._get("/api/fleet"))

    # ------------------------------------------------------------------ agents

    def find_agents(self, skill: str, *, limit: Optional[int] = None) -> Iterator[AgentRecord]:
        """Agents in the registry with ``skill``."""
        return self._pages("/api/agents", "agents", {"skill": skill, "limit": limit})

    def get_agent(self, agent_id: str) -> AgentRecord:
        """An agent's registry record and card, by principal."""
        return cast(AgentRecord, self._get(f"/api/agents/{_segment(agent_id, 'agent_id')}"))

    def agent_tasks(
        self,
        agent_id: str,
        *,
        board: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Iterator[WorkItem]:
        """The work items assigned to ``agent_id`` on every board the node holds (or ``board``)."""
        path = f"/api/agents/{_segment(agent_id, 'agent_id')}/tasks"
        return self._pages(path, "tasks", {"board": board, "status": status, "limit": limit})

    def inbox(self, agent_id: str, *, wait: Optional[float] = None, limit: Optional[int] = None) -> Inbox:
        """
        Messages waiting for ``agent_id`` (an agent hosted on this node). With ``wait`` (seconds, at
        most 60) the node holds the request until a message arrives or the time is up.
        """
        wait_ms = _ms(wait, "wait")
        path = f"/api/agents/{_segment(agent_id, 'agent_id')}/inbox"
        timeout = self.timeout + (wait_ms or 0) / 1000
        return cast(Inbox, self._get(path, {"wait": wait_ms, "limit": limit}, timeout))

    def send(
        self,
        agent_id: str,
        to: str,
        type: str,
        body: Any = None,
        *,
        request: bool = False,
        timeout: Optional[float] = None,
        id: Optional[str] = None,
    ) -> Sent:
        """
        Sends a message of ``type`` from ``agent_id`` (hosted here) to ``to`` (a principal, a peer id
        or a name). With ``request=True`` waits (``timeout`` seconds, default 30) for the answer,
        which is in ``response``.
        """
        timeout_ms = _ms(timeout, "timeout")
        payload = _without_none(
            {"to": to, "type": type, "body": body, "request": request, "timeout": timeout_ms, "id": id}
        )
        http_timeout = self.timeout + ((timeout_ms or 30_000) / 1000 if request else 0)
        path = f"/api/agents/{_segment(agent_id, 'agent_id')}/messages"
        return cast(Sent, self.request("POST", path, body=payload, timeout=http_timeout))

    def reply(self, agent_id: str, message: str, body: Any = None, *, error: Optional[str] = None) -> Replied:
        """Answers the request ``message`` in ``agent_id``'s inbox with ``body`` (or ``error``)."""
        path = f"/api/agents/{_segment(agent_id, 'agent_id')}/replies"
        payload = _without_none({"message": message, "body": body, "error": error})
        return cast(Replied, self.request("POST", path, body=payload))

    def hosted_agents(self, *, limit: Optional[int] = None) -> Iterator[HostedAgent]:
        """The agents this node hosts (an agent's token sees only its own)."""
        return self._pages("/api/node/agents", "agents", {"limit": limit})

    def attach_agent(self, kind: str, *, id: Optional[str] = None, token: Optional[bool] = None) -> AttachedAgent:
        """
        Operator: starts an agent of ``kind`` here, or with kind ``external`` attaches one and mints its
        token (``token`` in the answer, shown this once).
        """
        body = _without_none({"kind": kind, "id": id, "token": token})
        return cast(AttachedAgent, self.request("POST", "/api/node/agents", body=body))

    def stop_agent(self, agent_id: str) -> StoppedAgent:
        """Operator: stops an agent hosted here; its tokens are revoked."""
        return cast(StoppedAgent, self.request("DELETE", f"/api/node/agents/{_segment(agent_id, 'agent_id')}"))

    # ------------------------------------------------------------------ tokens

    def list_tokens(self, *, agent: Optional[str] = None, limit: Optional[int] = None) -> Iterator[Token]:
        """Operator: the agents' live tokens (never their secrets)."""
        return self._pages("/api/tokens", "tokens", {"agent": agent, "limit": limit})

    def mint_token(self, agent_id: str) -> MintedToken:
        """Operator: a new token for an external agent hosted here (the secret, ``token``, is shown once)."""
        return cast(MintedToken, self.request("POST", f"/api/agents/{_segment(agent_id, 'agent_id')}/tokens"))

    def revoke_token(self, token_id: str) -> RevokedTokens:
        """Operator: revokes a token by its id; it answers 401 from now on and its streams end."""
        return cast(RevokedTokens, self.request("DELETE", f"/api/tokens/{_segment(token_id, 'token_id')}"))

    # ------------------------------------------------------------------ boards and work nodes

    def list_boards(self, *, limit: Optional[int] = None) -> Iterator[Board]:
        """The boards this node holds."""
        return self._pages("/api/boards", "boards", {"limit": limit})

    def open_board(self, name: str, mode: Optional[str] = None) -> Board:
        """
        Operator: opens (or creates) board ``name`` in ``mode`` (``local`` or ``eventual``); without
        a mode, the one it has, or eventual for a new board. A board keeps its mode (409).
        """
        return cast(Board, self.request("POST", "/api/boards", body=_without_none({"name": name, "mode": mode})))

    def get_board(self, name: str) -> Board:
        """One board."""
        return cast(Board, self._get(f"/api/boards/{_segment(name, 'name')}"))

    def list_worknodes(
        self,
        board: str,
        *,
        status: Optional[str] = None,
        assignee: Optional[str] = None,
        kind: Optional[str] = None,
        parent: Optional[str] = None,
        ready: Optional[bool] = None,
        limit: Optional[int] = None,
    ) -> Iterator[WorkItem]:
        """The items of ``board`` the caller may read, filtered."""
        query = {
            "board": board,
            "status": status,
            "assignee": assignee,
            "kind": kind,
            "parent": parent,
            "ready": ready,
            "limit": limit,
        }
        return self._pages("/api/worknodes", "items", query)

    def create_worknode(
        self,
        board: str,
        title: str,
        *,
        id: Optional[str] = None,
        parent: Optional[str] = None,
        description: Optional[str] = None,
        kind: Optional[str] = None,
        skills: Optional[Sequence[str]] = None,
        deps: Optional[Sequence[str]] = None,
        priority: Optional[int] = None,
        assignee: Optional[str] = None,
        as_: Optional[str] = None,
    ) -> OpResult:
        """
        Creates a work item (kind ``task`` unless said, ``goal`` for a goal) on ``board``; the node
        picks the id when ``id`` is left out. ``deps`` are item ids on the same board.
        """
        body = _without_none(
            {
                "as": as_,
                "board": board,
                "id": id,
                "parent": parent,
                "title": title,
                "description": description,
                "kind": kind,
                "skills": list(skills) if skills is not None else None,
                "deps": list(deps) if deps is not None else None,
                "priority": priority,
                "assignee": assignee,
            }
        )
        return cast(OpResult, self.request("POST", "/api/worknodes", body=body))

    def get_worknode(self, ref: str) -> WorkItem:
        """One work item (``"<board>:<item>"``) with its history."""
        return cast(WorkItem, self._get(f"/api/worknodes/{_segment(ref, 'ref')}"))

    def update_worknode(
        self,
        ref: str,
        *,
        title: Optional[str] = None,
        description: Optional[str] = None,
        priority: Optional[int] = None,
        skills: Optional[Sequence[str]] = None,
        as_: Optional[str] = None,
    ) -> OpResult:
        """Changes a work item's title, description, priority or skills."""
        body = _without_none(
            {
                "as": as_,
                "title": title,
                "description": description,
                "priority": priority,
                "skills": list(skills) if skills is not None else None,
            }
        )
        return cast(OpResult, self.request("PUT", f"/api/worknodes/{_segment(ref, 'ref')}", body=body))

    def delete_worknode(self, ref: str, *, as_: Optional[str] = None) -> OpResult:
        """Deletes a work item."""
        return cast(
            OpResult, self.request("DELETE", f"/api/worknodes/{_segment(ref, 'ref')}", query={"as": as_})
        )

    def _task(self, ref: str, action: str, body: Mapping[str, Any]) -> OpResult:
        path = f"/api/tasks/{_segment(ref, 'ref')}/{action}"
        return cast(OpResult, self.request("POST", path, body=_without_none(body)))

    def claim_task(self, ref: str, *, as_: Optional[str] = None) -> OpResult:
        """
        Claims a ready, unassigned task. A refusal by the board (claimed already, not ready) answers
        ``outcome.accepted`` false with the board's error name in ``outcome.error``.
        """
        return self._task(ref, "claim", {"as": as_})

    def assign_task(self, ref: str, assignee: Optional[str], *, as_: Optional[str] = None) -> OpResult:
        """Assigns a task to ``assignee`` (None clears its assignee)."""
        # assignee None goes to the node as null (it clears), so the body is not stripped of Nones
        body: Dict[str, Any] = {"assignee": assignee}
        if as_ is not None:
            body["as"] = as_
        return cast(OpResult, self.request("POST", f"/api/tasks/{_segment(ref, 'ref')}/assign", body=body))

    def release_task(self, ref: str, *, reason: Optional[str] = None, as_: Optional[str] = None) -> OpResult:
        """Gives back a task one holds."""
        return self._task(ref, "release", {"as": as_, "reason": reason})

    def progress_task(
        self,
        ref: str,
        percent: float,
        *,
        message: Optional[str] = None,
        status: Optional[str] = None,
        as_: Optional[str] = None,
    ) -> OpResult:
        """Reports progress (0-100) on a task one holds; ``status`` may say input-required or auth-required."""
        return self._task(ref, "progress", {"as": as_, "percent": percent, "message": message, "status": status})

    def complete_task(
        self,
        ref: str,
        *,
        result: Any = None,
        artifacts: Optional[Sequence[Artifact]] = None,
        as_: Optional[str] = None,
    ) -> OpResult:
        """Completes a task one holds, with its ``result`` (any JSON) and ``artifacts``."""
        arts = [dict(a) for a in artifacts] if artifacts is not None else None
        return self._task(ref, "complete", {"as": as_, "result": result, "artifacts": arts})

    def fail_task(
        self, ref: str, error: str, *, rejected: Optional[bool] = None, as_: Optional[str] = None
    ) -> OpResult:
        """Fails a task one holds with ``error`` (with ``rejected=True``, declines it)."""
        return self._task(ref, "fail", {"as": as_, "error": error, "rejected": rejected})

    def cancel_task(self, ref: str, *, reason: Optional[str] = None, as_: Optional[str] = None) -> OpResult:
        """Cancels a task."""
        return self._task(ref, "cancel", {"as": as_, "reason": reason})

    def handoff_task(self, ref: str, to: str, *, state: Any = None, as_: Optional[str] = None) -> OpResult:
        """Hands a task one holds to agent ``to``, with its ``state`` so far."""
        return self._task(ref, "handoff", {"as": as_, "to": to, "state": state})

    # ------------------------------------------------------------------ events

    def events_page(
        self,
        *,
        since: Optional[HlcLike] = None,
        after: Optional[str] = None,
        limit: Optional[int] = None,
        wait: Optional[float] = None,
    ) -> EventPage:
        """
        One page of events in HLC order, after ``since`` (an HLC) or ``after`` (a cursor: the page's
        ``cursor`` or an event's). With ``wait`` (seconds, at most 60) an empty page waits for the
        next event. A cursor the node cannot resume from raises ``CursorExpired``.
        """
        wait_ms = _ms(wait, "wait")
        query = {
            "since": hlc_text(since) if since is not None else None,
            "after": after,
            "limit": limit,
            "wait": wait_ms,
        }
        try:
            return cast(EventPage, self._get("/api/events", query, self.timeout + (wait_ms or 0) / 1000))
        except ApiProblem as problem:
            if problem.status == 410:
                raise _expired(problem, None) from None
            raise

    def events(
        self,
        *,
        since: Optional[HlcLike] = None,
        last_event_id: Optional[str] = None,
        resume_missed: bool = True,
        max_retries: int = DEFAULT_MAX_RETRIES,
        read_timeout: float = DEFAULT_STREAM_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> "EventStream":
        """
        The node's events as they happen, over server-sent events (``GET /api/events/stream``): those
        after ``since`` (an HLC) or after ``last_event_id`` (an event's ``cursor``) first, then live.
        Connects now (a refusal raises here); iterate the answer for events. See ``EventStream``.
        """
        return EventStream(
            self,
            since=hlc_text(since) if since is not None else None,
            last_event_id=last_event_id,
            resume_missed=resume_missed,
            max_retries=max_retries,
            read_timeout=read_timeout,
            max_event_size=max_event_size,
        )

    # ------------------------------------------------------------------ documents

    def list_documents(self, *, limit: Optional[int] = None) -> Iterator[DocumentInfo]:
        """The shared documents this node holds."""
        return self._pages("/api/documents", "documents", {"limit": limit})

    def get_document(self, name: str) -> Document:
        """A document's value."""
        return cast(Document, self._get(f"/api/documents/{_segment(name, 'name')}"))

    def update_document(
        self,
        name: str,
        update: DocumentUpdate,
        *,
        type: Optional[str] = None,
        public: Optional[bool] = None,
        as_: Optional[str] = None,
    ) -> UpdatedDocument:
        """
        Applies ``update`` (``{"op": "set", "value": …}``, ``{"op": "increment"}``, … see
        ``DocumentUpdate``) to document ``name``. With ``type`` (``lww-register``, ``or-map``, …) a
        document this node lacks is opened; ``public`` makes a new one readable by any peer. An
        agent writes as itself; the operator as ``as_``, else as the node.
        """
        body = _without_none({"as": as_, "type": type, "public": public})
        body["update"] = dict(update)
        return cast(UpdatedDocument, self.request("POST", f"/api/documents/{_segment(name, 'name')}", body=body))

    # ------------------------------------------------------------------ certificates

    def list_certificates(self, *, subject: Optional[str] = None, limit: Optional[int] = None) -> Iterator[Certificate]:
        """The SPKI certificates this node holds (those about ``subject``); an agent's token sees its own."""
        return self._pages("/api/certificates", "certificates", {"subject": subject, "limit": limit})

    def issue_certificate(
        self,
        subject: str,
        tag: str,
        *,
        propagate: Optional[bool] = None,
        not_before: Optional[str] = None,
        not_after: Optional[str] = None,
        online_crl: Optional[bool] = None,
    ) -> Certificate:
        """
        Operator: issues a certificate granting ``tag`` (an S-expression) to ``subject`` (a principal,
        a peer id or an SDSI name) with the node's key; ``not_before``/``not_after`` as the CLI takes
        a time (``+30d``, ``2026-01-01``).
        """
        body = _without_none(
            {
                "subject": subject,
                "tag": tag,
                "propagate": propagate,
                "notBefore": not_before,
                "notAfter": not_after,
                "onlineCrl": online_crl,
            }
        )
        return cast(Certificate, self.request("POST", "/api/certificates", body=body))


_SINCE_IN_DETAIL = re.compile(r"\bsince=(\d{1,16}\.\d{1,10})\b")


def _expired(problem: ApiProblem, since: Optional[str]) -> CursorExpired:
    """
    A 410 on the events routes. ``since``, the HLC to resume from: the one the node names (a
    ``since`` or ``hlc`` member, else the ``since=`` its detail gives), else the last event's.
    """
    body = problem.problem
    named: Any = body.get("since", body.get("hlc"))
    if named is None:
        said = _SINCE_IN_DETAIL.search(problem.detail)
        named = said.group(1) if said else None
    try:
        if named is not None:
            since = hlc_text(named)
    except (TypeError, ValueError):
        pass
    return CursorExpired(problem.status, body, method=problem.method, url=problem.url, since=since)


class EventStream(Iterator[Event]):
    """
    The node's events over server-sent events, as an iterator (``client.events(...)`` makes one).

    A dropped connection (the node restarted its API, a read timed out, the network broke) is
    reconnected with ``Last-Event-ID`` set to the cursor of the last event received, so the
    iteration goes on exactly after it, with no duplicate and no gap; ``max_retries`` failed
    attempts in a row (waiting 1 s, 2 s, 4 s, … at most 30 s, or from what the server's ``retry:``
    says, at least 0.1 s) raise ``ConnectionFailed``. A refusal on reconnecting raises ``ApiProblem`` (a cursor
    the node cannot resume from, ``CursorExpired``: resume with ``since=error.since``). When the
    node ends the stream because this reader fell behind (``event: missed``), the stream reconnects
    from the cursor it names and goes on (nothing is lost while the node still keeps those events);
    with ``resume_missed=False`` it raises ``EventsMissed`` instead.

    ``last_event_id`` is the cursor of the last event handed out (keep it to resume later with
    ``client.events(last_event_id=...)``); ``reconnects`` counts reconnections. ``close()`` ends the
    iteration, also from another thread (a blocked read returns). Usable as a context manager.
    """

    last_event_id: Optional[str]
    reconnects: int

    def __init__(
        self,
        client: Client,
        *,
        since: Optional[str],
        last_event_id: Optional[str],
        resume_missed: bool,
        max_retries: int,
        read_timeout: float,
        max_event_size: int,
    ) -> None:
        if last_event_id is not None and (
            not last_event_id or len(last_event_id) > 4096 or not _HEADER_SAFE.match(last_event_id)
        ):
            raise ValueError("last_event_id must be an event's cursor (visible ASCII, at most 4096 characters)")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if read_timeout <= 0:
            raise ValueError("read_timeout must be a positive number of seconds")
        self._client = client
        self._since = since
        self._resume_mark = last_event_id
        self.last_event_id = last_event_id
        self.reconnects = 0
        self.resume_missed = resume_missed
        self.max_retries = max_retries
        self.read_timeout = read_timeout
        self.max_event_size = max_event_size
        self._pending: Deque[Event] = deque()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._resp: Optional[http.client.HTTPResponse] = None
        self._parser: Optional[SseParser] = None
        self._url = client.url + "/api/events/stream"
        self._closed = False
        self._wake = threading.Event()
        self._failures = 0
        self._immediate = False
        self._last_error: Optional[BaseException] = None
        self._retry_ms: Optional[int] = None
        self._last_hlc: Optional[str] = None
        self._failed: Optional[CyberspaceError] = None
        self._reading = False
        self._connect()

    # -------------------------------------------------------------- connecting

    def _connect(self) -> None:
        """One attempt: on success the stream reads from a fresh connection."""
        client = self._client
        headers = client._headers("text/event-stream")
        headers["Cache-Control"] = "no-store"
        query: Dict[str, Any] = {}
        mark = self._resume_mark
        if mark is not None:
            headers["Last-Event-ID"] = mark
        elif self._since is not None:
            query["since"] = self._since
        target = client._target("/api/events/stream", query)
        url = client.url + target[len(client.base_path) :]
        # a cursor (or resume point) the node sent that is no header value: nothing to resume with
        if mark is not None and not _cursor_ok(mark):
            raise InvalidResponse(
                url,
                f"the node's cursor {mark[:80]!r} cannot be sent back as Last-Event-ID (visible ASCII, "
                f"at most {MAX_CURSOR_LENGTH} characters): the stream cannot resume after it",
            )
        # until the stream is open (or refused, its body read), one deadline; then each read its own
        deadline = _Deadline(self.read_timeout)
        conn, resp = client._open("GET", target, headers, None, deadline)
        if resp.status != 200:
            try:
                raw = client._read(resp, url, deadline)
            finally:
                conn.close()
            if resp.status >= 400:
                problem = client._problem(resp.status, raw, resp, "GET", url)
                if problem.status == 410:
                    raise _expired(problem, self._last_hlc)
                raise problem
            raise InvalidResponse(url, f"unexpected status {resp.status} {resp.reason}")
        kind = (resp.getheader("content-type") or "").split(";")[0].strip().lower()
        if kind != "text/event-stream":
            conn.close()
            raise InvalidResponse(url, f"the answer is {kind or 'untyped'}, not text/event-stream")
        deadline.lift(self.read_timeout)
        self._conn, self._resp = conn, resp
        self._parser = SseParser(self.max_event_size, source=url)
        if self._closed:
            self._drop()

    def _drop(self) -> None:
        conn = self._conn
        self._conn = self._resp = self._parser = None
        if conn is not None:
            conn.close()

    def _reopen(self) -> None:
        """Connects again after the last event received, waiting between failed attempts."""
        while not self._closed:
            if self._failures > self.max_retries:
                last = self._last_error
                self.close()
                reason = _describe(last) if last is not None else "the stream kept ending"
                raise ConnectionFailed(
                    self._url,
                    reason,
                    f"the event stream at {self._url} failed {self._failures} times in a row "
                    f"(last: {reason}); resume with last_event_id={self.last_event_id!r}",
                ) from last
            if self._immediate:
                self._immediate = False
            else:
                base = (self._retry_ms / 1000) if self._retry_ms is not None else 1.0
                delay = min(base * (2 ** max(self._failures - 1, 0)), MAX_RETRY_DELAY)
                if self._wake.wait(delay):
                    return  # closed while waiting
            try:
                self._connect()
                self.reconnects += 1
                return
            except ApiProblem as problem:
                if problem.status >= 500 or problem.status == 429:
                    self._failures += 1
                    self._last_error = problem
                    continue
                self.close()
                raise
            except ConnectionFailed as err:
                self._failures += 1
                self._last_error = err
            except CyberspaceError:
                # the node's own answer cannot be gone on with (a cursor that is no header value…)
                self.close()
                raise

    # -------------------------------------------------------------- reading

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        while True:
            if self._pending:
                event = self._pending.popleft()
                self.last_event_id = event.get("cursor", self.last_event_id)
                hlc = event.get("hlc")
                if isinstance(hlc, list) and len(hlc) == 2:
                    self._last_hlc = f"{hlc[0]}.{hlc[1]}"
                return event
            if self._failed is not None:
                # raised once the events read before it are handed out
                err, self._failed = self._failed, None
                raise err
            if self._closed:
                self._drop()
                raise StopIteration
            if self._resp is None:
                self._reopen()
                continue
            assert self._parser is not None
            chunk = b""
            self._reading = True
            try:
                chunk = self._resp.read1(65536)
                if not chunk:
                    self._last_error = ConnectionFailed(self._url, "the node ended the stream")
            except socket.timeout:
                self._last_error = RequestTimedOut(self._url, self.read_timeout)
            except (OSError, ValueError, http.client.HTTPException) as err:
                # ValueError: the connection was closed under the read (close() from another thread)
                self._last_error = ConnectionFailed(self._url, _describe(err))
            finally:
                self._reading = False
            if self._closed:
                continue
            if not chunk:
                self._drop()
                if not self._immediate:
                    self._failures += 1
                continue
            try:
                for sse in self._parser.feed(chunk):
                    self._dispatch(sse)
                if self._parser.retry is not None:
                    self._retry_ms = max(self._parser.retry, int(MIN_SERVER_RETRY_DELAY * 1000))
            except CyberspaceError as err:
                self.close()
                self._drop()
                self._failed = err

    def _dispatch(self, sse: SseEvent) -> None:
        if sse.event == "message":
            try:
                parsed: Any = json.loads(sse.data)
            except ValueError:
                raise InvalidResponse(self._url, f"an event's data is not JSON: {sse.data[:200]!r}") from None
            if not isinstance(parsed, dict):
                raise InvalidResponse(self._url, "an event's data is not a JSON object")
            event = cast(Dict[str, Any], parsed)
            named: Any = event.get("cursor")
            cursor: str = named if isinstance(named, str) else sse.id
            if cursor:
                self._resume_mark = cursor
            self._failures = 0
            self._pending.append(cast(Event, event))
        elif sse.event in ("missed", "end"):
            said: Any = None
            try:
                said = json.loads(sse.data)
            except ValueError:
                pass
            info = cast(Dict[str, Any], said) if isinstance(said, dict) else {}
            resume: Any = info.get("resume")
            if isinstance(resume, str) and resume:
                self._resume_mark = resume
            if sse.event == "missed" and not self.resume_missed:
                missed: Any = info.get("missed")
                raise EventsMissed(missed if isinstance(missed, int) else 0, self._resume_mark)
            # the node ends this stream: go on from where we are, at once (counted as a failure, so
            # a node that only ever says this is given up on after max_retries)
            self._immediate = True
            self._failures += 1

    # -------------------------------------------------------------- control

    def reconnect(self) -> None:
        """Drops the connection now; the next read reconnects at once, after the last event received."""
        self._immediate = True
        self._shutdown()

    def close(self) -> None:
        """Ends the stream: iteration stops (a read blocked in another thread returns)."""
        self._closed = True
        self._wake.set()
        self._shutdown()
        if not self._reading:
            self._drop()  # else the reader drops it when its read returns

    def _shutdown(self) -> None:
        conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._drop()
