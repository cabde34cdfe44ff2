"""
The Python client of Cyberspace: a node's public HTTP API from Python, standard library only.

Example::

    from cyberspace import Client
    client = Client(url, token)            # url and token: see sdk/python/README.md
    for task in client.agent_tasks(agent_id):
        client.complete_task(task["ref"], result={"done": True})
    for event in client.events(since=hlc):  # server-sent events, resumed with Last-Event-ID
        print(event["type"], event["subject"])
"""

from .client import Client, EventStream, HlcLike, __version__, hlc_text
from .errors import (
    ApiProblem,
    ConnectionFailed,
    CursorExpired,
    CyberspaceError,
    EventsMissed,
    EventTooLarge,
    InvalidResponse,
    RequestTimedOut,
)
from .sse import SseEvent, SseParser
from .types import (
    AgentRecord,
    Artifact,
    Board,
    Event,
    EventPage,
    HostedAgent,
    Message,
    OpResult,
    Outcome,
    Problem,
    Token,
    WhoAmI,
    WorkItem,
)

__all__ = [
    "Client",
    "EventStream",
    "HlcLike",
    "hlc_text",
    "__version__",
    "CyberspaceError",
    "ApiProblem",
    "CursorExpired",
    "EventsMissed",
    "ConnectionFailed",
    "RequestTimedOut",
    "InvalidResponse",
    "EventTooLarge",
    "SseEvent",
    "SseParser",
    "AgentRecord",
    "Artifact",
    "Board",
    "Event",
    "EventPage",
    "HostedAgent",
    "Message",
    "OpResult",
    "Outcome",
    "Problem",
    "Token",
    "WhoAmI",
    "WorkItem",
]
