-- depends: 0002.bookings-and-followups
-- One row per chef id a CHEF_COUNT may use (1..100). A reschedule locks the row of the chef it
-- moves a booking onto (FOR UPDATE, released at the end of its one-statement transaction), so two
-- moves onto one chef take turns. Without it, each UPDATE's exclusion-constraint check could wait
-- for the other's uncommitted row: a deadlock, which PostgreSQL breaks only after deadlock_timeout
-- (1 s). Creates need no lock: their INSERT uses the constraint as an ON CONFLICT arbiter.
-- A row lock, not an advisory lock: nothing session-level for RDS Proxy to pin on.

CREATE TABLE IF NOT EXISTS chef_locks (
    chef_id integer PRIMARY KEY CHECK (chef_id BETWEEN 1 AND 100)
);

INSERT INTO chef_locks (chef_id) SELECT g FROM generate_series(1, 100) AS g ON CONFLICT DO NOTHING;
