-- Least privilege for the events API.
--
--   psql -v ON_ERROR_STOP=1 -d sophon -f sql/roles.sql
--
-- sophon_reader is the role of ngx_http_sophon_events_module: it reads the
-- events table and nothing else, in read-only transactions, and a query of
-- its that runs away or whose client left is stopped by the server itself.
-- sophon_writer is the role of the box's pipeline: it adds and deletes
-- events, and cannot touch their counts.  sophon_deleter is the module's
-- role for DELETE (sophon_events_delete_db): it deletes events by id and
-- can do nothing else.  None of them can create anything.
-- All are created without a password: give them one (ALTER ROLE
-- sophon_reader PASSWORD '...') unless pg_hba.conf authenticates them
-- otherwise.  Safe to run again.

SET client_min_messages = warning;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sophon_reader') THEN
        CREATE ROLE sophon_reader LOGIN;
    END IF;

    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sophon_writer') THEN
        CREATE ROLE sophon_writer LOGIN;
    END IF;

    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sophon_deleter') THEN
        CREATE ROLE sophon_deleter LOGIN;
    END IF;
END
$$;

ALTER ROLE sophon_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE sophon_writer NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE sophon_deleter NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE sophon_deleter SET statement_timeout = '60s';

ALTER ROLE sophon_reader SET default_transaction_read_only = on;

-- a statement that runs away is stopped by the server itself.  It no longer
-- has to outlast slow clients: the module reads a statement's whole result
-- as fast as the database sends it and buffers it for a client that reads
-- slowly, so a statement runs only as long as the database takes
ALTER ROLE sophon_reader SET statement_timeout = '60s';

-- the module closes a connection whose request went away or timed out;
-- the server then stops that query within a second instead of finishing it
ALTER ROLE sophon_reader SET client_connection_check_interval = '1s';

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO sophon_reader, sophon_writer, sophon_deleter;

REVOKE ALL ON sophon_events, sophon_event_counts, sophon_event_rollups,
    sophon_event_totals, sophon_event_identities, sophon_event_deletions
    FROM sophon_reader, sophon_writer, sophon_deleter;

-- the counts are part of reading: sophon_events_total() reads them; the
-- deletions are the stream's
GRANT SELECT ON sophon_events, sophon_event_counts, sophon_event_rollups,
    sophon_event_totals, sophon_event_identities, sophon_event_deletions
    TO sophon_reader;

-- the pipeline inserts events and deletes them (SELECT: a DELETE's WHERE
-- reads the rows).  The counts are not the writer's: the triggers write
-- them as their owner (SECURITY DEFINER, see sql/schema.sql), and a writer
-- that could write them could make every total wrong
GRANT SELECT, INSERT, DELETE ON sophon_events TO sophon_writer;

-- the module's DELETE: by id, with the same triggers as the writer's
GRANT SELECT, DELETE ON sophon_events TO sophon_deleter;

-- the DELETE locks its events in id order first (sql/schema.sql)
GRANT EXECUTE ON FUNCTION sophon_events_lock(text[]) TO sophon_deleter;
