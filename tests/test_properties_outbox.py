"""A stateful hypothesis test of the outbox against a model: what goes in stays until it is settled.

Rules add ratings (one or several in a transaction), settle any mix of known,
unknown and already-settled ids, read pending pages from any seq, and close
and reopen the file. Invariants: seq strictly increases and is never reused,
even across reopening after the newest rows were settled; nothing settled
comes back; depth() equals the model's count and the table's.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from hcp.domain import Kind, Outcome, now_cst
from hcp.protocol import AckResult
from hcp.sync.exc import OutboxFull
from hcp.sync.outbox import Draft, Outbox

MAX_ROWS = 25


class OutboxModel(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "outbox.sqlite"
        self.outbox = Outbox(self.path, max_rows=MAX_ROWS)
        self.waiting: dict[str, int] = {}  # rating_id -> seq
        self.settled: set[str] = set()
        self.last_seq = 0
        self.cases = 0

    def _draft(self) -> Draft:
        self.cases += 1
        return Draft(kind=Kind.SERVICE, case_ids=(f"C{self.cases}",), score=1 + self.cases % 5,
                     rated_at=now_cst() - timedelta(seconds=self.cases), clock_synced=True, prompt_id=f"p{self.cases}")

    @rule(target=ids, count=st.integers(1, 6))
    def add(self, count: int):
        try:
            made = self.outbox.add_many([self._draft() for _ in range(count)])
        except OutboxFull:
            assert len(self.waiting) + count > MAX_ROWS
            return f"never-stored-{self.cases}"  # all or none: nothing of the batch was stored
        assert len(self.waiting) + count <= MAX_ROWS
        seqs = [r.seq for r in made]
        assert seqs == list(range(self.last_seq + 1, self.last_seq + 1 + count))  # strictly increasing, no reuse
        self.last_seq = seqs[-1]
        for rating in made:
            self.waiting[rating.rating_id] = rating.seq
        return made[0].rating_id

    @rule(rating_id=consumes(ids), extra=st.booleans(), outcome=st.sampled_from(list(Outcome)))
    def settle(self, rating_id: str, extra: bool, outcome: Outcome) -> None:
        answers = [AckResult(rating_id=rating_id, outcome=outcome)]
        if extra:  # an ack for something unknown, or answered before: ignored
            answers.append(AckResult(rating_id="0190f0a4-0000-7000-8000-00000000dead", outcome=outcome))
        expected = 1 if rating_id in self.waiting else 0
        assert self.outbox.settle(answers) == expected
        if rating_id in self.waiting:
            del self.waiting[rating_id]
            self.settled.add(rating_id)

    @rule(count=st.integers(0, 10))
    def settle_oldest(self, count: int) -> None:
        oldest = self.outbox.pending(count)
        assert self.outbox.settle([AckResult(rating_id=r.rating_id, outcome=Outcome.ACCEPTED) for r in oldest]) \
            == len(oldest)
        for rating in oldest:
            del self.waiting[rating.rating_id]
            self.settled.add(rating.rating_id)

    @rule(limit=st.integers(1, 30), after=st.integers(0, 60))
    def page(self, limit: int, after: int) -> None:
        got = self.outbox.pending_raw(limit, after)
        want = sorted((seq, rid) for rid, seq in self.waiting.items() if seq > after)[:limit]
        assert [(p.seq, p.rating_id) for p in got] == want

    @rule()
    def reopen(self) -> None:
        self.outbox.close()
        self.outbox.close()  # safe twice
        self.outbox = Outbox(self.path, max_rows=MAX_ROWS)

    @invariant()
    def depth_is_consistent(self) -> None:
        assert self.outbox.depth() == len(self.waiting)
        rows = {p.rating_id for p in self.outbox.pending_raw(1000)}
        assert rows == set(self.waiting)
        assert not rows & self.settled  # nothing settled reappears

    def teardown(self) -> None:
        assert self.outbox.integrity_ok()
        self.outbox.close()
        self.dir.cleanup()


OutboxModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestOutboxModel = OutboxModel.TestCase
