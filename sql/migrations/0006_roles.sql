-- Warehouse roles (NOLOGIN; granted to the login roles that need them):
--   crosscheck_loader     reads and writes ingest, staging, core and mart (ingest and the comparison)
--   crosscheck_reporting  reads mart only: reports, work lists and mismatches.csv are produced through it
--                         (Warehouse.reporting()), so they cannot see core's raw rows nor change anything.
-- Role names are cluster-wide: another database on the server (or a concurrent migration of one) may
-- have created them already. A migrating user that may not create roles (no CREATEROLE) skips that
-- step; the roles are then created by the server's administrator (docker/postgres-init does).

DO $$
DECLARE
    r text;
    may_create boolean := (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user);
BEGIN
    FOREACH r IN ARRAY ARRAY['crosscheck_loader', 'crosscheck_reporting'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            IF may_create THEN
                BEGIN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by a migration of another database
                END;
            ELSE
                RAISE NOTICE 'role % does not exist and % may not create it', r, current_user;
            END IF;
        END IF;
    END LOOP;
END
$$;

-- Files received, for the report (names, counts, status: no personal data), readable from mart.
CREATE VIEW mart.files_received AS
SELECT file_id, department, extract, as_of, file_name, status, reason, rows_received, rows_loaded,
       rows_quarantined, received_at
FROM ingest.files;

DO $$
DECLARE
    s text;
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'crosscheck_loader') THEN
        FOREACH s IN ARRAY ARRAY['ingest', 'staging', 'core', 'mart'] LOOP
            EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO crosscheck_loader', s);
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA %I '
                           'TO crosscheck_loader', s);
            EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO crosscheck_loader', s);
            EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO crosscheck_loader', s);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE '
                           'ON TABLES TO crosscheck_loader', s);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES '
                           'TO crosscheck_loader', s);
        END LOOP;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'crosscheck_reporting') THEN
        GRANT USAGE ON SCHEMA mart TO crosscheck_reporting;
        GRANT SELECT ON ALL TABLES IN SCHEMA mart TO crosscheck_reporting;
        ALTER DEFAULT PRIVILEGES IN SCHEMA mart GRANT SELECT ON TABLES TO crosscheck_reporting;
        -- SET ROLE needs membership: a non-superuser migrating user grants itself the role it created
        -- (PostgreSQL 16+ gives the creator ADMIN OPTION only).
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
           AND NOT pg_has_role(current_user, 'crosscheck_reporting', 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT crosscheck_reporting TO %I', current_user);
            EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
                RAISE NOTICE '% cannot take the role crosscheck_reporting; grant it as administrator', current_user;
            END;
        END IF;
    END IF;
END
$$;
