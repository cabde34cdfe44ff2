"""
The errors the Cyberspace client raises. Every one derives from ``CyberspaceError``; a refusal by
the node is an ``ApiProblem`` carrying the RFC 9457 problem details the node answered, with the
node's own error name in ``name`` (switch on that, not on the message)::

    try:
        client.claim_task("release:t1")
    except ApiProblem as problem:
        if problem.name == "ItemNotFoundError": ...
        for bad in problem.errors: print(bad["field"], bad["message"])
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, cast

from .types import FieldError, Problem

__all__ = [
    "CyberspaceError",
    "ApiProblem",
    "CursorExpired",
    "EventsMissed",
    "ConnectionFailed",
    "RequestTimedOut",
    "InvalidResponse",
    "EventTooLarge",
]


class CyberspaceError(Exception):
    """Anything that went wrong talking to a Cyberspace node."""


class ApiProblem(CyberspaceError):
    """
    The node refused a request and said why, as problem details (``application/problem+json``).

    ``status`` the HTTP status, ``name`` the node's error name (``InvalidRequestError``,
    ``ItemNotFoundError``, ``AgentTokenScopeError``, …), ``type`` its URN, ``title`` what went wrong
    in general, ``detail`` in this case and how to fix it, ``errors`` each bad field of a request that
    failed validation (``[{"field": "body.title", "message": …}]``), ``problem`` the whole body.
    """

    status: int
    name: str
    type: str
    title: str
    detail: str
    instance: Optional[str]
    errors: List[FieldError]
    problem: Problem
    method: str
    url: str

    def __init__(self, status: int, problem: Mapping[str, Any], *, method: str = "", url: str = "") -> None:
        self.status = status
        body: Dict[str, Any] = dict(problem)
        self.name = _text(body.get("name")) or _name_of_type(body.get("type")) or f"Http{status}"
        self.type = _text(body.get("type")) or f"urn:cyberspace:error:{self.name}"
        self.title = _text(body.get("title")) or f"HTTP {status}"
        # the v0 control API said `error`; problem details say `detail`
        self.detail = _text(body.get("detail")) or _text(body.get("error")) or self.title
        self.instance = _text(body.get("instance")) or None
        raw_errors: Any = body.get("errors")
        self.errors = []
        if isinstance(raw_errors, list):
            for e in cast(List[Any], raw_errors):
                if isinstance(e, dict):
                    fields = cast(Dict[str, Any], e)
                    self.errors.append(
                        {"field": str(fields.get("field", "")), "message": str(fields.get("message", ""))}
                    )
        body.setdefault("status", status)
        body.setdefault("name", self.name)
        body.setdefault("type", self.type)
        body.setdefault("title", self.title)
        body.setdefault("detail", self.detail)
        self.problem = body  # type: ignore[assignment]
        self.method = method
        self.url = url
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" ({self.method} {self.url})" if self.url else ""
        text = f"{self.status} {self.name}: {self.detail}{where}"
        untold = [e for e in self.errors if e["message"] not in self.detail]
        if untold:
            text += "; " + "; ".join(f"{e['field']}: {e['message']}" for e in untold)
        return text


class CursorExpired(ApiProblem):
    """
    The event cursor (``after`` or the stream's Last-Event-ID) is not one this node can resume from:
    it came from an earlier run of the node, or points before what the node still keeps (HTTP 410).
    Resume with ``since=<hlc>`` instead: ``since`` holds that HLC as text — the one the node names,
    else that of the last event this client had — or None when neither is known.
    """

    since: Optional[str]

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any],
        *,
        method: str = "",
        url: str = "",
        since: Optional[str] = None,
    ) -> None:
        super().__init__(status, problem, method=method, url=url)
        self.since = since


class EventsMissed(CyberspaceError):
    """
    The node ended an event stream because this reader fell too far behind (``event: missed``).
    ``missed`` is how many events it dropped, ``resume`` the cursor to go on from (as ``after`` or
    Last-Event-ID): the journal still has them. Raised only by ``events(resume_missed=False)``;
    by default the stream reconnects from ``resume`` by itself.
    """

    missed: int
    resume: Optional[str]

    def __init__(self, missed: int, resume: Optional[str]) -> None:
        self.missed = missed
        self.resume = resume
        super().__init__(
            f"the event stream dropped {missed} events this reader did not keep up with; "
            f"resume after cursor {resume!r}"
        )


class ConnectionFailed(CyberspaceError):
    """The node could not be reached, or the connection broke: ``url`` names where, ``reason`` why."""

    url: str
    reason: str

    def __init__(self, url: str, reason: str, message: Optional[str] = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(message or f"could not reach {url}: {reason}")


class RequestTimedOut(ConnectionFailed):
    """The node did not answer within the timeout (``timeout`` seconds)."""

    timeout: float

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(url, "timed out", f"{url} did not answer within {timeout:g} s")


class InvalidResponse(CyberspaceError):
    """The node answered something this client cannot read (not JSON, too large, not an event stream)."""

    url: str

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class EventTooLarge(InvalidResponse):
    """One server-sent event (or one line of the stream) passed the client's bound (``limit`` bytes)."""

    limit: int

    def __init__(self, url: str, limit: int) -> None:
        self.limit = limit
        super().__init__(url, f"a server-sent event is larger than {limit} bytes")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name_of_type(value: Any) -> str:
    prefix = "urn:cyberspace:error:"
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix) :]
    return ""
