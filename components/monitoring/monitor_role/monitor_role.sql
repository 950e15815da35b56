-- The monitoring role postgres_exporter logs in as: LOGIN, member of pg_monitor, CONNECT on
-- the application's database, nothing else. Run by monitor_role.py through psql, which sets
-- the variables role, database and verifier (a SCRAM-SHA-256 verifier computed in the pod: the
-- clear password never reaches the server, its logs or pg_stat_activity).
--
-- Connects as the RDS master user, which is no superuser (rds_superuser: CREATEROLE, and
-- pg_monitor with its admin option). So it never names SUPERUSER, REPLICATION or BYPASSRLS,
-- which only a superuser may even set to false; a role that has any of them is refused.
-- Idempotent: every run leaves the same role, whatever it found; one transaction, so a failed
-- run changes nothing.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;

SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role') \gexec

SELECT format('DO %L', format('BEGIN RAISE EXCEPTION %L; END',
       'role ' || rolname || ' is a superuser, replication or bypassrls role: a superuser '
       || 'must remove those attributes (or drop the role) before it monitors anything'))
  FROM pg_catalog.pg_roles
 WHERE rolname = :'role' AND (rolsuper OR rolreplication OR rolbypassrls) \gexec

ALTER ROLE :"role" WITH LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT 5
      VALID UNTIL 'infinity' PASSWORD :'verifier';
-- a monitor only reads: a write fails even where a privilege would allow it; a slow catalog
-- query gives up before Prometheus's scrape timeout
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '8s';
ALTER ROLE :"role" SET lock_timeout = '1s';

-- memberships: pg_monitor only (a grant added by hand is taken back)
SELECT format('REVOKE %I FROM %I', granted.rolname, member.rolname)
  FROM pg_catalog.pg_auth_members AS m
  JOIN pg_catalog.pg_roles AS granted ON granted.oid = m.roleid
  JOIN pg_catalog.pg_roles AS member ON member.oid = m.member
 WHERE member.rolname = :'role' AND granted.rolname <> 'pg_monitor' \gexec
GRANT pg_monitor TO :"role";
GRANT CONNECT ON DATABASE :"database" TO :"role";

COMMIT;
