-- depends: 0006.idempotency-per-caller
-- Emotion statistics exact under any commit order, at a cost per job that grows with the new
-- messages only (docs/ARCHITECTURE.md, "Emotion statistics").
--
-- Each scored message gets its conversation's next number, score_no, in the statement that stores
-- it, under the conversation row's lock (the same statement bumps conversations.scored_count). The
-- lock is held to the commit, so score_no is dense and follows commit order: a snapshot that sees
-- number n sees 1..n. The worker adds the messages numbered above stats_count to running sums (an
-- exact numeric sum) under the same lock and sets stats_count to the last one added; the reconciler
-- re-enqueues conversations where scored_count > stats_count. The seq watermarks this replaces
-- (scored_seq, stats_seq) assumed that messages commit in seq order, and missed a late commit.

ALTER TABLE messages ADD COLUMN IF NOT EXISTS score_no integer CHECK (score_no >= 1);
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS scored_count integer NOT NULL DEFAULT 0 CHECK (scored_count >= 0);
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS stats_count integer NOT NULL DEFAULT 0 CHECK (stats_count >= 0);
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS emotion_sum numeric NOT NULL DEFAULT 0;

UPDATE messages m SET score_no = n.no
FROM (SELECT seq, row_number() OVER (PARTITION BY conversation_id ORDER BY seq) AS no
      FROM messages WHERE emotion_score IS NOT NULL) n
WHERE m.seq = n.seq;

ALTER TABLE messages ADD CONSTRAINT messages_score_no CHECK ((score_no IS NULL) = (emotion_score IS NULL));
-- the new messages of a job and the last 10 scores (the trend) are index ranges of this index
CREATE UNIQUE INDEX IF NOT EXISTS messages_conversation_score
    ON messages (conversation_id, score_no) INCLUDE (emotion_score) WHERE score_no IS NOT NULL;

-- every conversation's statistics recomputed from its messages, once
UPDATE conversations c SET
    scored_count = a.n, stats_count = a.n, emotion_count = a.n, emotion_sum = a.total,
    avg_emotion = (a.total / a.n)::double precision, last_emotion = a.last_emotion, emotion_trend = a.slope,
    stats_updated_at = now()
FROM (
    SELECT conversation_id, count(*)::int AS n, sum(emotion_score::numeric) AS total,
           (array_agg(emotion_score ORDER BY score_no DESC))[1] AS last_emotion,
           regr_slope(emotion_score, score_no) FILTER (WHERE recent <= 10) AS slope
    FROM (SELECT conversation_id, score_no, emotion_score,
                 row_number() OVER (PARTITION BY conversation_id ORDER BY score_no DESC) AS recent
          FROM messages WHERE score_no IS NOT NULL) s
    GROUP BY conversation_id
) a
WHERE c.id = a.conversation_id;

DROP INDEX IF EXISTS conversations_stats_behind;
ALTER TABLE conversations DROP COLUMN IF EXISTS scored_seq;
ALTER TABLE conversations DROP COLUMN IF EXISTS stats_seq;
CREATE INDEX IF NOT EXISTS conversations_stats_behind
    ON conversations (last_message_at) WHERE scored_count > stats_count;

-- /health/details reads the backlog from these columns (0007's health role; where 0007 already ran)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hibachi_health') THEN
        GRANT SELECT (id, scored_count, stats_count) ON conversations TO hibachi_health;
    END IF;
END
$$;
