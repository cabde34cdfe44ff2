"""
The server-sent events parser against the WHATWG rules: line ends (LF, CRLF, CR, and a CRLF split
across chunks), data lines joined, ids that persist, comments, retry, the BOM, unfinished events at
the end, and the bound on one event's size. Every stream is also fed split at every byte and in
random pieces: the events must not depend on where the chunks break. Runs without a node.
"""

from __future__ import annotations

import os
import random
import sys
import unittest
from typing import List, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyberspace import EventTooLarge, SseEvent, SseParser  # noqa: E402


def parse(chunks: Sequence[bytes], max_event_size: int = 1 << 20) -> List[SseEvent]:
    parser = SseParser(max_event_size)
    events: List[SseEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.end())
    return events


def splits(data: bytes) -> List[List[bytes]]:
    """The stream whole, cut at each byte once, one byte at a time, and in 50 random ways."""
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    ways += [[data[:i], data[i:]] for i in range(1, len(data))]
    rng = random.Random(16)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        ways.append([data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])])
    return ways


class ParserTest(unittest.TestCase):
    def assert_events(self, data: bytes, expected: List[SseEvent]) -> None:
        for chunks in splits(data):
            self.assertEqual(parse(chunks), expected, f"split as {chunks!r}")

    def test_a_plain_event_with_an_id(self) -> None:
        self.assert_events(b"id: c1\ndata: {\"a\": 1}\n\n", [SseEvent("message", '{"a": 1}', "c1")])

    def test_line_ends_lf_crlf_and_cr_alike(self) -> None:
        expected = [SseEvent("message", "one", ""), SseEvent("message", "two", ""), SseEvent("message", "three", "")]
        self.assert_events(b"data: one\n\ndata: two\r\n\r\ndata: three\r\r", expected)
        # mixed within one event
        self.assert_events(b"event: x\rdata: a\r\ndata: b\n\r\n", [SseEvent("x", "a\nb", "")])

    def test_a_crlf_split_between_chunks_is_one_line_end(self) -> None:
        # had the CR and the LF been read as two line ends, the LF would be a blank line and the
        # first event would be dispatched before its second data line
        parser = SseParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"\ndata: b\r"), [])
        self.assertEqual(parser.feed(b"\n\r"), [SseEvent("message", "a\nb", "")])
        self.assertEqual(parser.feed(b"\n"), [], "the LF after the blank line's CR is part of it")
        self.assertEqual(parser.feed(b"data: c\n\n"), [SseEvent("message", "c", "")])

    def test_multi_line_data_joins_with_newlines(self) -> None:
        self.assert_events(
            b"data: first\ndata:second\ndata:  third\ndata\n\n",
            [SseEvent("message", "first\nsecond\n third\n", "")],
        )

    def test_one_leading_space_is_dropped_from_a_value(self) -> None:
        self.assert_events(b"data:x\n\ndata: x\n\ndata:  x\n\n", [
            SseEvent("message", "x", ""),
            SseEvent("message", "x", ""),
            SseEvent("message", " x", ""),
        ])

    def test_comments_are_not_events_and_are_counted(self) -> None:
        parser = SseParser()
        events = parser.feed(b": heartbeat\n\n:\ndata: a\n: inside an event\ndata: b\n\n: tail\n")
        self.assertEqual(events, [SseEvent("message", "a\nb", "")])
        self.assertEqual(parser.comments, 4)

    def test_the_event_type_applies_to_one_event(self) -> None:
        self.assert_events(
            b"event: missed\ndata: {\"missed\": 3}\n\ndata: plain\n\n",
            [SseEvent("missed", '{"missed": 3}', ""), SseEvent("message", "plain", "")],
        )

    def test_an_id_persists_until_changed_and_an_id_with_nul_is_ignored(self) -> None:
        self.assert_events(
            b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n",
            [
                SseEvent("message", "a", "1"),
                SseEvent("message", "b", "1"),
                SseEvent("message", "c", "1"),
                SseEvent("message", "d", ""),
            ],
        )

    def test_an_id_only_block_moves_the_last_event_id_without_an_event(self) -> None:
        parser = SseParser()
        self.assertEqual(parser.feed(b"id: 7\n\n"), [])
        self.assertEqual(parser.last_event_id, "7")
        self.assertEqual(parser.feed(b"data: x\n\n"), [SseEvent("message", "x", "7")])

    def test_an_id_takes_effect_at_the_blank_line(self) -> None:
        parser = SseParser()
        parser.feed(b"id: 9\ndata: x\n")
        self.assertEqual(parser.last_event_id, "", "not before the event is dispatched")
        parser.feed(b"\n")
        self.assertEqual(parser.last_event_id, "9")
        parser.feed(b"id: 10\ndata: y\n")
        parser.end()
        self.assertEqual(parser.last_event_id, "9", "the unfinished event's id is dropped with it")

    def test_blocks_without_data_dispatch_nothing(self) -> None:
        self.assert_events(b"event: x\n\n\n\nretry: 5\n\ndata: a\n\n", [SseEvent("message", "a", "")])

    def test_retry_takes_only_digits(self) -> None:
        parser = SseParser()
        parser.feed(b"retry: 2500\n\n")
        self.assertEqual(parser.retry, 2500)
        parser.feed(b"retry: 1e3\nretry: -1\nretry:\nretry: 7 \n\n")
        self.assertEqual(parser.retry, 2500, "values with other characters are ignored")

    def test_unknown_fields_and_a_line_without_a_colon(self) -> None:
        self.assert_events(b"foo: bar\nevent\ndata: a\nnonsense\n\n", [SseEvent("message", "a", "")])

    def test_an_unfinished_event_at_the_end_is_dropped(self) -> None:
        self.assert_events(b"data: a\n\ndata: b\n", [SseEvent("message", "a", "")])
        self.assert_events(b"data: a\n\ndata: b", [SseEvent("message", "a", "")])

    def test_a_leading_bom_is_skipped_once(self) -> None:
        self.assert_events(b"\xef\xbb\xbfdata: a\n\n", [SseEvent("message", "a", "")])
        # a second BOM is part of the line: a field named "\ufeffdata" is unknown
        self.assert_events(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [SseEvent("message", "b", "")])

    def test_utf8_split_inside_a_character(self) -> None:
        data = "data: h\u00e9llo \u2603 \U0001f600\n\n".encode("utf-8")
        self.assert_events(data, [SseEvent("message", "h\u00e9llo \u2603 \U0001f600", "")])

    def test_invalid_utf8_is_replaced_not_raised(self) -> None:
        self.assertEqual(parse([b"data: a\xffb\n\n"]), [SseEvent("message", "a\ufffdb", "")])

    def test_an_event_larger_than_the_bound_raises(self) -> None:
        self.assertEqual(parse([b"data: " + b"x" * 90 + b"\n\n"], max_event_size=100)[0].data, "x" * 90)
        parser = SseParser(100)
        with self.assertRaises(EventTooLarge) as raised:
            for _ in range(10):
                parser.feed(b"data: " + b"x" * 20 + b"\n")
        self.assertEqual(raised.exception.limit, 100)

    def test_a_line_that_never_ends_raises_rather_than_growing(self) -> None:
        parser = SseParser(1000)
        with self.assertRaises(EventTooLarge):
            for _ in range(100):
                parser.feed(b"y" * 100)

    def test_the_same_events_whatever_the_chunks_for_a_realistic_stream(self) -> None:
        stream = (
            b": events after the cursor\n\n"
            b"id: eyJhIjoxfQ\ndata: {\"cursor\":\"eyJhIjoxfQ\",\"type\":\"create\"}\n\n"
            b": heartbeat\r\n\r\n"
            b"retry: 1000\r\nid: eyJhIjoyfQ\r\ndata: {\"cursor\":\"eyJhIjoyfQ\",\r\ndata: \"type\":\"claim\"}\r\n\r\n"
            b"event: missed\rdata: {\"missed\":2,\"resume\":\"eyJhIjoyfQ\"}\r\r"
        )
        expected = [
            SseEvent("message", '{"cursor":"eyJhIjoxfQ","type":"create"}', "eyJhIjoxfQ"),
            SseEvent("message", '{"cursor":"eyJhIjoyfQ",\n"type":"claim"}', "eyJhIjoyfQ"),
            SseEvent("missed", '{"missed":2,"resume":"eyJhIjoyfQ"}', "eyJhIjoyfQ"),
        ]
        self.assert_events(stream, expected)


if __name__ == "__main__":
    unittest.main()
