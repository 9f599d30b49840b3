"""followup_worker: emotion statistics jobs (idempotent, order-free, set-based) and the reconciler."""

from __future__ import annotations

import dataclasses
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
from hibachi import jobs
from hibachi import settings as settings_module
from hibachi.conversations import repository
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from local.events import sqs_event
from local.stack import wait_until
from testkit.netproxy import PgProxy
from tests.support.common import json_lines, new_id, receive_all
from tests.support.conversations import GET_CONV, call, emotion_body, post, worker


def conversation(context, cid):
    status, body = call(context, GET_CONV, cid)
    assert status == 200
    return body


def test_stats_match_messages_and_duplicates_change_nothing(settings, context):
    cid = new_id()
    scores = [0.5, -0.25, 0.75, 1.0]
    for score in scores:
        post(context, cid, role="user", content="msg", emotion_score=score)
    post(context, cid, role="assistant", content="no score")
    result = worker(sqs_event([emotion_body(cid)]), context)
    assert result == {"batchItemFailures": []}
    first = conversation(context, cid)
    assert first["avg_emotion"] == statistics.fmean(scores)
    assert first["emotion_count"] == 4 and first["last_emotion"] == 1.0 and first["message_count"] == 5
    assert first["emotion_trend"] == "improving"
    # the same job three more times, in one batch and alone: same statistics
    worker(sqs_event([emotion_body(cid)] * 3), context)
    worker(sqs_event([emotion_body(cid)]), context)
    again = conversation(context, cid)
    assert {k: again[k] for k in ("avg_emotion", "emotion_count", "last_emotion", "emotion_trend")} == {
        k: first[k] for k in ("avg_emotion", "emotion_count", "last_emotion", "emotion_trend")
    }


def test_out_of_order_jobs_leave_the_final_result(settings, context, db):
    cid = new_id()
    post(context, cid, role="user", content="a", emotion_score=-1.0)
    early_job = emotion_body(cid, 1)
    post(context, cid, role="user", content="b", emotion_score=-0.5)
    post(context, cid, role="user", content="c", emotion_score=-0.9)
    late_job = emotion_body(cid, 3)
    worker(sqs_event([late_job]), context)
    expected = conversation(context, cid)
    worker(sqs_event([early_job]), context)  # the older job arrives last
    # the exact mean (a numeric sum), which a float sum of the three misses by one unit in the last place
    assert conversation(context, cid)["avg_emotion"] == expected["avg_emotion"] == -0.8
    assert expected["emotion_trend"] == "improving"  # slope of (-1, -0.5, -0.9) is +0.05 per message


def test_batch_of_ten_is_one_statement_and_partial_failures_are_reported(settings, context, database_url):
    cids = [new_id() for _ in range(9)]
    for i, cid in enumerate(cids):
        post(context, cid, role="user", content="x", emotion_score=i / 10)
    event = sqs_event([emotion_body(cid) for cid in cids] + ["{not a job"])
    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url)),
    ):
        worker(sqs_event([emotion_body(cids[0])]), context)  # open the connection
        proxy.reset()
        result = worker(event, context)
        round_trips = proxy.round_trips
    poison_id = event["Records"][-1]["messageId"]
    assert result == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert round_trips == 1
    assert [conversation(context, cid)["avg_emotion"] for cid in cids] == [i / 10 for i in range(9)]


def test_unknown_job_type_fails_only_that_record(settings, context):
    cid = new_id()
    post(context, cid, role="user", content="x", emotion_score=0.2)
    unknown = jobs.Job.new("no_such_job", "x:1", {}).model_dump_json()
    event = sqs_event([emotion_body(cid), unknown])
    result = worker(event, context)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert conversation(context, cid)["avg_emotion"] == 0.2


def test_reconciler_recovers_emotion_job_whose_send_failed(settings, context, sqs):
    cid = new_id()
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        status, _ = post(context, cid, role="user", content="the send of my job fails", emotion_score=-0.4)
    assert status == 201
    assert receive_all(sqs["client"], sqs["queue_url"]) == []  # the job is not in the queue
    assert conversation(context, cid)["avg_emotion"] is None

    result = worker({"task": "reconcile"}, context)
    assert result["re_enqueued"][jobs.EMOTION_STATS] >= 1
    recovered = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
    mine = [job for job in recovered if job["payload"].get("conversation_id") == cid]
    assert len(mine) == 1 and mine[0]["type"] == jobs.EMOTION_STATS

    worker(sqs_event([json.dumps(mine[0])]), context)
    assert conversation(context, cid)["avg_emotion"] == -0.4
    # once the statistics caught up, the reconciler leaves the conversation alone
    worker({"task": "reconcile"}, context)
    again = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
    assert not [job for job in again if job["payload"].get("conversation_id") == cid]


def test_reconciler_waits_for_the_grace_period(settings, context, sqs, db):
    cid = new_id()
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        post(context, cid, role="user", content="x", emotion_score=0.3)
    assert cid not in repository.stale_stats(db, grace_seconds=3600, limit=100_000)
    assert cid in repository.stale_stats(db, grace_seconds=0, limit=100_000)


# -- exact under any commit order -----------------------------------------------------------------
def _recomputed(db, cid: str) -> dict:
    return dataclasses.asdict(repository.recompute_emotion_stats(db, cid))


def _stats(db, cid: str) -> dict:
    return db.fetchone(
        "SELECT emotion_count, avg_emotion, last_emotion, emotion_trend FROM conversations WHERE id = %(cid)s",
        {"cid": cid},
    )


def _waiting(database_url: str) -> int:
    """How many statements on this database wait for a lock (A on the test's, B and the job behind A)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return row[0]


def test_a_late_commit_whose_send_was_lost_is_repaired_by_the_reconciler(settings, context, db, database_url):
    """Message A takes its place first but commits after message B, whose job runs in between; A's
    job is never sent. Two connections: A's statement is held (by a test trigger on its row) after
    the row got its seq; B's request runs meanwhile, then B's job. The reconciler must find the
    conversation behind, and its job must make the statistics whole."""
    cid = new_id("late")
    with settings_module.override(db_statement_deadline=30.0):  # A is held on purpose
        assert post(context, cid, role="user", content="first", emotion_score=0.5)[0] == 201
        worker(sqs_event([emotion_body(cid)]), context)
        hold = 741_001
        db.execute(f"""
            CREATE OR REPLACE FUNCTION test_hold_message() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock({hold}); RETURN NEW; END $$""")
        db.execute(f"""
            CREATE TRIGGER test_hold_message BEFORE INSERT ON messages FOR EACH ROW
            WHEN (NEW.content = 'held {cid}') EXECUTE FUNCTION test_hold_message()""")
        holder = psycopg.connect(database_url, autocommit=True)
        try:
            holder.execute("SELECT pg_advisory_lock(%s)", (hold,))
            with ThreadPoolExecutor(3) as pool:
                a = pool.submit(post, context, cid, role="user", content=f"held {cid}", emotion_score=-1.0)
                wait_until(lambda: _waiting(database_url) >= 1, timeout=10, message="A holds its seq")
                b = pool.submit(post, context, cid, role="user", content="second", emotion_score=0.25)
                # B commits first (a statement that numbers A before it blocks) or waits behind A
                wait_until(lambda: b.done() or _waiting(database_url) >= 2, timeout=10, message="B ran")
                job_b = pool.submit(worker, sqs_event([emotion_body(cid, 3)]), context)  # B's job was sent
                wait_until(lambda: job_b.done() or _waiting(database_url) >= 3, timeout=10, message="B's job ran")
                holder.execute("SELECT pg_advisory_unlock(%s)", (hold,))
                assert a.result(timeout=30)[0] == 201 and b.result(timeout=30)[0] == 201
                assert job_b.result(timeout=30) == {"batchItemFailures": []}
        finally:
            holder.close()
            db.execute("DROP TRIGGER IF EXISTS test_hold_message ON messages")
            db.execute("DROP FUNCTION IF EXISTS test_hold_message()")

    # A's job was lost: the reconciler's query finds the conversation behind, and the job it
    # re-enqueues completes the statistics
    assert cid in repository.stale_stats(db, grace_seconds=0, limit=100_000)
    worker(sqs_event([emotion_body(cid, 0)]), context)
    stats = _stats(db, cid)
    assert stats["emotion_count"] == 3 and stats["avg_emotion"] == -0.25 / 3
    assert stats == _recomputed(db, cid)
    assert cid not in repository.stale_stats(db, grace_seconds=0, limit=100_000)


def test_a_job_reads_only_the_new_messages_and_the_trend_reads_ten_rows(settings, context, db):
    cid = new_id("plan")
    for k in range(30):
        post(context, cid, role="user", content=f"m{k}", emotion_score=(k % 7 - 3) / 4)
    worker(sqs_event([emotion_body(cid)]), context)
    post(context, cid, role="user", content="new", emotion_score=1.0)
    # a table the size of a live one (other conversations' messages), as the planner sees it
    filler = new_id("filler")
    db.execute(
        """WITH c AS (INSERT INTO conversations (id, message_count, scored_count, stats_count, emotion_sum)
                      VALUES (%(cid)s, 20000, 20000, 20000, 0) RETURNING id)
           INSERT INTO messages (conversation_id, role, content, emotion_score, score_no)
           SELECT c.id, 'user', 'filler', 0, g FROM c, generate_series(1, 20000) AS g""",
        {"cid": filler},
    )
    db.execute("ANALYZE messages")
    params = {
        "ids": [cid],
        "enter": -0.05,
        "leave": 0.03,
        "min_scores": 4,
        "actor": Jsonb({"kind": "system", "via": "system"}),
    }
    plan = db.fetchall("EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF) " + repository.refresh_emotion_stats_sql(), params)[
        0
    ]["QUERY PLAN"]
    scans, indexes = [], set()

    def walk(node):
        if node.get("Relation Name") == "messages":
            scans.append((node["Node Type"], node["Actual Rows"] * node.get("Actual Loops", 1)))
        if node.get("Index Name", "").startswith("messages"):
            indexes.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    # two index ranges of messages_conversation_score: the 1 new message, and the last 10 scores
    assert sorted(rows for _, rows in scans) == [1, 10], scans
    assert "Seq Scan" not in {kind for kind, _ in scans} and indexes == {"messages_conversation_score"}, scans
    assert _stats(db, cid) == _recomputed(db, cid)


@st.composite
def _operations(draw):
    """Inserts (scored or not) into a few conversations, and jobs: single, duplicated within a
    batch, for several conversations at once, arriving before or long after their messages."""
    cids = ["a", "b", "c"]
    return draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just("insert"),
                    st.sampled_from(cids),
                    st.one_of(st.none(), st.floats(-1, 1, allow_nan=False, width=64)),
                ),
                st.tuples(st.just("job"), st.lists(st.sampled_from(cids), min_size=1, max_size=4)),
            ),
            min_size=1,
            max_size=25,
        )
    )


@given(ops=_operations())
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_interleaving_of_inserts_and_jobs_ends_equal_to_a_full_recomputation(settings, context, db, ops):
    run = new_id("prop")
    for op in ops:
        if op[0] == "insert":
            _, c, score = op
            body = {"role": "user", "content": "x"} | ({"emotion_score": score} if score is not None else {})
            assert post(context, f"{run}-{c}", **body)[0] == 201
        else:
            worker(sqs_event([emotion_body(f"{run}-{c}") for c in op[1]]), context)
            for c in set(op[1]):  # a job leaves its conversations exact, whatever came before
                if _stats(db, f"{run}-{c}") is not None:
                    assert _stats(db, f"{run}-{c}") == _recomputed(db, f"{run}-{c}")
    # the reconciler's view: every conversation with an uncounted message is behind; its job finishes it
    stale = [c for c in "abc" if f"{run}-{c}" in repository.stale_stats(db, grace_seconds=0, limit=100_000)]
    if stale:
        worker(sqs_event([emotion_body(f"{run}-{c}") for c in stale]), context)
    for c in "abc":
        if (stats := _stats(db, f"{run}-{c}")) is not None:
            assert stats == _recomputed(db, f"{run}-{c}")


def test_a_batch_where_every_record_fails_still_flushes_its_metrics(settings, context, capsys):
    """The database is down: every record fails and Powertools fails the invocation, after the batch's
    JobsFailed went out (an outage must not read as zero failures) and the correlation id was reset."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from hibachi.observability import logger

    capsys.readouterr()
    with (
        settings_module.override(database_url="postgresql://nobody@127.0.0.1:1/none"),
        pytest.raises(BatchProcessingError),
    ):
        worker(sqs_event([emotion_body(new_id()), emotion_body(new_id())]), context)
    assert logger.get_correlation_id() is None
    docs = [doc for doc in json_lines(capsys.readouterr().out) if "JobsFailed" in doc]
    assert [(d["job_type"], d["JobsFailed"], d["JobsProcessed"]) for d in docs] == [("emotion_stats", [2.0], [0.0])]
