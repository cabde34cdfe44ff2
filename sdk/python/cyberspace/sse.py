"""
A parser of server-sent events (``text/event-stream``) per the WHATWG HTML standard's rules,
fed bytes as they arrive: lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at
the start of the next are one line end); ``data:`` lines join with newlines; ``id:`` sets the last
event id, which takes effect at the next blank line and stays until changed (one holding NUL is
ignored); ``retry:`` takes only ASCII digits, at most ``MAX_RETRY_DIGITS`` of them;
lines starting with ``:`` are comments; an event is dispatched at a blank line, and one left
unfinished when the stream ends is dropped. A leading UTF-8 byte order mark is skipped.

The parser bounds memory: an event whose data (or any one line) passes ``max_event_size`` bytes
raises ``EventTooLarge`` rather than growing without end.

Example::

    parser = SseParser()
    for chunk in chunks:
        for event in parser.feed(chunk):
            print(event.event, event.id, event.data)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .errors import EventTooLarge

__all__ = ["SseEvent", "SseParser", "DEFAULT_MAX_EVENT_SIZE"]

#: One event's data (and one line) at most, in bytes, unless the parser is told otherwise.
DEFAULT_MAX_EVENT_SIZE = 1 << 20
#: Digits of a ``retry:`` taken (up to ~115 days in ms); a longer one is ignored.
MAX_RETRY_DIGITS = 10

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its type (``message`` unless ``event:`` said), data and the last event id."""

    event: str
    data: str
    id: str


class SseParser:
    """Turns a byte stream into ``SseEvent``s; keeps the last event id and the server's retry time."""

    #: The last event id as of the last blank line (what a reconnect sends as Last-Event-ID); "" before any.
    last_event_id: str
    #: The reconnection time the server asked for (``retry:``), in milliseconds, or None.
    retry: Optional[int]
    #: How many comment lines (heartbeats) were read.
    comments: int

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE, source: str = "") -> None:
        if max_event_size < 1:
            raise ValueError("max_event_size must be at least 1")
        self.max_event_size = max_event_size
        self.source = source
        self.last_event_id = ""
        self.retry = None
        self.comments = 0
        self._buffer = bytearray()
        self._after_cr = False
        self._bom_checked = False
        self._data: List[str] = []
        self._data_size = 0
        self._event_type = ""
        self._id_buffer = ""

    def feed(self, chunk: bytes) -> List[SseEvent]:
        """Reads ``chunk``; answers the events it completed, in order."""
        if not chunk:
            return []
        buf = self._buffer
        buf += chunk
        if not self._bom_checked:
            if len(buf) < len(_BOM) and _BOM.startswith(bytes(buf)):
                return []
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._bom_checked = True
        events: List[SseEvent] = []
        start = 0
        n = len(buf)
        if self._after_cr and n > 0:
            # the CR that ended the previous chunk's last line: an LF right after it belongs to it
            self._after_cr = False
            if buf[0] == 0x0A:
                start = 1
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                end = cr
                if cr + 1 < n:
                    after = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    after = cr + 1
                    self._after_cr = True
            else:
                end = lf
                after = lf + 1
            self._line(bytes(buf[start:end]), events)
            start = after
        del buf[:start]
        if len(buf) > self.max_event_size:
            raise EventTooLarge(self.source, self.max_event_size)
        return events

    def end(self) -> List[SseEvent]:
        """The stream ended: an unfinished event is dropped (the standard's rule); answers nothing."""
        self._buffer.clear()
        self._after_cr = False
        self._id_buffer = self.last_event_id
        self._data = []
        self._data_size = 0
        self._event_type = ""
        return []

    def _line(self, raw: bytes, events: List[SseEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if line[0] == ":":
            self.comments += 1
            return
        colon = line.find(":")
        if colon == -1:
            field, value = line, ""
        else:
            field, value = line[:colon], line[colon + 1 :]
            if value.startswith(" "):
                value = value[1:]
        if field == "data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_size:
                raise EventTooLarge(self.source, self.max_event_size)
            self._data.append(value)
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry":
            # ASCII digits only (str.isdigit takes others), and few enough: int() of thousands raises
            if 0 < len(value) <= MAX_RETRY_DIGITS and all("0" <= c <= "9" for c in value):
                self.retry = int(value)
        # any other field is ignored

    def _dispatch(self, events: List[SseEvent]) -> None:
        # the id takes effect at a blank line, with or without data (an id-only block moves it too)
        self.last_event_id = self._id_buffer
        if not self._data:
            self._event_type = ""
            return
        data = "\n".join(self._data)
        events.append(SseEvent(event=self._event_type or "message", data=data, id=self.last_event_id))
        self._data = []
        self._data_size = 0
        self._event_type = ""
