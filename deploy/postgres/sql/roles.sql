-- synoforecast: databases and least-privilege roles on the stack's PostgreSQL.
--
-- Run by psql as a superuser, with the passwords passed as psql variables (never
-- written in this file or the image):
--   psql -v ON_ERROR_STOP=1 -v platform_password=... -v analyst_password=... \
--        -v dagster_password=... -v metabase_password=... -d postgres -f roles.sql
-- deploy/postgres/initdb/10-synoforecast.sh does that at the first start of the
-- postgres container. It is idempotent: re-running it (e.g. to rotate a password)
-- changes passwords and grants and keeps every table and row.
--
-- Roles:
--   synoforecast          the platform: owns the warehouse database and its schemas
--   analyst               NOLOGIN group: SELECT on published.*, marts.* and forecast.*, nothing else
--                         (the platform's own DDL, synoforecast.lib.warehouse.schema.analyst_role_ddl,
--                         grants to this group; it is created here because the platform
--                         role may not create roles)
--   synoforecast_analyst  LOGIN member of "analyst": Metabase's warehouse connection,
--                         analysts' psql; every session read-only
--   dagster               owns the Dagster storage database (runs, events, ticks)
--   metabase              owns Metabase's application database (questions, users)

\set ON_ERROR_STOP on
\if :{?warehouse_db} \else \set warehouse_db warehouse \endif
\if :{?dagster_db} \else \set dagster_db dagster \endif
\if :{?metabase_db} \else \set metabase_db metabase \endif

-- roles (LOGIN, no superuser, no CREATEDB, no CREATEROLE)
select format('create role %I', r) from unnest(array['synoforecast', 'analyst', 'synoforecast_analyst', 'dagster', 'metabase']) r
 where not exists (select from pg_roles where rolname = r) \gexec
alter role analyst with nologin nosuperuser nocreatedb nocreaterole noreplication;
alter role synoforecast with login nosuperuser nocreatedb nocreaterole noreplication password :'platform_password';
alter role synoforecast_analyst with login nosuperuser nocreatedb nocreaterole noreplication password :'analyst_password'
  connection limit 20;
alter role dagster with login nosuperuser nocreatedb nocreaterole noreplication password :'dagster_password';
alter role metabase with login nosuperuser nocreatedb nocreaterole noreplication password :'metabase_password';
-- belt and braces: every analyst session is read-only even if a grant slips through
grant analyst to synoforecast_analyst;
alter role synoforecast_analyst set default_transaction_read_only = on;
alter role synoforecast_analyst set statement_timeout = '5min';

-- databases, each owned by its role
select format('create database %I owner synoforecast', :'warehouse_db')
 where not exists (select from pg_database where datname = :'warehouse_db') \gexec
select format('create database %I owner dagster', :'dagster_db')
 where not exists (select from pg_database where datname = :'dagster_db') \gexec
select format('create database %I owner metabase', :'metabase_db')
 where not exists (select from pg_database where datname = :'metabase_db') \gexec

-- nobody but the owner connects by default
select format('revoke all on database %I from public', d)
  from unnest(array[:'warehouse_db', :'dagster_db', :'metabase_db']) d \gexec
select format('grant connect, temporary on database %I to synoforecast', :'warehouse_db') \gexec
select format('grant connect on database %I to synoforecast_analyst', :'warehouse_db') \gexec
select format('grant connect on database %I to dagster', :'dagster_db') \gexec
select format('grant connect on database %I to metabase', :'metabase_db') \gexec

-- inside the warehouse
\connect :warehouse_db
revoke create on schema public from public;
revoke all on schema public from synoforecast_analyst;

-- the platform's schemas, owned by the platform role, so that everything the platform,
-- dbt and the forecasts create belongs to it
create schema if not exists raw authorization synoforecast;
create schema if not exists staging authorization synoforecast;
create schema if not exists marts authorization synoforecast;
create schema if not exists reference authorization synoforecast;
create schema if not exists forecast authorization synoforecast;
create schema if not exists ops authorization synoforecast;
create schema if not exists published authorization synoforecast;

-- the analyst reads the published outputs, and only those
-- (`published`: one complete export, switched in one transaction; what Metabase should read)
grant usage on schema marts, forecast, published to analyst;
grant select on all tables in schema marts, forecast, published to analyst;
-- ... including tables and views the platform creates later (dbt rebuilds, new marts)
alter default privileges for role synoforecast in schema marts, forecast, published
  grant select on tables to analyst;
revoke all on schema raw, staging, reference, ops from analyst, synoforecast_analyst;
