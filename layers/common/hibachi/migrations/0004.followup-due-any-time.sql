-- depends: 0002.bookings-and-followups
-- When a follow-up falls due is a setting (FOLLOWUP_DELAY_HOURS after the event, or shortly after
-- the booking in a demo with FOLLOWUP_DEMO_DELAY_SECONDS), so the database no longer ties it to the
-- event's end; the event's own times stay checked.
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_times;
ALTER TABLE bookings ADD CONSTRAINT bookings_times CHECK (event_end > event_start AND held_until >= event_end);
