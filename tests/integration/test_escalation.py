"""Escalation: a conversation whose emotion trend turns negative gets one
"Conversation Needs Attention" event, written by the emotion job's statement with the flag on its
row, and published to the staff notice. Thresholds with hysteresis: enter below
ATTENTION_ENTER_TREND (-0.05, with at least ATTENTION_MIN_SCORES 4 scores), leave above
ATTENTION_LEAVE_TREND (0.03); docs/ARCHITECTURE.md, "Escalation", works through the scores used here.
"""

from __future__ import annotations

import json

from hibachi import settings as settings_module

from local.events import sqs_event
from local.stack import wait_until
from tests.support.common import new_id, receive_all
from tests.support.conversations import emotion_body, post, worker

# (scores of one phase, needs attention after it, events so far); trends in the comments are the
# least-squares slope of the last 10 scores per message
PHASES = [
    ([0.6, 0.5, 0.6, 0.5], False, 0),  # fine; 0.6 -> 0.5 alone is a slope of -0.1, but 2 < 4 scores
    ([0.1], True, 1),  # the drop: -0.10 < -0.05
    # staying bad: the trend climbs back towards 0 (-0.17 ... -0.05 ... +0.008) as the drop leaves the
    # window, but never above +0.03: still flagged, no second event (one threshold would flap here)
    ([-0.3, -0.6, -0.6, -0.7, -0.6, -0.6, -0.5, -0.6, -0.6, -0.5, -0.6, -0.6], True, 1),
    ([0.0], False, 1),  # recovering: +0.038 > +0.03, no event for leaving
    ([0.4, 0.6, 0.7, 0.6, 0.6, 0.5], False, 1),  # fine again
    ([0.1, -0.4, -0.7], True, 2),  # a new bad patch: -0.09, a new event
    ([-0.7, -0.6], True, 2),
]


def flag(db, cid: str) -> bool:
    return db.fetchone("SELECT needs_attention FROM conversations WHERE id = %s", [cid])["needs_attention"]


def attention_events(db, cid: str) -> list[dict]:
    return db.fetchall(
        "SELECT type, version, actor, data, aggregate_type, booking_id FROM events "
        "WHERE aggregate_type = 'conversation' AND aggregate_id = %s ORDER BY seq",
        [cid],
    )


def test_one_event_per_bad_patch(settings, context, db):
    cid = new_id("web:sad")
    for scores, needs_attention, events in PHASES:
        for score in scores:  # one job per message, as the API enqueues them
            assert post(context, cid, role="user", content="msg", emotion_score=score)[0] == 201
            assert worker(sqs_event([emotion_body(cid)]), context) == {"batchItemFailures": []}
        assert (flag(db, cid), len(attention_events(db, cid))) == (needs_attention, events), scores
    first, second = attention_events(db, cid)
    assert first["type"] == "Conversation Needs Attention" and first["booking_id"] is None
    assert first["actor"] == {"kind": "system", "via": "system"}
    assert first["version"] == 5 and second["version"] == 27  # the scores counted when it turned
    emotion = first["data"]["emotion"]
    assert emotion["count"] == 5 and emotion["last"] == 0.1 and round(emotion["trend"], 6) == -0.1
    assert round(emotion["avg"], 6) == 0.46 and first["data"]["conversation_id"] == cid
    assert first["data"]["thresholds"] == {"enter_trend": -0.05, "leave_trend": 0.03, "min_scores": 4}
    # a duplicate job changes nothing, writes no event
    worker(sqs_event([emotion_body(cid)] * 2), context)
    assert len(attention_events(db, cid)) == 2


def test_a_batch_of_scores_is_judged_once_at_its_end(settings, context, db):
    """Jobs are set-based: many new scores in one run are one step (the trend at the end)."""
    cid = new_id("web:batch")
    for score in [0.6, 0.5, 0.6, 0.5, 0.1, -0.3, -0.6]:
        post(context, cid, role="user", content="msg", emotion_score=score)
    worker(sqs_event([emotion_body(cid)]), context)
    assert flag(db, cid) and len(attention_events(db, cid)) == 1


def test_the_thresholds_are_settings(settings, context, db):
    cid = new_id("web:strict")
    with settings_module.override(attention_enter_trend=-0.5, attention_leave_trend=0.5):
        for score in [0.6, 0.5, 0.6, 0.5, 0.1]:
            post(context, cid, role="user", content="msg", emotion_score=score)
            worker(sqs_event([emotion_body(cid)]), context)
    assert not flag(db, cid) and attention_events(db, cid) == []


def test_the_event_reaches_the_staff_notice(settings, context, db, aws):
    res = aws["resources"]
    receive_all(aws["client"], res.staff_notices_queue_url)
    cid = new_id("web:notice")
    with settings_module.override(event_bus_name=res.event_bus_name):
        for score in [0.6, 0.5, 0.6, 0.5, 0.1]:
            post(context, cid, role="user", content="msg", emotion_score=score)
            worker(sqs_event([emotion_body(cid)]), context)
    assert db.fetchone(
        "SELECT published_at FROM events WHERE aggregate_type = 'conversation' AND aggregate_id = %s", [cid]
    )["published_at"]
    notices: list[str] = []

    def arrived() -> bool:
        notices.extend(json.loads(m["Body"]) for m in receive_all(aws["client"], res.staff_notices_queue_url))
        return any(cid in n for n in notices)

    wait_until(arrived, timeout=10, message="the staff notice")
    (notice,) = [n for n in notices if cid in n]
    assert notice == (
        f"Conversation needs attention: {cid}, mood falling (trend -0.10 per message, last score +0.10, "
        "average +0.46 over 5 scores)"
    )
