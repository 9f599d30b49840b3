-- depends: 0004.followup-due-any-time
-- POST /bookings/search reads one keyset page ordered by (event_start, id); each filter has an index
-- that yields its rows in that order, so a page is an index range scan however many bookings exist:
-- by phone, by email (as normalized at booking time), by conversation, by status, or by time alone
-- (the from/to dates and the default "confirmed, from today on" view).
CREATE INDEX IF NOT EXISTS bookings_event_start ON bookings (event_start, id);
CREATE INDEX IF NOT EXISTS bookings_phone ON bookings (customer_phone, event_start, id);
CREATE INDEX IF NOT EXISTS bookings_email ON bookings (customer_email, event_start, id);
CREATE INDEX IF NOT EXISTS bookings_conversation ON bookings (conversation_id, event_start, id)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS bookings_status ON bookings (status, event_start, id);
