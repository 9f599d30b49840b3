ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_times;
ALTER TABLE bookings ADD CONSTRAINT bookings_times CHECK (event_end > event_start AND held_until >= event_end
                                                          AND followup_due_at >= event_end);
