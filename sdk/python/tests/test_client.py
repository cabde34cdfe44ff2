"""
The client against a real node (test/sdk/python.test.ts starts one and sets the environment):
who the token is, a task created, claimed, progressed and completed as the agent and found among
its tasks (across pages), the board's refusals and the API's problems (a bad reference names the
field, an unknown item, another agent's name, an operator route, a bad token), and the event
stream: the task's operations in HLC order, resumed after a dropped connection with
Last-Event-ID without a gap or a duplicate, and the same events paged.

Environment: CYBERSPACE_URL, CYBERSPACE_TOKEN (an external agent's), CYBERSPACE_AGENT (its
principal), CYBERSPACE_OTHER_AGENT (another external agent, acted as with the operator's token),
CYBERSPACE_OPERATOR_TOKEN, CYBERSPACE_BOARD (open, both agents granted its work). Skipped without
CYBERSPACE_URL.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import unittest
import uuid
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyberspace import ApiProblem, Client, CursorExpired, Event, OpResult  # noqa: E402

URL = os.environ.get("CYBERSPACE_URL", "")
TOKEN = os.environ.get("CYBERSPACE_TOKEN", "")
AGENT = os.environ.get("CYBERSPACE_AGENT", "")
OTHER = os.environ.get("CYBERSPACE_OTHER_AGENT", "")
OPERATOR_TOKEN = os.environ.get("CYBERSPACE_OPERATOR_TOKEN", "")
BOARD = os.environ.get("CYBERSPACE_BOARD", "")
OLD_CURSOR = os.environ.get("CYBERSPACE_OLD_CURSOR", "")
OLD_HLC = os.environ.get("CYBERSPACE_OLD_HLC", "")

#: Most events a test reads from the stream before giving up on the ones it waits for.
MAX_EVENTS = 2000
#: Longest a test reads the stream, in seconds.
STREAM_DEADLINE = 60.0

_ids = itertools.count(1)


def fresh_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{uuid.uuid4().hex[:8]}"


def subject_of(item_id: str) -> List[str]:
    """What an event about the item may be named: the journal's ``board/item`` or a ref ``board:item``."""
    return [f"{BOARD}/{item_id}", f"{BOARD}:{item_id}"]


def hlc_key(event: Event) -> List[int]:
    return list(event["hlc"])


@unittest.skipUnless(URL, "CYBERSPACE_URL is not set: test/sdk/python.test.ts runs these against a node")
class LiveNodeTest(unittest.TestCase):
    client: Client
    operator: Client

    @classmethod
    def setUpClass(cls) -> None:
        for name, value in [
            ("CYBERSPACE_TOKEN", TOKEN),
            ("CYBERSPACE_AGENT", AGENT),
            ("CYBERSPACE_OTHER_AGENT", OTHER),
            ("CYBERSPACE_OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("CYBERSPACE_BOARD", BOARD),
            ("CYBERSPACE_OLD_CURSOR", OLD_CURSOR),
            ("CYBERSPACE_OLD_HLC", OLD_HLC),
        ]:
            if not value:
                raise RuntimeError(f"{name} is not set (CYBERSPACE_URL is): see test/sdk/python.test.ts")
        cls.client = Client(URL, TOKEN, timeout=30)
        cls.operator = Client(URL, OPERATOR_TOKEN, timeout=30)

    def create(self, prefix: str = "t", **fields: Any) -> str:
        item_id = fresh_id(prefix)
        created = self.client.create_worknode(BOARD, f"task {item_id}", id=item_id, **fields)
        self.assertTrue(created["outcome"]["accepted"], created["outcome"])
        return f"{BOARD}:{item_id}"

    def assert_accepted(self, result: OpResult) -> None:
        self.assertTrue(result["outcome"]["accepted"], f"{result['op']} refused: {result['outcome']}")

    # ------------------------------------------------------------------ who and where

    def test_whoami_names_the_agent_and_the_operator(self) -> None:
        me = self.client.whoami()
        self.assertEqual((me["caller"], me["principal"]), ("agent", AGENT))
        self.assertEqual(self.operator.whoami()["caller"], "operator")
        node = self.client.node()
        self.assertEqual(node["peerId"], me["node"])
        self.assertIn("external", node["kinds"])

    def test_lists_the_board_and_the_agent_hosted_here(self) -> None:
        boards = {b["name"]: b for b in self.client.list_boards()}
        self.assertIn(BOARD, boards)
        self.assertEqual(self.client.get_board(BOARD)["name"], BOARD)
        hosted = [a["principal"] for a in self.client.hosted_agents()]
        self.assertEqual(hosted, [AGENT], "an agent's token sees only its own agent")
        hosted_all = {a["principal"] for a in self.operator.hosted_agents()}
        self.assertTrue({AGENT, OTHER} <= hosted_all)

    # ------------------------------------------------------------------ work

    def test_a_task_created_claimed_progressed_and_completed(self) -> None:
        item_id = fresh_id("life")
        created = self.client.create_worknode(
            BOARD, "write the release notes", id=item_id, skills=["docs"], priority=3, description="for 1.0"
        )
        self.assert_accepted(created)
        ref = f"{BOARD}:{item_id}"
        item = created["item"]
        assert item is not None
        self.assertEqual((item["ref"], item["board"], item["id"]), (ref, BOARD, item_id))
        self.assertEqual((item["status"], item["createdBy"], item["skills"]), ("submitted", AGENT, ["docs"]))

        claimed = self.client.claim_task(ref)
        self.assert_accepted(claimed)
        assert claimed["item"] is not None
        self.assertEqual((claimed["item"]["status"], claimed["item"].get("assignee")), ("working", AGENT))
        mine = [t["ref"] for t in self.client.agent_tasks(AGENT, board=BOARD, status="working")]
        self.assertIn(ref, mine)

        progressed = self.client.progress_task(ref, 50, message="half done")
        self.assert_accepted(progressed)
        assert progressed["item"] is not None
        self.assertEqual(progressed["item"].get("progress"), {"percent": 50, "message": "half done"})

        result = {"notes": "docs/release-1.0.md", "lines": 42, "nested": [1, {"ok": True}]}
        completed = self.client.complete_task(ref, result=result)
        self.assert_accepted(completed)
        assert completed["item"] is not None
        self.assertEqual(completed["item"]["status"], "completed")
        self.assertEqual(completed["item"].get("result"), result)

        read = self.client.get_worknode(ref)
        self.assertEqual(read["status"], "completed")
        self.assertEqual([h["op"] for h in read.get("history", [])], ["create", "claim", "progress", "complete"])
        self.assertNotIn(ref, [t["ref"] for t in self.client.agent_tasks(AGENT, board=BOARD, status="working")])

    def test_agent_tasks_follow_the_pages(self) -> None:
        refs = [self.create("paged") for _ in range(3)]
        for ref in refs:
            self.assert_accepted(self.client.claim_task(ref))
        listed = [t["ref"] for t in self.client.agent_tasks(AGENT, board=BOARD, limit=1)]
        self.assertEqual(len(listed), len(set(listed)), "no task twice across pages")
        self.assertTrue(set(refs) <= set(listed), f"{refs} not all in {listed}")
        items = [i["ref"] for i in self.client.list_worknodes(BOARD, assignee=AGENT, status="working", limit=2)]
        self.assertTrue(set(refs) <= set(items))

    def test_update_assign_handoff_and_delete(self) -> None:
        ref = self.create("edit")
        updated = self.client.update_worknode(ref, title="a better title", priority=7)
        self.assert_accepted(updated)
        assert updated["item"] is not None
        self.assertEqual((updated["item"]["title"], updated["item"]["priority"]), ("a better title", 7))
        self.assert_accepted(self.client.claim_task(ref))
        handed = self.client.handoff_task(ref, OTHER, state={"step": 2})
        self.assert_accepted(handed)
        assert handed["item"] is not None
        self.assertEqual(handed["item"].get("assignee"), OTHER)
        self.assertEqual(handed["item"].get("handoff"), {"from": AGENT, "state": {"step": 2}})
        # the other agent, acted as by the operator, gives it back
        self.assert_accepted(self.operator.release_task(ref, reason="not mine", as_=OTHER))
        deleted = self.client.delete_worknode(ref)
        self.assert_accepted(deleted)
        self.assertIsNone(deleted["item"])

    def test_a_refused_operation_is_a_409_naming_the_boards_error_and_changes_nothing(self) -> None:
        ref = self.create("refused")
        self.assert_accepted(self.operator.claim_task(ref, as_=OTHER))
        with self.assertRaises(ApiProblem) as claimed:
            self.client.claim_task(ref)
        self.assertEqual((claimed.exception.status, claimed.exception.name), (409, "ItemAlreadyClaimedError"))
        self.assertIn(OTHER, claimed.exception.detail, "it names who holds it")
        with self.assertRaises(ApiProblem) as completed:
            self.client.complete_task(ref, result=1)
        self.assertEqual((completed.exception.status, completed.exception.name), (409, "NotAssigneeError"))
        item = self.client.get_worknode(ref)
        self.assertEqual((item["status"], item.get("assignee")), ("working", OTHER), "nothing changed")

    # ------------------------------------------------------------------ problems

    def test_a_bad_reference_is_a_problem_naming_the_field(self) -> None:
        with self.assertRaises(ApiProblem) as raised:
            self.client.get_worknode("not a ref")
        problem = raised.exception
        self.assertEqual((problem.status, problem.name), (400, "InvalidRequestError"))
        self.assertEqual([e["field"] for e in problem.errors], ["params.id"])
        self.assertEqual(problem.problem["status"], 400)
        self.assertTrue(problem.type.startswith("urn:cyberspace:error:"))
        with self.assertRaises(ApiProblem) as empty:
            self.client.create_worknode(BOARD, "")
        self.assertEqual(empty.exception.status, 400)
        self.assertIn("body.title", [e["field"] for e in empty.exception.errors])

    def test_an_unknown_item_and_board_are_not_found(self) -> None:
        for call in (
            lambda: self.client.get_worknode(f"{BOARD}:no-such-item"),
            lambda: self.client.claim_task(f"{BOARD}:no-such-item"),
        ):
            with self.assertRaises(ApiProblem) as raised:
                call()
            self.assertEqual((raised.exception.status, raised.exception.name), (404, "ItemNotFoundError"))
        with self.assertRaises(ApiProblem) as board:
            self.client.get_board("no-such-board")
        self.assertEqual((board.exception.status, board.exception.name), (404, "BoardNotFoundError"))

    def test_an_agent_token_acts_only_as_its_agent(self) -> None:
        ref = self.create("scope")
        with self.assertRaises(ApiProblem) as raised:
            self.client.claim_task(ref, as_=OTHER)
        self.assertEqual((raised.exception.status, raised.exception.name), (403, "AgentTokenScopeError"))
        with self.assertRaises(ApiProblem) as tasks:
            self.client.agent_tasks(OTHER)  # refused at the call, before any iteration
        self.assertEqual((tasks.exception.status, tasks.exception.name), (403, "AgentTokenScopeError"))
        self.assertEqual(self.client.get_worknode(ref)["status"], "submitted")

    def test_operator_routes_refuse_an_agent_token(self) -> None:
        with self.assertRaises(ApiProblem) as raised:
            self.client.open_board("elsewhere")
        self.assertEqual((raised.exception.status, raised.exception.name), (403, "AgentTokenScopeError"))
        with self.assertRaises(ApiProblem) as tokens:
            self.client.list_tokens()
        self.assertEqual((tokens.exception.status, tokens.exception.name), (403, "AgentTokenScopeError"))

    def test_a_missing_or_wrong_token_is_refused(self) -> None:
        for client in (Client(URL, "not-a-token"), Client(URL)):
            with self.assertRaises(ApiProblem) as raised:
                client.whoami()
            self.assertEqual(raised.exception.status, 401)

    def test_an_attached_agent_gets_a_token_that_works_until_revoked(self) -> None:
        attached = self.operator.attach_agent("external", id=fresh_id("py"))
        token = attached.get("token")
        assert token is not None
        agent = Client(URL, token)
        self.assertEqual(agent.whoami()["principal"], attached["principal"])
        tokens = [t for t in self.operator.list_tokens(agent=attached["principal"])]
        self.assertEqual([t["id"] for t in tokens], [attached.get("tokenId")])
        self.assertNotIn("token", tokens[0], "a listed token has no secret")
        revoked = self.operator.revoke_token(tokens[0]["id"])
        self.assertEqual([t["id"] for t in revoked["revoked"]], [tokens[0]["id"]])
        with self.assertRaises(ApiProblem) as raised:
            agent.whoami()
        self.assertEqual(raised.exception.status, 401)
        self.assertTrue(self.operator.stop_agent(attached["principal"])["stopped"])

    # ------------------------------------------------------------------ events

    def test_events_stream_in_hlc_order_and_resume_after_a_dropped_connection(self) -> None:
        start = f"{int(time.time() * 1000) - 1}.0"
        item_id = fresh_id("ev")
        ref = f"{BOARD}:{item_id}"
        subjects = subject_of(item_id)
        got: List[Event] = []
        seen = 0

        stream = self.client.events(since=start)
        deadline = threading.Timer(STREAM_DEADLINE, stream.close)
        deadline.start()
        self.addCleanup(deadline.cancel)
        self.addCleanup(stream.close)

        def read_until(kind: str) -> None:
            nonlocal seen
            for event in stream:
                seen += 1
                self.assertLessEqual(seen, MAX_EVENTS, "the awaited event never came")
                if event["source"] == "board" and event["subject"] in subjects:
                    got.append(event)
                    if event["type"] == kind:
                        return
            self.fail(f"the stream ended before {kind} (events: {[e['type'] for e in got]})")

        # live: the stream is open before the task exists
        self.client.create_worknode(BOARD, "watched", id=item_id)
        self.assert_accepted(self.client.claim_task(ref))
        read_until("claim")
        self.assertEqual(stream.reconnects, 0)
        # the connection drops; what happens meanwhile comes after the reconnect, from the cursor
        stream.reconnect()
        self.assert_accepted(self.client.progress_task(ref, 30))
        self.assert_accepted(self.client.complete_task(ref, result={"ok": True}))
        read_until("complete")
        self.assertEqual(stream.reconnects, 1)

        self.assertEqual([e["type"] for e in got], ["create", "claim", "progress", "complete"])
        self.assertEqual([hlc_key(e) for e in got], sorted(hlc_key(e) for e in got), "in HLC order")
        cursors = [e["cursor"] for e in got]
        self.assertEqual(len(set(cursors)), len(cursors), "no event twice")
        self.assertEqual(stream.last_event_id, cursors[-1])
        for e in got:
            self.assertTrue({"cursor", "hlc", "source", "type", "subject", "data"} <= set(e), e)

        # the same four, paged from the same point and after a cursor
        paged = self._page_all(since=start, subjects=subjects)
        self.assertEqual([e["cursor"] for e in paged], cursors)
        after_claim = self._page_all(after=cursors[1], subjects=subjects)
        self.assertEqual([e["type"] for e in after_claim], ["progress", "complete"])

        # a new stream resumes after a saved cursor
        with self.client.events(last_event_id=cursors[1]) as again:
            timer = threading.Timer(STREAM_DEADLINE, again.close)
            timer.start()
            self.addCleanup(timer.cancel)
            first = next(e for e in itertools.islice(again, MAX_EVENTS) if e["subject"] in subjects)
        self.assertEqual(first["type"], "progress")

    def _page_all(self, subjects: List[str], **point: Any) -> List[Event]:
        found: List[Event] = []
        args: Dict[str, Any] = dict(point)
        for _ in range(100):
            page = self.client.events_page(limit=200, **args)
            found += [e for e in page["events"] if e["source"] == "board" and e["subject"] in subjects]
            if not page["more"]:
                return found
            args = {"after": page.get("cursor")}
        self.fail("more than 100 pages of events")

    def test_an_unreadable_cursor_is_a_problem_naming_the_field(self) -> None:
        with self.assertRaises(ApiProblem) as raised:
            self.client.events_page(after="not-a-cursor")
        self.assertEqual((raised.exception.status, raised.exception.name), (400, "InvalidRequestError"))
        self.assertEqual([e["field"] for e in raised.exception.errors], ["query.after"])

    def test_a_cursor_of_the_nodes_last_run_raises_cursor_expired_with_the_hlc_to_go_on_from(self) -> None:
        with self.assertRaises(CursorExpired) as streamed:
            self.client.events(last_event_id=OLD_CURSOR)
        self.assertEqual((streamed.exception.status, streamed.exception.name), (410, "EventCursorExpiredError"))
        self.assertEqual(streamed.exception.since, OLD_HLC)
        with self.assertRaises(CursorExpired) as paged:
            self.client.events_page(after=OLD_CURSOR)
        self.assertEqual(paged.exception.since, OLD_HLC)
        # going on from that HLC works: this run's events are all after it
        page = self.client.events_page(since=paged.exception.since, limit=1)
        self.assertEqual(len(page["events"]), 1)
        self.assertGreater(hlc_key(page["events"][0]), [int(p) for p in OLD_HLC.split(".")])


if __name__ == "__main__":
    unittest.main()
