"""The window's state machine: every (state, event) pair, each rule, and a stateful search."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hcp.agent.events import (
    ClerkTrigger,
    Feedback,
    Paused,
    PlaySound,
    PromptSpec,
    RatingStored,
    ReasonsDone,
    ReasonToggled,
    Screen,
    ShowScreen,
    SkipPressed,
    Sound,
    StarPressed,
    StoreFailed,
    StoreRating,
    Thanked,
    Tick,
)
from hcp.agent.machine import Machine, State
from hcp.config.policy import Profile
from hcp.config.schema import TimingSection
from hcp.domain import CST, Kind

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=CST)
DIMS = ["服务态度", "办事效率", "跑趟次数"]
TIMING = TimingSection(prompt_timeout_s=60, response_interval_s=1, reasons_timeout_s=20, hall_timeout_s=20,
                       thanks_s=3)


def profile(**kw: object) -> Profile:
    base: dict[str, object] = {"name": "测试", "code": "t", "hall_rating": True, "dimensions": DIMS}
    return Profile.model_validate(base | kw)


def spec(prompt_id: str = "P1", cases: tuple[str, ...] = ("C1",), expires_at: datetime | None = None) -> PromptSpec:
    return PromptSpec(prompt_id, cases, "I100", "营业执照", "K7", expires_at=expires_at)


class Driver:
    """A machine and a clock that moves 5 s per event unless told otherwise."""

    def __init__(self, machine: Machine | None = None) -> None:
        self.m = machine or Machine(profile(), TIMING)
        self.now = T0
        self.log: list[object] = []

    def __call__(self, event: object, after: float = 5.0) -> list[object]:
        self.now += timedelta(seconds=after)
        out = self.m.handle(event, self.now)  # type: ignore[arg-type]
        self.log.extend(out)
        return out

    @property
    def state(self) -> State:
        return self.m.state


def to_state(state: State) -> Driver:
    """A driver whose machine stands in ``state``, reached the ordinary way."""
    d = Driver()
    steps: dict[State, list[object]] = {
        State.IDLE: [],
        State.PROMPTED: [ClerkTrigger(spec())],
        State.REASONS: [ClerkTrigger(spec()), StarPressed(1)],
        State.STORING: [ClerkTrigger(spec()), StarPressed(5)],
        State.HALL: [ClerkTrigger(spec()), StarPressed(5), RatingStored("r1" * 8, 1, Kind.SERVICE)],
        State.THANKED: [ClerkTrigger(spec()), StarPressed(5), RatingStored("r1" * 8, 1, Kind.SERVICE),
                        StarPressed(4), RatingStored("r2" * 8, 2, Kind.HALL)],
        State.EXPIRED: [ClerkTrigger(spec()), "expire"],
        State.PAUSED: [Paused(True)],
        State.FAULT: [ClerkTrigger(spec()), StarPressed(5), StoreFailed("outbox full")],
    }
    for step in steps[state]:
        if step == "expire":
            d(Tick(), after=61)
        else:
            d(step)
    assert d.state is state
    return d


EVENTS: dict[str, tuple[object, float]] = {
    "trigger": (ClerkTrigger(spec("P2", ("C2",))), 5),
    "star": (StarPressed(3), 5),
    "toggle": (ReasonToggled(DIMS[0]), 5),
    "done": (ReasonsDone(), 5),
    "skip": (SkipPressed(), 5),
    "pause": (Paused(True), 5),
    "resume": (Paused(False), 5),
    "tick": (Tick(), 0.5),
    "late_tick": (Tick(), 3600),
    "stored_service": (RatingStored("ab" * 8, 9, Kind.SERVICE), 5),
    "stored_hall": (RatingStored("cd" * 8, 9, Kind.HALL), 5),
    "failed": (StoreFailed("disk full"), 5),
}
S = State
# Rows: states; columns in EVENTS order. The state after the event.
TABLE: dict[State, tuple[State, ...]] = {
    # columns: trigger star toggle done skip pause resume tick late_tick stored_service stored_hall failed
    S.IDLE:     (S.PROMPTED, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.PAUSED, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.IDLE),
    S.PROMPTED: (S.PROMPTED, S.STORING, S.PROMPTED, S.PROMPTED, S.PROMPTED, S.PAUSED, S.PROMPTED, S.PROMPTED,
                 S.EXPIRED, S.PROMPTED, S.PROMPTED, S.PROMPTED),
    S.REASONS:  (S.STORING, S.REASONS, S.REASONS, S.STORING, S.STORING, S.REASONS, S.REASONS, S.REASONS,
                 S.STORING, S.REASONS, S.REASONS, S.REASONS),
    S.STORING:  (S.STORING, S.STORING, S.STORING, S.STORING, S.STORING, S.STORING, S.STORING, S.STORING,
                 S.STORING, S.HALL, S.STORING, S.FAULT),
    S.HALL:     (S.THANKED, S.STORING, S.HALL, S.HALL, S.THANKED, S.HALL, S.HALL, S.HALL, S.THANKED, S.HALL,
                 S.HALL, S.HALL),
    S.THANKED:  (S.THANKED, S.THANKED, S.THANKED, S.THANKED, S.THANKED, S.THANKED, S.THANKED, S.THANKED,
                 S.IDLE, S.THANKED, S.THANKED, S.THANKED),
    S.EXPIRED:  (S.PROMPTED, S.EXPIRED, S.EXPIRED, S.EXPIRED, S.EXPIRED, S.PAUSED, S.EXPIRED, S.EXPIRED,
                 S.IDLE, S.EXPIRED, S.EXPIRED, S.EXPIRED),
    S.PAUSED:   (S.PAUSED, S.PAUSED, S.PAUSED, S.PAUSED, S.PAUSED, S.PAUSED, S.IDLE, S.PAUSED, S.PAUSED,
                 S.PAUSED, S.PAUSED, S.PAUSED),
    S.FAULT:    (S.FAULT, S.FAULT, S.FAULT, S.FAULT, S.FAULT, S.FAULT, S.FAULT, S.FAULT, S.IDLE, S.FAULT,
                 S.FAULT, S.FAULT),
}
CITIZEN = {"star", "toggle", "done", "skip"}


def test_table_covers_every_state() -> None:
    assert set(TABLE) == set(State)
    assert all(len(row) == len(EVENTS) for row in TABLE.values())


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("name", list(EVENTS))
def test_every_state_and_event(state: State, name: str) -> None:
    d = to_state(state)
    event, after = EVENTS[name]
    out = d(event, after)
    expected = TABLE[state][list(EVENTS).index(name)]
    assert d.state is expected, f"{state} + {name}: {out}"
    if name in CITIZEN:
        # Feedback means "accepted", and an accepted press is acknowledged first.
        assert not out or isinstance(out[0], Feedback)
    if expected is state and state is not State.REASONS and name in CITIZEN:
        assert out == [], "ignored input yields no commands"


# ---- scenarios --------------------------------------------------------------

def test_good_rating_is_stored_then_thanked() -> None:
    d = Driver(Machine(profile(hall_rating=False), TIMING))
    assert d(ClerkTrigger(spec())) == [ShowScreen(Screen.PROMPT, prompt=spec()), PlaySound(Sound.PLEASE_RATE)]
    out = d(StarPressed(5))
    assert out == [Feedback(5), StoreRating(Kind.SERVICE, spec(), 5, d.now)]
    out = d(RatingStored("aa" * 8, 1, Kind.SERVICE))
    assert out[0] == Thanked("aa" * 8, Kind.SERVICE, ("C1",), 5)
    assert PlaySound(Sound.THANKS) in out and ShowScreen(Screen.THANKS, prompt=spec()) in out
    assert d(Tick(), after=2) == []
    assert d(Tick(), after=2) == [ShowScreen(Screen.IDLE)]


def test_rated_at_is_the_completing_press() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    d(ReasonToggled(DIMS[1]))
    submitted = d.now + timedelta(seconds=4)
    (_, store) = d(ReasonsDone(), after=4)
    assert store.rated_at == submitted and store.reasons == (DIMS[1],) and store.score == 1


def test_bad_rating_asks_reasons_in_profile_order() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    out = d(StarPressed(2))
    assert out[0] == Feedback(2)
    assert out[1] == ShowScreen(Screen.REASONS, prompt=spec(), score=2, reasons=tuple(DIMS))
    assert PlaySound(Sound.ASK_REASON) in out
    d(ReasonToggled(DIMS[2]))
    d(ReasonToggled(DIMS[0]))
    d(ReasonToggled("not a dimension"))
    (feedback, screen) = d(ReasonToggled(DIMS[1]))
    assert feedback == Feedback(None) and screen.selected == tuple(DIMS)
    d(ReasonToggled(DIMS[1]))  # deselect
    (_, store) = d(ReasonsDone())
    assert store.reasons == (DIMS[0], DIMS[2])


@pytest.mark.parametrize("event", [SkipPressed(), ReasonsDone(submit=False)])
def test_declined_reasons_store_none(event: object) -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    d(ReasonToggled(DIMS[0]))
    (_, store) = d(event)
    assert store.reasons == () and store.score == 1


def test_reasons_timeout_keeps_selected_and_last_press_time() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    d(ReasonToggled(DIMS[0]))
    toggled = d.now
    (store,) = d(Tick(), after=21)
    assert store.reasons == (DIMS[0],) and store.rated_at == toggled


@pytest.mark.parametrize("change", [{"reasons_after_bad": False}, {"dimensions": []}])
def test_no_reasons_when_profile_says_so(change: dict[str, object]) -> None:
    d = Driver(Machine(profile(**change), TIMING))
    d(ClerkTrigger(spec()))
    assert isinstance(d(StarPressed(1))[1], StoreRating)


def test_neutral_is_not_bad_under_default_grades() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    assert isinstance(d(StarPressed(3))[1], StoreRating)


def test_hall_question_then_both_thanked() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(5))
    out = d(RatingStored("aa" * 8, 1, Kind.SERVICE))
    assert out == [ShowScreen(Screen.HALL, prompt=spec()), PlaySound(Sound.HALL_QUESTION)]
    out = d(StarPressed(4))
    assert out == [Feedback(4), StoreRating(Kind.HALL, spec(), 4, d.now)]
    out = d(RatingStored("bb" * 8, 2, Kind.HALL))
    assert [c for c in out if isinstance(c, Thanked)] == [
        Thanked("aa" * 8, Kind.SERVICE, ("C1",), 5), Thanked("bb" * 8, Kind.HALL, ("C1",), 4)]


@pytest.mark.parametrize("how", ["skip", "timeout"])
def test_hall_declined_thanks_for_service(how: str) -> None:
    d = to_state(State.HALL)
    out = d(SkipPressed()) if how == "skip" else d(Tick(), after=21)
    assert [c for c in out if isinstance(c, Thanked)] == [Thanked("r1" * 8, Kind.SERVICE, ("C1",), 5)]
    assert d.state is State.THANKED


def test_prompt_expires_then_idle() -> None:
    d = Driver()
    d(ClerkTrigger(spec()), after=0)
    assert d(Tick(), after=59.9) == []
    assert d(Tick(), after=0.1) == [ShowScreen(Screen.EXPIRED, prompt=spec())]
    assert d(StarPressed(5)) == []  # too late: nothing is stored
    d(Tick(), after=3600)
    assert d.state is State.IDLE
    assert not any(isinstance(c, StoreRating) for c in d.log)


def test_expires_at_earlier_than_timeout_wins() -> None:
    d = Driver()
    d(ClerkTrigger(spec(expires_at=T0 + timedelta(seconds=15))), after=0)
    d(Tick(), after=15)
    assert d.state is State.EXPIRED


def test_prompt_already_expired_on_arrival() -> None:
    d = Driver()
    out = d(ClerkTrigger(spec(expires_at=T0)))
    assert out == [ShowScreen(Screen.EXPIRED, prompt=spec(expires_at=T0))] and d.state is State.EXPIRED


def test_presses_within_response_interval_are_ignored() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    assert d(ReasonToggled(DIMS[0]), after=0.5) == []
    assert d(ReasonToggled(DIMS[0]), after=0.6) != []  # 1.1 s after the accepted press


def test_reasons_and_submit_are_debounced_per_key_not_by_the_star_interval() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    for reason in DIMS:  # three reasons ticked 0.4 s apart: each is its own key
        assert d(ReasonToggled(reason), after=1.2 if reason == DIMS[0] else 0.4) != []
    (_, store) = d(ReasonsDone(), after=0.5)  # submit half a second after the last tick
    assert store.reasons == tuple(DIMS)


def test_a_bouncing_reason_key_counts_once() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    d(ReasonToggled(DIMS[0]), after=1.5)
    assert d(ReasonToggled(DIMS[0]), after=0.05) == []  # the same key bouncing: not a deselect
    (_, store) = d(ReasonsDone(), after=0.3)
    assert store.reasons == (DIMS[0],)


SEVEN = ["承诺履行", "服务态度", "申请材料", "办事效率", "跑趟次数", "服务机制", "勤政廉洁"]


def test_star_keys_choose_reasons_page_by_page() -> None:
    d = Driver(Machine(profile(dimensions=SEVEN, hall_rating=False), TIMING))
    d(ClerkTrigger(spec()))
    d(StarPressed(2))
    assert d(StarPressed(2), after=0.3) == []  # the scoring key bouncing does not tick a reason
    (feedback, screen) = d(StarPressed(2), after=1.0)
    assert feedback == Feedback(None) and screen.selected == ("服务态度",) and screen.page == 0
    (_, screen) = d(StarPressed(5), after=0.4)  # key 5 turns to the next page (reasons 5-7)
    assert screen.page == 1 and screen.selected == ("服务态度",)
    d(StarPressed(2), after=0.4)  # 服务机制, the second of 跑趟次数 服务机制 勤政廉洁
    assert d(StarPressed(4), after=0.4) == []  # no fourth reason on the last page
    (_, store) = d(StarPressed(5), after=0.4)  # key 5 on the last page submits
    assert isinstance(store, StoreRating) and store.reasons == ("服务态度", "服务机制")


def test_without_a_reasons_screen_a_bad_score_is_stored_at_once() -> None:
    d = Driver(Machine(profile(), TIMING, shows_reasons=False))
    d(ClerkTrigger(spec()))
    (_, store) = d(StarPressed(1))
    assert isinstance(store, StoreRating) and store.score == 1 and store.reasons == ()


def test_double_press_does_not_answer_the_hall_question() -> None:
    d2 = Driver()
    d2(ClerkTrigger(spec()))
    d2(StarPressed(5))
    d2(RatingStored("aa" * 8, 1, Kind.SERVICE), after=0.1)
    assert d2(StarPressed(5), after=0.1) == []  # bounce of the service press
    assert d2.state is State.HALL


def test_all_cases_rated_are_not_prompted_again() -> None:
    d = Driver(Machine(profile(hall_rating=False), TIMING, rated_case_ids={"C1", "C2"}))
    assert d(ClerkTrigger(spec("P9", ("C1", "C2")))) == []
    assert d.state is State.IDLE
    out = d(ClerkTrigger(spec("P9", ("C1", "C3"))))
    assert out[0].prompt.case_ids == ("C3",)


def test_a_clerk_button_prompt_without_cases_is_rated_once() -> None:
    d = Driver(Machine(profile(hall_rating=False), TIMING))
    shown = d(ClerkTrigger(spec("btn-1", ())))
    assert d.state is State.PROMPTED and shown[0].prompt.case_ids == ()
    store = next(c for c in d(StarPressed(4)) if isinstance(c, StoreRating))
    assert store.prompt.case_ids == ()
    d(RatingStored("r1", 1, Kind.SERVICE))
    d(Tick(), after=3600)
    assert d(ClerkTrigger(spec("btn-1", ()))) == []  # the same button prompt again is not re-shown
    assert d(ClerkTrigger(spec("btn-2", ())))[0].prompt.prompt_id == "btn-2"


def test_stored_rating_updates_rated_set() -> None:
    d = to_state(State.THANKED)
    d(Tick(), after=3600)
    assert d.m.was_rated("C1")
    assert d(ClerkTrigger(spec("P7", ("C1",)))) == []  # redelivery under another id
    assert d(ClerkTrigger(spec("P1", ("C8",)))) == []  # the prompt itself was rated
    assert d.state is State.IDLE


def test_new_trigger_replaces_prompt() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(ClerkTrigger(spec("P2", ("C2",))))
    (_, store) = d(StarPressed(5))
    assert store.prompt.prompt_id == "P2"


def test_trigger_on_reasons_screen_stores_then_prompts_next() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(StarPressed(1))
    d(ReasonToggled(DIMS[0]))
    (store,) = d(ClerkTrigger(spec("P2", ("C2",))))
    assert store.prompt.prompt_id == "P1" and store.reasons == (DIMS[0],)
    out = d(RatingStored("aa" * 8, 1, Kind.SERVICE))
    assert d.state is State.THANKED  # the next citizen waits: no hall question
    assert any(isinstance(c, Thanked) for c in out)
    out = d(Tick(), after=3)
    assert d.state is State.PROMPTED and d.m.prompt.prompt_id == "P2"


def test_redelivered_prompt_does_not_cut_reasons_short() -> None:
    d = to_state(State.REASONS)
    assert d(ClerkTrigger(spec())) == []
    assert d.state is State.REASONS


def test_pause_refuses_prompts_until_resumed() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    assert d(Paused(True)) == [ShowScreen(Screen.PAUSED)]
    assert d.m.prompt is None
    out = d(ClerkTrigger(spec("P2", ("C2",))))
    assert out == [ShowScreen(Screen.PAUSED, message="window paused: prompt refused")]
    assert d(Paused(False)) == [ShowScreen(Screen.IDLE)]
    assert d(ClerkTrigger(spec("P2", ("C2",))))[0].screen is Screen.PROMPT


def test_pause_during_rating_waits_for_thanks() -> None:
    d = to_state(State.STORING)
    assert d(Paused(True)) == []
    out = d(RatingStored("aa" * 8, 1, Kind.SERVICE))
    assert out[0].screen is Screen.HALL
    d(SkipPressed())
    assert d.state is State.THANKED
    assert d(Tick(), after=3) == [ShowScreen(Screen.PAUSED)]


def test_store_failed_faults_without_thanks() -> None:
    d = to_state(State.STORING)
    out = d(StoreFailed("outbox full (200000 ratings)"))
    assert out == [PlaySound(Sound.ERROR),
                   ShowScreen(Screen.FAULT, prompt=spec(), message="outbox full (200000 ratings)")]
    d(Tick(), after=10)
    assert d.state is State.IDLE
    assert not any(isinstance(c, Thanked) for c in d.log)
    assert not d.m.was_rated("C1")  # the clerk may trigger it again
    assert d(ClerkTrigger(spec()))[0].screen is Screen.PROMPT


def test_failed_hall_store_thanks_nobody() -> None:
    d = to_state(State.HALL)
    d(StarPressed(3))
    d(StoreFailed("disk I/O error"))
    assert d.state is State.FAULT and not any(isinstance(c, Thanked) for c in d.log)
    assert d.m.was_rated("C1")  # the service rating is durable all the same


def test_clock_stepping_back_does_not_freeze_prompt() -> None:
    d = Driver()
    d(ClerkTrigger(spec()))
    d(Tick(), after=-3600)
    assert d(StarPressed(5), after=2)[0] == Feedback(5)


def test_wrong_scores_are_ignored() -> None:
    d = to_state(State.PROMPTED)
    assert d(StarPressed(0)) == [] and d(StarPressed(6)) == []
    assert d.state is State.PROMPTED


# ---- a stateful search for broken promises ------------------------------------

IDS = st.sampled_from(["P1", "P2", "P3"])
CASES = st.lists(st.sampled_from(["C1", "C2", "C3", "C4"]), min_size=1, max_size=3, unique=True).map(tuple)


class MachineModel(RuleBasedStateMachine):
    """Random events and a runtime that answers each StoreRating (or not), checking the promises."""

    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(profile(), TIMING, rated_case_ids={"C4"})
        self.now = T0
        self.unanswered: StoreRating | None = None
        self.durable: set[str] = set()
        self.thanked: list[str] = []
        self.stores: dict[tuple[str, Kind], str] = {}  # (prompt, kind) -> "pending" | "stored" | "failed"
        self.seq = 0

    def feed(self, event: object, dt: float) -> None:
        self.now += timedelta(seconds=dt)
        for command in self.m.handle(event, self.now):  # type: ignore[arg-type]
            if isinstance(command, StoreRating):
                key = (command.prompt.prompt_id, command.kind)
                assert self.stores.get(key) in (None, "failed"), f"second StoreRating for {key}"
                assert self.unanswered is None
                self.stores[key] = "pending"
                self.unanswered = command
            elif isinstance(command, Thanked):
                assert command.rating_id in self.durable, "thanked before RatingStored"
                assert command.rating_id not in self.thanked, "thanked twice"
                self.thanked.append(command.rating_id)

    @rule(pid=IDS, cases=CASES, dt=st.floats(0, 100))
    def trigger(self, pid: str, cases: tuple[str, ...], dt: float) -> None:
        self.feed(ClerkTrigger(PromptSpec(pid, cases, "I1", "事项", "K1")), dt)

    @rule(score=st.integers(0, 6), dt=st.floats(0, 30))
    def star(self, score: int, dt: float) -> None:
        self.feed(StarPressed(score), dt)

    @rule(reason=st.sampled_from([*DIMS, "x"]), dt=st.floats(0, 30))
    def toggle(self, reason: str, dt: float) -> None:
        self.feed(ReasonToggled(reason), dt)

    @rule(submit=st.booleans(), dt=st.floats(0, 30))
    def done(self, submit: bool, dt: float) -> None:
        self.feed(ReasonsDone(submit), dt)

    @rule(dt=st.floats(0, 30))
    def skip(self, dt: float) -> None:
        self.feed(SkipPressed(), dt)

    @rule(paused=st.booleans(), dt=st.floats(0, 30))
    def pause(self, paused: bool, dt: float) -> None:
        self.feed(Paused(paused), dt)

    @rule(dt=st.floats(-50, 120))
    def tick(self, dt: float) -> None:
        self.feed(Tick(), dt)

    @rule(ok=st.booleans())
    def answer(self, ok: bool) -> None:
        if self.unanswered is None:
            return
        store, self.unanswered = self.unanswered, None
        key = (store.prompt.prompt_id, store.kind)
        if ok:
            self.seq += 1
            rating_id = f"{self.seq:032x}"
            self.durable.add(rating_id)
            self.stores[key] = "stored"
            self.feed(RatingStored(rating_id, self.seq, store.kind), 0)
        else:
            self.stores[key] = "failed"
            self.feed(StoreFailed("full"), 0)

    @rule(kind=st.sampled_from(list(Kind)))
    def stray_answer(self, kind: Kind) -> None:
        if self.unanswered is None:
            self.feed(RatingStored("ff" * 16, 99, kind), 0)
            self.feed(StoreFailed("stray"), 0)

    @invariant()
    def storing_means_waiting(self) -> None:
        assert (self.m.state is State.STORING) == (self.unanswered is not None)

    @invariant()
    def paused_means_no_prompt(self) -> None:
        if self.m.state is State.PAUSED:
            assert self.m.is_paused and self.m.prompt is None

    @invariant()
    def a_prompt_when_rating(self) -> None:
        if self.m.state in (State.PROMPTED, State.REASONS, State.HALL, State.STORING):
            assert self.m.prompt is not None
        if self.m.state in (State.PROMPTED, State.REASONS, State.HALL, State.THANKED, State.EXPIRED, State.FAULT):
            assert self.m.deadline is not None, "every waiting state ends by itself"


MachineModel.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_machine_model = MachineModel.TestCase
