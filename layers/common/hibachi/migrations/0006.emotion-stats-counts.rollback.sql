-- Undo 0006.emotion-stats-counts.sql: the seq watermarks come back, computed from the messages.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS scored_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS stats_seq bigint NOT NULL DEFAULT 0;
UPDATE conversations c SET scored_seq = m.max_seq,
    stats_seq = CASE WHEN c.stats_count = c.scored_count THEN m.max_seq ELSE 0 END
FROM (SELECT conversation_id, max(seq) AS max_seq FROM messages WHERE emotion_score IS NOT NULL
      GROUP BY conversation_id) m
WHERE c.id = m.conversation_id;
DROP INDEX IF EXISTS conversations_stats_behind;
CREATE INDEX IF NOT EXISTS conversations_stats_behind ON conversations (last_message_at) WHERE scored_seq > stats_seq;
DROP INDEX IF EXISTS messages_conversation_score;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_score_no;
ALTER TABLE messages DROP COLUMN IF EXISTS score_no;
ALTER TABLE conversations DROP COLUMN IF EXISTS emotion_sum;
ALTER TABLE conversations DROP COLUMN IF EXISTS stats_count;
ALTER TABLE conversations DROP COLUMN IF EXISTS scored_count;
