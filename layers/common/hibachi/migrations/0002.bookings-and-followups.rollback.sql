-- btree_gist stays: dropping an extension other objects may use is not this migration's call.
DROP TABLE IF EXISTS followups;
DROP TABLE IF EXISTS bookings;
