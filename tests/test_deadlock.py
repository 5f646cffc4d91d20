"Deadlock detector: hand-made stuck vs converging dialogues, each signal, thresholds, edge cases, per-method summary."
import math
import pytest
from also.core import DataError
from also.sotopia.deadlock import (SUMMARY_COLUMNS, deadlock_summary, detect_deadlocks, is_agreement, offers, similarity, turn_signals)


def dialogue(*lines):
    "Turns from (speaker, text) pairs; text None = a 'none' turn."
    return [{"speaker": s, "action_type": "none" if x is None else "speak", "argument": x or ""} for s, x in lines]

# Two landlord-tenant rent talks written for these tests.
STUCK = dialogue(
    ("Tenant", "The rent should stay at $900 a month, the heating has been broken all winter."),
    ("Landlord", "I have to raise it to $1,000 a month, my costs went up."),
    ("Tenant", "I cannot pay more than $900 a month while the heating is broken."),
    ("Landlord", "My costs went up, so it has to be $1,000 a month."),
    ("Tenant", "Again, I cannot pay more than $900 a month while the heating is broken."),
    ("Landlord", "Again, my costs went up, so the rent has to be $1,000 a month."),
)
CONVERGE = dialogue(
    ("Tenant", "Could we keep the rent at $900? The heating was broken for months."),
    ("Landlord", "I understand. My costs rose, though, so I was planning $1,000."),
    ("Tenant", "If you fix the heating this week, I could accept a smaller rise, say $930."),
    ("Landlord", "I'll have it fixed by Friday. Could you do $950?"),
    ("Tenant", "Okay, $950 with the heating fixed by Friday works for me."),
    ("Landlord", "Great, I'll send the new lease tomorrow."),
)


def test_stuck_dialogue_deadlocks():
    sig = detect_deadlocks(STUCK)
    assert len(sig) == 6 and [s["turn"] for s in sig] == list(range(6))
    assert [s["offer_repeat"] for s in sig] == [False, False, True, True, True, True]
    assert sig[5]["circular"] and sig[4]["circular"]
    assert all(s["deadlock"] for s in sig[2:]) and not any(s["deadlock"] for s in sig[:2])
    assert not any(s["agreement"] for s in sig)


def test_converging_dialogue_does_not_deadlock_and_agrees():
    sig = detect_deadlocks(CONVERGE)
    assert not any(s["deadlock"] or s["offer_repeat"] or s["circular"] for s in sig)
    assert [s["agreement"] for s in sig] == [False] * 4 + [True, False]
    assert max(s["repeat"] for s in sig) < 0.3


def test_primitives():
    assert similarity("a b c", "c b a") == 1.0 and similarity("a b", "c d") == 0.0 and similarity("", "a") == 0.0
    assert similarity("I can only pay $50", "I can pay $60") == pytest.approx(3 / 6)
    assert offers("$1,000 or 950.5, 20%") == {1000.0, 950.5, 20.0} and offers("no numbers") == set()
    assert is_agreement("Deal!") and is_agreement("Sounds good, see you then.") and is_agreement("Agreed.")
    assert not is_agreement("No deal.") and not is_agreement("Deal?") and not is_agreement("I won't accept that.")
    assert not is_agreement("That is a great deal for you.")


def test_repeat_and_window():
    turns = dialogue(("A", "we must leave at noon today"), ("B", "why"), ("A", "we must leave at noon today"))
    s = turn_signals(turns)
    assert s["repeat"] == 1.0 and s["deadlock"] and not s["circular"]
    assert turn_signals(turns, window=1)["repeat"] == 0.0            # A's earlier turn is outside a 1-turn window
    assert not turn_signals(turns, window=1)["deadlock"]
    assert not turn_signals(turns, repeat_threshold=1.01)["deadlock"]


def test_offer_repeat_needs_same_speaker_and_no_agreement_between():
    assert turn_signals(dialogue(("A", "I offer $50"), ("B", "I offer $50")))["offer_repeat"] is False
    assert turn_signals(dialogue(("A", "$50"), ("B", "no"), ("A", "$50, final")))["offer_repeat"] is True
    assert turn_signals(dialogue(("A", "$50"), ("B", "Deal."), ("A", "Great, $50 then")))["offer_repeat"] is False
    assert turn_signals(dialogue(("A", "$50"), ("B", "no"), ("A", "$55 then")))["offer_repeat"] is False


def test_stale_and_edges():
    assert detect_deadlocks([]) == []
    e = turn_signals([])
    assert e["turn"] is None and e["stale"] == 0 and not e["deadlock"] and not e["agreement"]
    silent = dialogue(("A", None), ("B", None), ("A", None), ("B", None))
    assert [s["stale"] for s in detect_deadlocks(silent)] == [1, 2, 3, 4]
    assert [s["deadlock"] for s in detect_deadlocks(silent)] == [False, True, True, True]
    assert not turn_signals(silent, min_stale=5)["deadlock"]
    blank = [{"speaker": "A", "action_type": "speak", "argument": "  "}, {"speaker": "B", "action_type": "speak", "argument": None}]
    assert turn_signals(blank)["stale"] == 2
    assert turn_signals(silent + [{"speaker": "A", "action_type": "leave", "argument": ""}])["stale"] == 0
    with pytest.raises(DataError, match="turn 1 must be a dict"): turn_signals([silent[0], {"argument": "x"}])


def test_summary_hand_checked():
    recs = [{"method": "m1", "episode": "e1", "turns": detect_deadlocks(STUCK)},
            {"method": "m1", "episode": "e2", "turns": detect_deadlocks(CONVERGE)},
            {"method": "m1", "episode": "e3", "turns": detect_deadlocks(STUCK[:3] + CONVERGE)},
            {"method": "m2", "episode": "e1", "turns": detect_deadlocks(CONVERGE)}]
    df = deadlock_summary(recs)
    assert list(df.columns) == SUMMARY_COLUMNS and list(df.method) == ["m1", "m2"]
    m1, m2 = df.iloc[0], df.iloc[1]
    assert m1.n_episodes == 3 and m1.deadlock_rate == pytest.approx(2 / 3) and m1.mean_first_deadlock_turn == 2.0
    assert m1.agreement_rate == pytest.approx(2 / 3) and m1.mean_turns_to_agreement == pytest.approx((5 + 8) / 2)
    assert m2.deadlock_rate == 0.0 and math.isnan(m2.mean_first_deadlock_turn) and m2.mean_turns_to_agreement == 5.0
    assert deadlock_summary([]).empty
    with pytest.raises(DataError, match="lacks"): deadlock_summary([{"method": "m", "turns": []}])
    with pytest.raises(DataError, match="appears twice"): deadlock_summary(recs + recs[:1])
