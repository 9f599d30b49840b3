-- depends: 0013.booking-holds 0014.reminders-and-attention
-- Availability at a cost that does not grow with the number of chefs: a summary of the confirmed
-- holds per 15-minute cell of time (UTC), kept by triggers on bookings, in the statement that
-- changes a booking (no path can forget it, and nothing but the triggers writes it).
--
-- Three bit strings per cell, bit k - 1 for chef k (chef ids are 1..100: bookings_chef_id_check):
--   starts   the chef has a confirmed hold that starts in the cell
--   ends     ... one that ends strictly inside the cell
--   covers   ... one that covers the whole cell
-- A hold overlaps a cell exactly when it starts in it, ends inside it or covers it, so the chefs with a
-- hold touching the cell are starts | ends | covers. A chef's holds never overlap
-- (bookings_chef_capacity) and last at least 15 minutes (bookings_hold_min below), so at most one of
-- them starts in a cell, at most one ends inside it and at most one covers it: each set bit belongs to
-- exactly one hold, and a hold that appears or goes away toggles its bits (XOR). XOR commutes, so
-- concurrent changes to one cell add up in any order and no update is lost; a statement takes its
-- cells' row locks in cell order, so two statements never deadlock on them.
--
-- What availability reads from it, per candidate start s and hold h (hibachi.bookings.repository):
-- a chef of 1..CHEF_COUNT whose bit is clear in every cell overlapping [s, s + h) is free (s is free);
-- a cell inside [s, s + h) that every one of them covers means s is full. Anything else (holds that
-- end or start inside a cell at the window's edge) is decided from the holds themselves.
ALTER TABLE bookings ADD CONSTRAINT bookings_hold_min CHECK (held_until >= event_start + interval '15 minutes');

CREATE TABLE chef_cells (
    cell   timestamptz PRIMARY KEY CHECK (cell = date_bin('15 minutes', cell, timestamptz '2000-01-01 00:00+00')),
    starts bit(100) NOT NULL,
    ends   bit(100) NOT NULL,
    covers bit(100) NOT NULL
);
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON chef_cells FROM hibachi_application;

-- The bits one hold contributes, per cell: one-hot in the chef's bit.
CREATE FUNCTION chef_cell_marks(chef integer, hold_start timestamptz, hold_end timestamptz)
RETURNS TABLE (cell timestamptz, starts bit(100), ends bit(100), covers bit(100))
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    WITH b AS (
        SELECT set_bit(repeat('0', 100)::bit(100), chef - 1, 1) AS one, repeat('0', 100)::bit(100) AS zero,
               date_bin('15 minutes', hold_start, timestamptz '2000-01-01 00:00+00') AS first_cell,
               date_bin('15 minutes', hold_end, timestamptz '2000-01-01 00:00+00') AS end_cell
    )
    SELECT first_cell, one, zero, zero FROM b
    UNION ALL
    SELECT end_cell, zero, one, zero FROM b WHERE hold_end > end_cell
    UNION ALL
    SELECT c, zero, zero, one
    FROM b, generate_series(
        CASE WHEN hold_start = first_cell THEN first_cell ELSE first_cell + interval '15 minutes' END,
        end_cell - interval '15 minutes',
        interval '15 minutes'
    ) AS c
$$;

-- Toggle the bits of these holds (a hold that appeared or went away), in cell order.
CREATE FUNCTION chef_cells_toggle(chefs integer[], hold_starts timestamptz[], hold_ends timestamptz[])
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    INSERT INTO chef_cells AS cc (cell, starts, ends, covers)
    SELECT m.cell, bit_xor(m.starts), bit_xor(m.ends), bit_xor(m.covers)
    FROM unnest(chefs, hold_starts, hold_ends) AS h (chef, a, b)
    CROSS JOIN LATERAL chef_cell_marks(h.chef, h.a, h.b) AS m
    GROUP BY m.cell
    ORDER BY m.cell
    ON CONFLICT (cell) DO UPDATE
    SET starts = cc.starts # excluded.starts, ends = cc.ends # excluded.ends, covers = cc.covers # excluded.covers
$$;
REVOKE EXECUTE ON FUNCTION chef_cells_toggle(integer[], timestamptz[], timestamptz[]) FROM PUBLIC;

-- The triggers: the confirmed holds a statement added (inserted, or updated into being) and those it
-- took away (deleted, cancelled, moved), toggled once per statement. An update that leaves a row's
-- status, chef and hold as they were toggles nothing.
CREATE FUNCTION bookings_chef_cells() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM chef_cells_toggle(array_agg(chef_id), array_agg(event_start), array_agg(held_until))
        FROM new_rows WHERE status = 'confirmed'
        HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM chef_cells_toggle(array_agg(chef_id), array_agg(event_start), array_agg(held_until))
        FROM old_rows WHERE status = 'confirmed'
        HAVING count(*) > 0;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM chef_cells_toggle(array_agg(h.chef_id), array_agg(h.event_start), array_agg(h.held_until))
        FROM old_rows o
        JOIN new_rows n USING (id)
        CROSS JOIN LATERAL (
            SELECT o.chef_id, o.event_start, o.held_until WHERE o.status = 'confirmed'
            UNION ALL
            SELECT n.chef_id, n.event_start, n.held_until WHERE n.status = 'confirmed'
        ) AS h
        WHERE (o.status, o.chef_id, o.event_start, o.held_until) IS DISTINCT FROM
              (n.status, n.chef_id, n.event_start, n.held_until)
        HAVING count(*) > 0;
    ELSE  -- TRUNCATE
        DELETE FROM chef_cells;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER bookings_chef_cells_insert AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bookings_chef_cells();
CREATE TRIGGER bookings_chef_cells_update AFTER UPDATE ON bookings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bookings_chef_cells();
CREATE TRIGGER bookings_chef_cells_delete AFTER DELETE ON bookings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bookings_chef_cells();
CREATE TRIGGER bookings_chef_cells_truncate AFTER TRUNCATE ON bookings
    FOR EACH STATEMENT EXECUTE FUNCTION bookings_chef_cells();

-- The summary made anew from the confirmed holds: for the bookings made before this migration, and
-- after a load that ran without triggers (session_replication_role = replica, as bench/scale.py loads).
CREATE FUNCTION chef_cells_rebuild() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    LOCK TABLE chef_cells IN EXCLUSIVE MODE;  -- reads go on; the triggers' writes wait for the rebuild
    DELETE FROM chef_cells;
    PERFORM chef_cells_toggle(array_agg(chef_id), array_agg(event_start), array_agg(held_until))
    FROM bookings WHERE status = 'confirmed'
    HAVING count(*) > 0;
END
$$;
REVOKE EXECUTE ON FUNCTION chef_cells_rebuild() FROM PUBLIC;
DO $$ BEGIN PERFORM chef_cells_rebuild(); END $$;
