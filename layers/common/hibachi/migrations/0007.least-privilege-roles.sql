-- Least privilege in the database: the roles the functions connect as.
--
--   owner (the user that runs this, the master user on AWS)   migrations only: DDL, the schema's owner
--   hibachi_application   the API and worker functions: SELECT/INSERT/UPDATE/DELETE on the app's
--                         tables (today's and, through default privileges, those later migrations
--                         create), their sequences; no DDL, no superuser, no role management, nothing
--                         on the migration runner's tables
--   hibachi_health        the health function: its probe (SELECT 1) and the /health/details
--                         counts; SELECT on the ops columns only (follow-up states and times,
--                         the emotion backlog, reconciler runs): no customer data, no writes
--
-- Idempotent (roles are cluster-wide: another database of the cluster, or a re-run, may have made
-- them). On Aurora the roles log in through RDS Proxy's end-to-end IAM authentication, so they get
-- rds_iam and no password; elsewhere (the local stack, tests) they have no password either.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['hibachi_application', 'hibachi_health'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', role_name);
        END IF;
        EXECUTE format(
            'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT -1',
            role_name
        );
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
            EXECUTE format('GRANT rds_iam TO %I', role_name);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
    END LOOP;
END
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15+ does this by default), nor
-- temporary tables in the database.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO hibachi_application, hibachi_health;

-- The application: DML on every app table, now and later (default privileges of the owner).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hibachi_application;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hibachi_application;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hibachi_application;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO hibachi_application;
-- ... but not the migration runner's bookkeeping (yoyo's tables, present when yoyo applies this)
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^_?yoyo' LOOP
        EXECUTE format('REVOKE ALL ON %I FROM hibachi_application, hibachi_health', t);
    END LOOP;
END
$$;

-- Health: the columns /health/details and the ops invocations read, nothing else.
GRANT SELECT (booking_id, version, status, due_at, claimed_at, sent_at, attempts, schedule_name, updated_at)
    ON followups TO hibachi_health;
GRANT SELECT (id, scored_count, stats_count) ON conversations TO hibachi_health;
GRANT SELECT ON reconciler_runs TO hibachi_health;
