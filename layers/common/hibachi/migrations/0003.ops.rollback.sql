-- Undo 0003.ops.sql
DROP INDEX IF EXISTS followups_sent_at;
DROP TABLE IF EXISTS reconciler_runs;
