"""
The shapes the node's public API answers, as TypedDicts: the same fields as the zod schemas in
``src/api/schema.ts`` (the one definition the server validates with). Answers are plain dicts
parsed from JSON; these types only tell a type checker (and a reader) what is in them.

HLCs are JSON arrays ``[wall_ms, logical]``; as text (``since=``) they are ``"<wall_ms>.<logical>"``
(see ``hlc_text``). Principals are ``z6Mk…`` text; task references are ``"<board>:<item>"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict

__all__ = [
    "Hlc",
    "FieldError",
    "Problem",
    "Artifact",
    "HistoryEntry",
    "Progress",
    "Handoff",
    "WorkItem",
    "Board",
    "Outcome",
    "OpResult",
    "Event",
    "EventPage",
    "AgentRecord",
    "HostedAgent",
    "AttachedAgent",
    "Token",
    "MintedToken",
    "Message",
    "Inbox",
    "Sent",
    "Replied",
    "Member",
    "WhoAmI",
    "NodeInfo",
    "Fleet",
    "Document",
    "DocumentInfo",
    "DocumentUpdate",
    "UpdatedDocument",
    "Certificate",
    "StoppedAgent",
    "RevokedTokens",
    "ItemStatus",
    "WorkAction",
    "ConsistencyMode",
]

Hlc = List[int]
"""An HLC as JSON: ``[wall_ms, logical]``."""

ItemStatus = Literal[
    "submitted", "working", "input-required", "auth-required", "completed", "failed", "canceled", "rejected"
]
WorkAction = Literal[
    "create", "update", "delete", "assign", "claim", "release", "progress", "complete", "fail", "cancel", "handoff"
]
ConsistencyMode = Literal["local", "eventual", "strong"]


class FieldError(TypedDict):
    field: str
    message: str


class _ProblemRequired(TypedDict):
    type: str
    title: str
    status: int
    detail: str
    name: str


class Problem(_ProblemRequired, total=False):
    """RFC 9457 problem details, as the node answers every error (extension members kept)."""

    instance: str
    errors: List[FieldError]


class Artifact(TypedDict):
    cid: str
    name: str
    mediaType: str


class _HistoryEntryRequired(TypedDict):
    hlc: Hlc
    actor: str
    op: str
    status: str


class HistoryEntry(_HistoryEntryRequired, total=False):
    assignee: str
    message: str


class _ProgressRequired(TypedDict):
    percent: float


class Progress(_ProgressRequired, total=False):
    message: str


# `from` is a Python keyword, hence the functional form: read it as item["handoff"]["from"]
_HandoffRequired = TypedDict("_HandoffRequired", {"from": str})


class Handoff(_HandoffRequired, total=False):
    state: Any


class _WorkItemRequired(TypedDict):
    ref: str
    board: str
    id: str
    path: str
    title: str
    kind: str
    status: str
    skills: List[str]
    deps: List[str]
    ready: bool
    priority: float
    artifacts: List[Artifact]
    created: Hlc
    updated: Hlc
    createdBy: str
    deleted: bool


class WorkItem(_WorkItemRequired, total=False):
    """A work item (a goal, a task) on a board; ``ref`` is ``"<board>:<item>"``."""

    parent: str
    description: str
    assignee: str
    progress: Progress
    result: Any
    error: str
    handoff: Handoff
    history: List[HistoryEntry]
    """Present when one item is read (``get_worknode``); lists leave it out."""


class _OutcomeRequired(TypedDict):
    accepted: bool


class Outcome(_OutcomeRequired, total=False):
    reason: str
    winner: str
    error: str
    """For a refusal, the name of the board's error for it."""


class OpResult(TypedDict):
    """What became of an operation where it was submitted, and the item after it (None once deleted)."""

    ref: str
    op: str
    outcome: Outcome
    item: Optional[WorkItem]


class Board(TypedDict):
    name: str
    mode: str
    items: int
    ops: int


class _EventRequired(TypedDict):
    cursor: str
    hlc: Hlc
    source: str
    type: str
    subject: str
    data: Any


class Event(_EventRequired, total=False):
    """
    One entry of the node's event journal. ``cursor`` is where it sits: pass it as ``after`` (or as
    the stream's Last-Event-ID) to go on after it. ``late`` is True when the event is out of HLC
    order: it reached the node more than the journal's settle delay (500 ms by default) after its
    HLC time, after later events had been delivered; it is still delivered, once.
    """

    id: str
    late: bool


class _EventPageRequired(TypedDict):
    events: List[Event]
    more: bool


class EventPage(_EventPageRequired, total=False):
    cursor: str


class AgentRecord(TypedDict):
    agent: str
    host: str
    addrs: List[str]
    seq: int
    expires: int
    card: Dict[str, Any]


class HostedAgent(TypedDict):
    principal: str
    kind: str
    id: str


class AttachedAgent(HostedAgent, total=False):
    attached: bool
    token: str
    """An external agent's token: shown this once."""
    tokenId: str


class Token(TypedDict):
    id: str
    agent: str
    created: int
    lastUsed: Optional[int]


class MintedToken(Token):
    token: str
    """The secret: shown this once."""


Message = TypedDict(
    "Message", {"id": str, "from": str, "to": str, "type": str, "request": bool, "body": Any}
)
"""A message in an agent's inbox (``message["from"]``: ``from`` is a Python keyword)."""


class Inbox(TypedDict):
    agent: str
    messages: List[Message]


class _SentRequired(TypedDict):
    id: str


class Sent(_SentRequired, total=False):
    response: Any
    to: str


class Replied(TypedDict):
    agent: str
    id: str
    answered: bool


class Member(TypedDict):
    """A member of the cluster as this node's view holds it."""

    principal: str
    peerId: str
    state: Literal["alive", "suspect", "dead", "left"]
    incarnation: int
    addrs: List[str]
    lastHeard: float
    """When this node last had direct word from it, ms since the epoch."""
    since: float
    """When it entered ``state`` in this view, ms since the epoch."""
    meta: Dict[str, str]
    self: bool
    """This node itself."""


class _WhoAmIRequired(TypedDict):
    caller: Literal["operator", "agent"]
    principal: str
    node: str


class WhoAmI(_WhoAmIRequired, total=False):
    tokenId: str


class NodeInfo(TypedDict):
    peerId: str
    multiaddrs: List[str]
    kinds: List[str]


class Fleet(TypedDict):
    totals: Dict[str, Any]
    members: List[Any]
    agents: List[Any]


class DocumentInfo(TypedDict):
    name: str
    type: str
    open: bool
    public: bool


class Document(TypedDict):
    name: str
    type: str
    value: Any
    """As DAG-JSON."""
    heads: List[str]
    events: int
    """Events applied since its base snapshot."""
    public: bool


class UpdatedDocument(Document):
    cid: Optional[str]


class _DocumentUpdateRequired(TypedDict):
    op: Literal["set", "assign", "increment", "decrement", "add", "remove", "delete", "clear"]


class DocumentUpdate(_DocumentUpdateRequired, total=False):
    """
    One update of a document. By type: a register ``set``s a value; a counter ``increment``s (a
    pn-counter also ``decrement``s) by ``value`` (default 1); an or-set ``add``s, ``remove``s a
    value or is ``clear``ed; a text is ``set`` to a string; an or-map takes every op but clear at a
    ``path`` of field names.
    """

    path: List[str]
    value: Any


class Certificate(TypedDict):
    """An SPKI certificate this node holds, in both text forms."""

    hash: str
    """sha256 of its canonical (cert …), hex: what a CRL names it by."""
    type: Literal["auth", "name"]
    issuer: str
    subject: str
    """A principal for a key subject, else the subject's S-expression."""
    advanced: str
    transport: str


class StoppedAgent(TypedDict):
    agent: str
    stopped: bool


class RevokedTokens(TypedDict):
    revoked: List[Token]
