ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_timezone_known;
DROP TABLE IF EXISTS time_zones;
