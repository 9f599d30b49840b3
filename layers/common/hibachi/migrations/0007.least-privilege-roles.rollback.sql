-- Undo 0007: the roles lose every privilege in this database. The roles themselves stay (they are
-- cluster-wide and may be used by another database of the cluster); drop them by hand when unused.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM hibachi_application;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM hibachi_application;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM hibachi_application, hibachi_health;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM hibachi_application, hibachi_health;
REVOKE USAGE ON SCHEMA public FROM hibachi_application, hibachi_health;
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM hibachi_application, hibachi_health', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;
