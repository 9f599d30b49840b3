-- depends: 0008.conversation-identities
-- The reminder before the event, and the conversations that need a
-- person's attention (docs/ARCHITECTURE.md, "Bookings and follow-ups" and "Emotion statistics").

-- One reminder per booking, N hours (REMINDER_LEAD_HOURS) before the event, sent like the follow-up:
-- schedule_followup keeps it at the booking's version (pending, or cancelled with the booking, or
-- skipped when the booking was made or moved later than the reminder's time), send_reminder claims
-- it only while the booking is confirmed at that version and the event has not started.
-- The follow-up's shape (its columns, defaults, checks and the reconciler's partial indexes:
-- pending by due_at, sending by claimed_at), plus the status 'skipped'.
CREATE TABLE reminders (LIKE followups INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
ALTER TABLE reminders
    ADD CONSTRAINT reminders_booking_id_fkey FOREIGN KEY (booking_id) REFERENCES bookings (id) ON DELETE CASCADE,
    DROP CONSTRAINT followups_status_check,
    ADD CONSTRAINT reminders_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'cancelled', 'skipped'));
-- the copied checks under the table's own names (errors name the constraint: hibachi.db.error_facts)
ALTER TABLE reminders RENAME CONSTRAINT followups_version_check TO reminders_version_check;
ALTER TABLE reminders RENAME CONSTRAINT followups_schedule_name_check TO reminders_schedule_name_check;
ALTER TABLE reminders RENAME CONSTRAINT followups_sent_at TO reminders_sent_at;
ALTER TABLE reminders RENAME CONSTRAINT followups_claimed_at TO reminders_claimed_at;

-- A conversation whose emotion trend fell below ATTENTION_ENTER_TREND needs attention until it
-- rises above ATTENTION_LEAVE_TREND (hysteresis): the emotion_stats statement sets and clears the
-- flag, and writes the "Conversation Needs Attention" event when it sets it.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS needs_attention boolean NOT NULL DEFAULT false;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS attention_changed_at timestamptz;
