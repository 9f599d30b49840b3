ALTER TABLE conversations DROP COLUMN IF EXISTS attention_changed_at;
ALTER TABLE conversations DROP COLUMN IF EXISTS needs_attention;
DROP TABLE IF EXISTS reminders;
