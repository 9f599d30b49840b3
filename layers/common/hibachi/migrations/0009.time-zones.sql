-- depends: 0008.conversation-identities
-- The time zones PostgreSQL knows, as a table: a booking's zone must be one of them when it is written
-- (bookings_timezone_known), since every date-bounded search reads `event_start AT TIME ZONE timezone`
-- and a zone PostgreSQL does not know (Python's tzdata can be newer) made that fail for every caller.
-- pg_timezone_names itself is a view that reads every zone file on each query (about 100 ms), too
-- slow for a write's check; this copy is checked by its primary key. hibachi.migrate.apply adds the
-- zones of a newer PostgreSQL on every deploy. Rows written before stay as they are (NOT VALID):
-- search reads an unknown zone as UTC instead of failing.
CREATE TABLE IF NOT EXISTS time_zones (
    name text PRIMARY KEY
);
INSERT INTO time_zones (name) SELECT name FROM pg_timezone_names ON CONFLICT DO NOTHING;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'bookings_timezone_known') THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_timezone_known
            FOREIGN KEY (timezone) REFERENCES time_zones (name) NOT VALID;
    END IF;
    -- the application reads the list; only migrations change it
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hibachi_application') THEN
        REVOKE INSERT, UPDATE, DELETE ON time_zones FROM hibachi_application;
    END IF;
END
$$;
