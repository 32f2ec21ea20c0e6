-- The events table of ngx_http_sophon_events_module.
--
--   psql -v ON_ERROR_STOP=1 -d DB -f sql/schema.sql
--
-- Safe to run again on a live database: every statement is IF NOT EXISTS.
--
-- Each event is the document the box produced, in "doc", as the bytes it
-- was written in: the source of truth, returned to clients unchanged (keys
-- in the writer's order, numbers with the writer's digits).  Its type is
-- json, which checks the text on insert and keeps it as it is; jsonb would
-- reorder keys and re-spell numbers, and printing it back costs a page
-- more than sending it (4,480 against 11,300 pages a second, issue 10).
-- The other columns are filled from "doc" by a trigger, so writers insert
-- the document alone:
--
--   INSERT INTO sophon_events (doc) VALUES ($1);
--
-- and the API's filters read plain indexed columns instead of digging
-- through JSON at query time.  A document that is not a JSON object,
-- without an "_id" or a numeric "timestamp", or whose "common.person_type"
-- or "common.score" is not a number, is refused by the insert itself.

SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- the table, its conversion and its trigger together: no writer may see
-- a converted table whose columns nothing fills yet
BEGIN;

CREATE TABLE IF NOT EXISTS sophon_events (
    -- lz4: pglz spent 60% of a bulk load compressing 10 KB feature-heavy
    -- documents for no saving at all
    doc             json COMPRESSION lz4 NOT NULL,

    -- "_id", unique; compared byte by byte so that the newest-first order
    -- ("timestamp" desc, "_id" desc) does not depend on the locale.
    id              text COLLATE "C" NOT NULL,

    -- "timestamp", Unix seconds with fractions.
    ts              double precision NOT NULL,

    identity_id     text,
    identity_name   text,

    -- An event without "person_type" counts as an employee (1).
    person_type     smallint NOT NULL,

    score           double precision,
    group_id        text,

    -- common.ep_info.device_id
    device_id       text,

    -- Firmware keeps the room in identity_info.ext_info, some older builds
    -- in identity_info itself; strangers ({} identity_info) have none.
    room            text,

    -- the transaction that wrote the row, for the live stream (below)
    xid             xid8,

    CONSTRAINT sophon_events_pkey PRIMARY KEY (id),
    CONSTRAINT sophon_events_doc_object
        CHECK (json_typeof(doc) = 'object')
);

-- A table of an earlier release kept doc as jsonb, with the other columns
-- GENERATED from it.  Its documents' original bytes are gone; the text
-- jsonb prints becomes the stored text, and the columns keep their values
-- and are filled by the trigger from now on.  This rewrites the table and
-- its indexes once (README, "Upgrading").
DO $$
BEGIN
    IF (SELECT atttypid FROM pg_attribute
         WHERE attrelid = 'sophon_events'::regclass AND attname = 'doc')
       = 'jsonb'::regtype
    THEN
        ALTER TABLE sophon_events
            DROP CONSTRAINT IF EXISTS sophon_events_doc_is_object,
            ALTER COLUMN id DROP EXPRESSION,
            ALTER COLUMN ts DROP EXPRESSION,
            ALTER COLUMN identity_id DROP EXPRESSION,
            ALTER COLUMN identity_name DROP EXPRESSION,
            ALTER COLUMN person_type DROP EXPRESSION,
            ALTER COLUMN score DROP EXPRESSION,
            ALTER COLUMN group_id DROP EXPRESSION,
            ALTER COLUMN device_id DROP EXPRESSION,
            ALTER COLUMN room DROP EXPRESSION;

        -- (a new type resets the compression: the rewrite keeps lz4)
        ALTER TABLE sophon_events
            ALTER COLUMN doc SET COMPRESSION lz4,
            ALTER COLUMN doc TYPE json USING doc::json,
            ADD CONSTRAINT sophon_events_doc_object
                CHECK (json_typeof(doc) = 'object');
    END IF;
END
$$;

-- for tables made before the column said so
ALTER TABLE sophon_events ALTER COLUMN doc SET COMPRESSION lz4;

-- a table of a release without the stream: its rows keep a NULL xid, as
-- old as any stream (checked first: ADD COLUMN IF NOT EXISTS would take
-- its ACCESS EXCLUSIVE lock every time)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = 'sophon_events'::regclass
                      AND attname = 'xid' AND NOT attisdropped)
    THEN
        ALTER TABLE sophon_events ADD COLUMN xid xid8;
    END IF;
END
$$;

-- The document's "timestamp", the key the table is partitioned by (below,
-- "Partitions and retention").  A partition key cannot be a column that a
-- trigger fills (the row is routed before the trigger runs) nor a
-- generated column, so it is this expression of the document.  The
-- trigger's json_to_record() reads the same value into ts: the same text
-- through the same float8 input, a repeated key's last value for both
-- (t/029 checks them equal), so a row's ts and key are one value without
-- a second read of the document.
CREATE OR REPLACE FUNCTION sophon_events_doc_ts(doc json)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (doc ->> 'timestamp')::double precision;

-- Pins this transaction's search_path to the schema this script creates
-- in, then pg_temp, named last: a function created after it with SET
-- search_path FROM CURRENT resolves its names there, whatever its
-- caller's (see the counts' functions).  For the rest of the transaction
-- only: each transaction below that creates such functions calls it.
CREATE OR REPLACE FUNCTION sophon_events_pin_search_path()
RETURNS text LANGUAGE sql AS $$
    SELECT set_config('search_path',
                      format('%I, pg_temp', current_schema()), true)
$$;

-- the names the trigger reads are this script's schema's, whatever the
-- writer's search_path
DO $$ BEGIN PERFORM sophon_events_pin_search_path(); END $$;

-- The columns of a document, read in one pass over its top level and one
-- over "common" (json_to_record): casting the whole document to jsonb
-- instead would convert the 512 numbers of the feature for nothing, and
-- cost 30% more per insert.  An UPDATE of doc refills them; one that sets
-- a column alone gets the document's value back.
CREATE OR REPLACE FUNCTION sophon_events_fields()
RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    top  record;
    c    record;
BEGIN
    IF NEW.doc IS NULL THEN
        -- the NOT NULL constraint says so
        RETURN NEW;
    END IF;

    IF json_typeof(NEW.doc) <> 'object' THEN
        RAISE check_violation USING
            MESSAGE = 'sophon_events: the document is not a JSON object';
    END IF;

    SELECT * INTO top
      FROM json_to_record(NEW.doc)
           AS d("_id" text, "timestamp" double precision, common json);

    NEW.id := top._id;
    NEW.ts := top.timestamp;

    -- a partition's own unique index sees its month only: the others are
    -- looked at here (README, "Partitions and retention")
    IF TG_TABLE_NAME <> 'sophon_events'
       AND (TG_OP = 'INSERT' OR NEW.id IS DISTINCT FROM OLD.id)
       AND EXISTS (SELECT FROM sophon_events e WHERE e.id = NEW.id)
    THEN
        RAISE unique_violation USING
            MESSAGE = format('duplicate key value violates unique'
                             ' constraint "sophon_events_pkey"'),
            DETAIL = format('Key (id)=(%s) already exists.', NEW.id);
    END IF;

    IF json_typeof(top.common) = 'object' THEN
        SELECT * INTO c
          FROM json_to_record(top.common)
               AS d(identity_id text, identity_name text,
                    person_type numeric, score double precision,
                    group_id text, ep_info json, identity_info json);

        NEW.identity_id := c.identity_id;
        NEW.identity_name := c.identity_name;
        NEW.person_type := coalesce(c.person_type::smallint, 1);
        NEW.score := c.score;
        NEW.group_id := c.group_id;
        NEW.device_id := c.ep_info ->> 'device_id';
        NEW.room := coalesce(c.identity_info #>> '{ext_info,room}',
                             c.identity_info ->> 'room');
    ELSE
        NEW.identity_id := NULL;
        NEW.identity_name := NULL;
        NEW.person_type := 1;
        NEW.score := NULL;
        NEW.group_id := NULL;
        NEW.device_id := NULL;
        NEW.room := NULL;
    END IF;

    NEW.xid := pg_current_xact_id();

    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER sophon_events_fields
    BEFORE INSERT OR UPDATE ON sophon_events
    FOR EACH ROW EXECUTE FUNCTION sophon_events_fields();

COMMIT;

-- Newest first, and every time window.
CREATE INDEX IF NOT EXISTS sophon_events_ts
    ON sophon_events (ts, id);

-- Equality filters, each ordered like the answer so that the first page of
-- "everything for identity X" or "camera Y" is read straight off the index.
CREATE INDEX IF NOT EXISTS sophon_events_identity_id
    ON sophon_events (identity_id, ts, id);
CREATE INDEX IF NOT EXISTS sophon_events_device_id
    ON sophon_events (device_id, ts, id);
CREATE INDEX IF NOT EXISTS sophon_events_group_id
    ON sophon_events (group_id, ts, id);
CREATE INDEX IF NOT EXISTS sophon_events_person_type
    ON sophon_events (person_type, ts, id);
CREATE INDEX IF NOT EXISTS sophon_events_room
    ON sophon_events (room, ts, id);

CREATE INDEX IF NOT EXISTS sophon_events_score
    ON sophon_events (score);

-- Case-insensitive substring search on names (ILIKE '%...%').
CREATE INDEX IF NOT EXISTS sophon_events_identity_name
    ON sophon_events USING gin (identity_name gin_trgm_ops);

-- The live stream's new rows: those of the transactions a snapshot sees
-- and the one before did not, all with an xid at least the older one's
-- xmin, read in (xid, id) order from a position in it, so that the rows
-- of one big transaction (a bulk load) are read a batch at a time, not
-- all of them for every batch (README, "The live stream").
CREATE INDEX IF NOT EXISTS sophon_events_xid_id
    ON sophon_events (xid, id) WHERE xid IS NOT NULL;
DROP INDEX IF EXISTS sophon_events_xid;


-- Exact totals at the cost of a lookup.
--
-- count(*) grows with the table: on 200,000 events it took 20 ms where the
-- page itself takes 0.1 ms.  So the events are also counted per hour,
-- camera and person type, and per camera and person type overall, by
-- triggers in the same transaction as the events themselves: a snapshot
-- sees counts and events that agree, however many writers there are.
--
-- A counter row is locked by the writer that updates it until that
-- writer commits, its WAL flush included, so writers of one camera would
-- queue behind each other on its hour's, day's and 32 days' counters and
-- its total: 16 writers on one camera inserted 0.54 to 0.56 of the events
-- a second of 16 on 16 cameras (bench/ingest.sh).  So each of those
-- counters is kept in up to sophon_events_slots() rows, its slots, and a
-- writer adds to the slot of its backend: writers of one camera mostly
-- update different rows.  A count is the sum of its key's slots; a slot
-- alone means nothing (a delete may leave it negative).  Readers sum the
-- slots, so sophon_events_fold() merges the slots of the hours and days
-- that are over into one row (schedule it: README).
--
-- sophon_events_total() answers the filters these counts can (time window,
-- cameras, person types) from them, and counts only the events of the two
-- partial hours at the window's ends.  The same counts are kept per day
-- (24 hours) and per 32 days (768 hours) too, so that a window's whole
-- hours cost at most 23 + 23 hours, 31 + 31 days and one row per 32 days
-- per camera and type, whatever its length, instead of one per hour.
--
-- The people a box knows are few, their events many: the events are also
-- counted per identity (identity_id and identity_name, as each event
-- names them), and name= and identity_id, alone or together, are answered
-- from those counts (the module's statement sums them).  A stranger's
-- event names nobody (both empty) and is not counted there: no filter
-- value is empty, so no such total needs it, and its counter would be one
-- row that every stranger's insert on every camera waits for.  Other
-- filters, and these with others, count the matching rows, through their
-- own indexes.

BEGIN;

-- no event may be written while the counters change shape (a writer's
-- trigger would name a key they no longer have), nor between the
-- triggers and the first count (below)
LOCK TABLE sophon_events IN SHARE ROW EXCLUSIVE MODE;

-- The hour of an event, floor(ts / 3600), exact for every float
-- timestamp.  Under 2^52 s, floor(ts) / 3600 in float8 is off by at most
-- half an ulp of a quotient under 2^41, 2^-12, and a whole hour's last
-- second is 1/3600 below the next: the floor is exact (floor(ts) first,
-- so no rounding moves an event across an hour).  Past 2^52 s every
-- float8 is an integer, and the quotient's ulp passes 1/3600: 9.1e18 /
-- 3600 would round up to the next hour.  There the timestamp is made an
-- exact numeric (its high and low 32 bits are exact float8s) and divided
-- with "div", which truncates: the floor, exactly, for either sign.  An
-- hour past the bigint's range makes the cast fail, and the insert with
-- it.
CREATE OR REPLACE FUNCTION sophon_events_hour(ts double precision)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN abs(ts) < 4503599627370496 THEN floor(floor(ts) / 3600)::bigint
    ELSE (div(trunc(ts / 4294967296)::numeric * 4294967296
              + (ts - trunc(ts / 4294967296) * 4294967296)::numeric, 3600)
          - CASE WHEN ts < 0
                      AND mod(trunc(ts / 4294967296)::numeric * 4294967296
                              + (ts - trunc(ts / 4294967296) * 4294967296)
                                ::numeric, 3600) <> 0
                 THEN 1 ELSE 0 END)::bigint
END;

-- how many slots a counter may have: 8 spread 16 writers of one camera
-- well enough (bench/ingest.sh), and a total reads at most 8 rows a key
CREATE OR REPLACE FUNCTION sophon_events_slots()
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 8;

-- slot is the last column, where ADD COLUMN puts it in the tables made
-- before it (below): the row type is the same either way
CREATE TABLE IF NOT EXISTS sophon_event_counts (
    hour            bigint NOT NULL,
    device_id       text NOT NULL,
    person_type     smallint NOT NULL,
    n               bigint NOT NULL,
    slot            smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, device_id, person_type, slot)
);

-- the hour counts rolled up: grain 1 is a day (period: the hour's floor
-- divided by 24), grain 2 is 32 days (by 768)
CREATE TABLE IF NOT EXISTS sophon_event_rollups (
    grain           smallint NOT NULL,
    period          bigint NOT NULL,
    device_id       text NOT NULL,
    person_type     smallint NOT NULL,
    n               bigint NOT NULL,
    slot            smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (grain, period, device_id, person_type, slot)
);

-- the grains and their hours
CREATE OR REPLACE FUNCTION sophon_events_grains(OUT grain smallint,
    OUT hours int)
RETURNS SETOF record LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ VALUES (1::smallint, 24), (2::smallint, 768) $$;

-- the day or 32 days of an hour: the floor of the quotient, in bigint
-- ("/" truncates towards zero), exact for every bigint hour, where a
-- numeric quotient would be rounded first
CREATE OR REPLACE FUNCTION sophon_events_period(hour bigint, hours int)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hour / hours - CASE WHEN hour % hours < 0 THEN 1 ELSE 0 END;

CREATE TABLE IF NOT EXISTS sophon_event_totals (
    device_id       text NOT NULL,
    person_type     smallint NOT NULL,
    n               bigint NOT NULL,
    slot            smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, person_type, slot)
);

-- Tables of an earlier release, without slots: their counters become slot
-- 0 of their key.  Checked first, so that running this again takes no
-- ACCESS EXCLUSIVE lock, which would queue the readers of the counts.
DO $$
DECLARE
    tab   regclass;
    pkey  name;
BEGIN
    FOREACH tab IN ARRAY ARRAY['sophon_event_counts'::regclass,
                               'sophon_event_totals'::regclass] LOOP
        CONTINUE WHEN EXISTS (
            SELECT FROM pg_constraint k
              JOIN pg_attribute a ON a.attrelid = k.conrelid
                                 AND a.attnum = ANY (k.conkey)
             WHERE k.conrelid = tab AND k.contype = 'p'
               AND a.attname = 'slot');

        SELECT conname INTO pkey FROM pg_constraint
         WHERE conrelid = tab AND contype = 'p';

        -- the default is a constant: no rewrite of the table
        EXECUTE format('ALTER TABLE %s'
                       ' ADD COLUMN IF NOT EXISTS slot smallint NOT NULL'
                       ' DEFAULT 0,'
                       ' DROP CONSTRAINT %I,'
                       ' ADD CONSTRAINT %I PRIMARY KEY (%s)',
                       tab, pkey, pkey,
                       CASE tab WHEN 'sophon_event_counts'::regclass
                                THEN 'hour, device_id, person_type, slot'
                                ELSE 'device_id, person_type, slot' END);
    END LOOP;
END
$$;

-- the rows sophon_events_fold() merges, whatever the history's length
CREATE INDEX IF NOT EXISTS sophon_event_counts_slots
    ON sophon_event_counts (hour) WHERE slot <> 0;
CREATE INDEX IF NOT EXISTS sophon_event_rollups_slots
    ON sophon_event_rollups (grain, period) WHERE slot <> 0;

-- NULLs are '' (no filter value is empty).  Unique by the name's MD5, not
-- the name: a btree entry holds at most about 2.7 kB, and a name longer
-- than that must not make its event's insert fail (the events' own index
-- on names is a trigram one, which has no such limit; the id's is a btree
-- there too).  Two names of one id that collide in MD5 would share a
-- counter; names are people's names, written by the box, not an
-- adversary's.
CREATE TABLE IF NOT EXISTS sophon_event_identities (
    identity_id     text NOT NULL,
    identity_name   text NOT NULL,
    n               bigint NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS sophon_event_identities_key
    ON sophon_event_identities (identity_id, md5(identity_name));

CREATE INDEX IF NOT EXISTS sophon_event_identities_name
    ON sophon_event_identities USING gin (identity_name gin_trgm_ops);

-- The counts are trusted only because nobody but these triggers writes
-- them: the trigger functions are SECURITY DEFINER, owned by the owner of
-- the counts, so the writer role needs no privilege on the counts at all
-- (sql/roles.sql grants none).  A definer function must not resolve names
-- through its caller's search_path: a caller could put a temporary table
-- named sophon_event_counts first (pg_temp is searched first unless it is
-- named) and collect the counts there.  So their search_path is fixed when
-- they are created: the schema this script creates the tables in, then
-- pg_temp, named last so that nothing of theirs is looked up there.
-- pg_catalog is not named, so it is searched first and no function of the
-- schema can stand in for a built-in one; naming it first would also make
-- it the schema that CREATE FUNCTION creates in.
-- for the rest of this transaction only; SET ... FROM CURRENT below
-- copies it into the functions
DO $$ BEGIN PERFORM sophon_events_pin_search_path(); END $$;

-- adds the statement's rows (new_rows) and takes away the rows it removed
-- (old_rows) from the four counts.  Every writing statement locks counters
-- in one global order (counts, rollups, totals, identities, each in key
-- order, an UPDATE's old and new rows merged into one pass), so concurrent
-- statements never deadlock on the counters; a counter the statement
-- leaves as it was is not touched at all.  The rows' counters go through
-- arrays of counter rows (n: +count or -count) so that each upsert is
-- written, and its plan cached, once.
--
-- The hours, roll-ups and totals are added to the slot of the writing
-- backend: the writers of one camera are as many backends (connections),
-- and a backend's transactions follow one another, so two of them never
-- wait for each other; its pid spreads them over the slots (the pids of
-- connections opened together mostly follow each other).
CREATE OR REPLACE FUNCTION sophon_events_count_rows()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
DECLARE
    my_slot  constant smallint := pg_backend_pid() % sophon_events_slots();
    delta    sophon_event_counts[];
    who      sophon_event_identities[];
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        delta := ARRAY(
            SELECT (hour, device_id, person_type,
                    count(*), my_slot)::sophon_event_counts
              FROM (SELECT sophon_events_hour(ts) AS hour,
                           coalesce(device_id, '') AS device_id, person_type
                      FROM new_rows) r
             GROUP BY hour, device_id, person_type);

        who := ARRAY(
            SELECT (identity_id, identity_name,
                    count(*))::sophon_event_identities
              FROM (SELECT coalesce(identity_id, '') AS identity_id,
                           coalesce(identity_name, '') AS identity_name
                      FROM new_rows) r
             WHERE identity_id <> '' OR identity_name <> ''
             GROUP BY identity_id, identity_name);
    END IF;

    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        delta := delta || ARRAY(
            SELECT (hour, device_id, person_type,
                    -count(*), my_slot)::sophon_event_counts
              FROM (SELECT sophon_events_hour(ts) AS hour,
                           coalesce(device_id, '') AS device_id, person_type
                      FROM old_rows) r
             GROUP BY hour, device_id, person_type);

        who := who || ARRAY(
            SELECT (identity_id, identity_name,
                    -count(*))::sophon_event_identities
              FROM (SELECT coalesce(identity_id, '') AS identity_id,
                           coalesce(identity_name, '') AS identity_name
                      FROM old_rows) r
             WHERE identity_id <> '' OR identity_name <> ''
             GROUP BY identity_id, identity_name);
    END IF;

    INSERT INTO sophon_event_counts AS c
           (hour, device_id, person_type, slot, n)
    SELECT hour, device_id, person_type, my_slot, sum(n)
      FROM unnest(delta)
     GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (hour, device_id, person_type, slot)
    DO UPDATE SET n = c.n + excluded.n;

    INSERT INTO sophon_event_rollups AS r
           (grain, period, device_id, person_type, slot, n)
    SELECT g.grain, sophon_events_period(d.hour, g.hours), d.device_id,
           d.person_type, my_slot, sum(d.n)
      FROM unnest(delta) d, sophon_events_grains() g
     GROUP BY 1, 2, 3, 4 HAVING sum(d.n) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (grain, period, device_id, person_type, slot)
    DO UPDATE SET n = r.n + excluded.n;

    INSERT INTO sophon_event_totals AS t (device_id, person_type, slot, n)
    SELECT device_id, person_type, my_slot, sum(n)
      FROM unnest(delta)
     GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
    ON CONFLICT (device_id, person_type, slot)
    DO UPDATE SET n = t.n + excluded.n;

    IF cardinality(who) > 0 THEN
        INSERT INTO sophon_event_identities AS i
        SELECT identity_id, identity_name, sum(n)
          FROM unnest(who)
         GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (identity_id, md5(identity_name))
        DO UPDATE SET n = i.n + excluded.n;
    END IF;

    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION sophon_events_count_truncate()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE sophon_event_counts, sophon_event_rollups, sophon_event_totals,
        sophon_event_identities;
    RETURN NULL;
END
$$;

-- they run with the rights of whoever owns the counts, not of whoever ran
-- this script last (a superuser, perhaps); a trigger needs no EXECUTE
-- privilege to fire, so nobody needs one to call them
DO $$
DECLARE
    owner  text := (SELECT relowner::regrole::text FROM pg_class
                     WHERE oid = 'sophon_event_counts'::regclass);
BEGIN
    -- the counts added by a later release than the table (by whoever ran
    -- this script) belong to the owner of the others, whose triggers
    -- write them
    EXECUTE format('ALTER TABLE sophon_event_rollups OWNER TO %s', owner);
    EXECUTE format('ALTER TABLE sophon_event_identities OWNER TO %s', owner);
    EXECUTE format('ALTER FUNCTION sophon_events_count_rows() OWNER TO %s',
                   owner);
    EXECUTE format('ALTER FUNCTION sophon_events_count_truncate()'
                   ' OWNER TO %s', owner);
END
$$;

REVOKE EXECUTE ON FUNCTION sophon_events_count_rows(),
    sophon_events_count_truncate() FROM PUBLIC;

-- The recount and the fold read what their lock waited for: each
-- statement's snapshot must be newer than the lock, which an older
-- transaction's snapshot (REPEATABLE READ) is not.
CREATE OR REPLACE FUNCTION sophon_events_read_committed(caller text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '% needs a READ COMMITTED transaction, not %',
                        caller,
                        upper(current_setting('transaction_isolation'));
    END IF;
END
$$;

-- Rebuilds the four counts from the events, for when something skipped the
-- triggers (session_replication_role = replica, pg_restore
-- --disable-triggers, ALTER TABLE ... DISABLE TRIGGER) or wrote the counts
-- by hand:
--
--   SELECT * FROM sophon_events_recount();
--
-- Online: it takes SHARE ROW EXCLUSIVE on sophon_events, which waits for
-- the writing transactions under way and makes new writers wait until it
-- commits, but lets readers read: they keep seeing the old counts (and
-- the same events) until it commits.  Only the counters that are wrong
-- are written, in place, so readers never see a table being emptied and
-- refilled: a key whose slots do not add up to its events gets its count
-- in slot 0 and loses its other slots (all of them if it has no event).
-- Returns the events counted and the counter rows it corrected.
-- In READ COMMITTED only: its statements must see every event committed
-- before its lock was granted, which an older snapshot would not.
CREATE OR REPLACE FUNCTION sophon_events_recount(OUT events bigint,
    OUT corrected bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM sophon_events_read_committed('sophon_events_recount()');

    LOCK TABLE sophon_events IN SHARE ROW EXCLUSIVE MODE;

    -- two passes over the events; the eight writes touch disjoint rows
    -- (of a wrong key, its slots but slot 0, then its slot 0; or all of
    -- them, and then none)
    WITH fresh AS MATERIALIZED (
        SELECT sophon_events_hour(ts) AS hour,
               coalesce(device_id, '') AS device_id, person_type,
               count(*) AS n
          FROM sophon_events
         GROUP BY 1, 2, 3
    ),
    fresh_totals AS MATERIALIZED (
        SELECT device_id, person_type, sum(n)::bigint AS n
          FROM fresh
         GROUP BY 1, 2
    ),
    fresh_rollups AS MATERIALIZED (
        SELECT g.grain, sophon_events_period(f.hour, g.hours) AS period,
               f.device_id, f.person_type, sum(f.n)::bigint AS n
          FROM fresh f, sophon_events_grains() g
         GROUP BY 1, 2, 3, 4
    ),
    fresh_identities AS MATERIALIZED (
        SELECT identity_id, identity_name, count(*) AS n
          FROM (SELECT coalesce(identity_id, '') AS identity_id,
                       coalesce(identity_name, '') AS identity_name
                  FROM sophon_events) e
         WHERE identity_id <> '' OR identity_name <> ''
         GROUP BY 1, 2
    ),
    -- the keys whose slots do not add up to their events (a key at 0
    -- without events is right, and stays), with their right count; a key
    -- whose slots add up is right, however they split it
    wrong_counts AS MATERIALIZED (
        SELECT hour, device_id, person_type, coalesce(f.n, 0) AS n
          FROM fresh f
          FULL JOIN (SELECT hour, device_id, person_type, sum(n) AS n
                       FROM sophon_event_counts
                      GROUP BY 1, 2, 3) c
               USING (hour, device_id, person_type)
         WHERE coalesce(f.n, 0) <> coalesce(c.n, 0)
    ),
    wrong_rollups AS MATERIALIZED (
        SELECT grain, period, device_id, person_type, coalesce(f.n, 0) AS n
          FROM fresh_rollups f
          FULL JOIN (SELECT grain, period, device_id, person_type,
                            sum(n) AS n
                       FROM sophon_event_rollups
                      GROUP BY 1, 2, 3, 4) r
               USING (grain, period, device_id, person_type)
         WHERE coalesce(f.n, 0) <> coalesce(r.n, 0)
    ),
    wrong_totals AS MATERIALIZED (
        SELECT device_id, person_type, coalesce(f.n, 0) AS n
          FROM fresh_totals f
          FULL JOIN (SELECT device_id, person_type, sum(n) AS n
                       FROM sophon_event_totals
                      GROUP BY 1, 2) t
               USING (device_id, person_type)
         WHERE coalesce(f.n, 0) <> coalesce(t.n, 0)
    ),
    -- of each wrong key, the count in slot 0 and no other slot (no row
    -- at all for a key without events)
    stale_counts AS (
        DELETE FROM sophon_event_counts c
         USING wrong_counts w
         WHERE (c.hour, c.device_id, c.person_type)
               = (w.hour, w.device_id, w.person_type)
           AND (c.slot <> 0 OR w.n = 0)
        RETURNING 1
    ),
    set_counts AS (
        INSERT INTO sophon_event_counts AS c
               (hour, device_id, person_type, slot, n)
        SELECT hour, device_id, person_type, 0, n
          FROM wrong_counts WHERE n <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (hour, device_id, person_type, slot)
        DO UPDATE SET n = excluded.n
        RETURNING 1
    ),
    stale_rollups AS (
        DELETE FROM sophon_event_rollups r
         USING wrong_rollups w
         WHERE (r.grain, r.period, r.device_id, r.person_type)
               = (w.grain, w.period, w.device_id, w.person_type)
           AND (r.slot <> 0 OR w.n = 0)
        RETURNING 1
    ),
    set_rollups AS (
        INSERT INTO sophon_event_rollups AS r
               (grain, period, device_id, person_type, slot, n)
        SELECT grain, period, device_id, person_type, 0, n
          FROM wrong_rollups WHERE n <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (grain, period, device_id, person_type, slot)
        DO UPDATE SET n = excluded.n
        RETURNING 1
    ),
    stale_totals AS (
        DELETE FROM sophon_event_totals t
         USING wrong_totals w
         WHERE (t.device_id, t.person_type) = (w.device_id, w.person_type)
           AND (t.slot <> 0 OR w.n = 0)
        RETURNING 1
    ),
    set_totals AS (
        INSERT INTO sophon_event_totals AS t (device_id, person_type, slot, n)
        SELECT device_id, person_type, 0, n
          FROM wrong_totals WHERE n <> 0 ORDER BY 1, 2
        ON CONFLICT (device_id, person_type, slot)
        DO UPDATE SET n = excluded.n
        RETURNING 1
    ),
    -- a counter left at 0 by deletes is right, and stays
    stale_identities AS (
        DELETE FROM sophon_event_identities i
         WHERE i.n <> 0
           AND NOT EXISTS (SELECT FROM fresh_identities f
                            WHERE (f.identity_id, f.identity_name)
                                  = (i.identity_id, i.identity_name))
        RETURNING 1
    ),
    set_identities AS (
        INSERT INTO sophon_event_identities AS i
        SELECT * FROM fresh_identities ORDER BY 1, 2
        ON CONFLICT (identity_id, md5(identity_name))
        DO UPDATE SET n = excluded.n WHERE i.n <> excluded.n
        RETURNING 1
    )
    SELECT coalesce((SELECT sum(n) FROM fresh), 0),
           (SELECT count(*) FROM stale_counts)
           + (SELECT count(*) FROM set_counts)
           + (SELECT count(*) FROM stale_rollups)
           + (SELECT count(*) FROM set_rollups)
           + (SELECT count(*) FROM stale_totals)
           + (SELECT count(*) FROM set_totals)
           + (SELECT count(*) FROM stale_identities)
           + (SELECT count(*) FROM set_identities)
      INTO events, corrected;
END
$$;

-- the owner (or a superuser) repairs; nobody else needs to
REVOKE EXECUTE ON FUNCTION sophon_events_recount() FROM PUBLIC;

-- Merges the slots of every hour, day and 32 days that ended before the
-- last hour into slot 0, for the readers: a total sums every slot of the
-- keys it reads, and the writers of one camera fill up to
-- sophon_events_slots() of them.  Schedule it every few minutes (README);
-- without it totals stay exact, and read up to that many times the rows.
--
--   SELECT sophon_events_fold();
--
-- It takes SHARE ROW EXCLUSIVE on the counters it folds, so the writers
-- under way finish first and new ones wait for its commit (a few
-- milliseconds: the slot rows since the last fold, found through partial
-- indexes); readers never wait, and see the counters before or after,
-- each adding up the same.  If the lock is not granted within 200 ms (a
-- long writing transaction, a loader, a vacuum of the counters), it
-- returns NULL and folds nothing, rather than keep the writers queued
-- behind its request; the next run folds.  The lock, rather than row locks, because a writer may backfill
-- an hour that is over, and rows locked in another order than the
-- writers' could deadlock with it.  Returns the slot rows it merged into
-- slot 0.
CREATE OR REPLACE FUNCTION sophon_events_fold(OUT folded bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT SET lock_timeout = '200ms'
AS $$
DECLARE
    -- the hour before this one is over too: its last writers commit late
    end_hour  constant bigint
              := floor(extract(epoch FROM now()) / 3600)::bigint - 1;
BEGIN
    PERFORM sophon_events_read_committed('sophon_events_fold()');

    BEGIN
        LOCK TABLE sophon_event_counts, sophon_event_rollups
            IN SHARE ROW EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        -- a long transaction writes, or a vacuum runs: the writers that
        -- queue behind the lock must not wait for it; the next fold will
        RETURN;
    END;

    WITH moved AS (
        DELETE FROM sophon_event_counts
         WHERE slot <> 0 AND hour < end_hour
        RETURNING hour, device_id, person_type, n
    ),
    merged AS (
        INSERT INTO sophon_event_counts AS c
               (hour, device_id, person_type, slot, n)
        SELECT hour, device_id, person_type, 0, sum(n)
          FROM moved
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (hour, device_id, person_type, slot)
        DO UPDATE SET n = c.n + excluded.n
    ),
    rolled AS (
        DELETE FROM sophon_event_rollups r
         USING sophon_events_grains() g
         WHERE r.grain = g.grain AND r.slot <> 0
           AND r.period < sophon_events_period(end_hour, g.hours)
        RETURNING r.grain, r.period, r.device_id, r.person_type, r.n
    ),
    rolled_merged AS (
        INSERT INTO sophon_event_rollups AS r
               (grain, period, device_id, person_type, slot, n)
        SELECT grain, period, device_id, person_type, 0, sum(n)
          FROM rolled
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (grain, period, device_id, person_type, slot)
        DO UPDATE SET n = r.n + excluded.n
    )
    -- (a data-modifying WITH runs to its end, read or not)
    SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM rolled)
      INTO folded;
END
$$;

-- the owner (or a superuser) folds; nobody else needs to
REVOKE EXECUTE ON FUNCTION sophon_events_fold() FROM PUBLIC;

-- no event may be written between the triggers and the first count
LOCK TABLE sophon_events IN SHARE ROW EXCLUSIVE MODE;

CREATE OR REPLACE TRIGGER sophon_events_count_insert
    AFTER INSERT ON sophon_events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_count_rows();

CREATE OR REPLACE TRIGGER sophon_events_count_update
    AFTER UPDATE ON sophon_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_count_rows();

CREATE OR REPLACE TRIGGER sophon_events_count_delete
    AFTER DELETE ON sophon_events REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_count_rows();

CREATE OR REPLACE TRIGGER sophon_events_count_truncate
    AFTER TRUNCATE ON sophon_events
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_count_truncate();

-- a table that had events before it had counts
INSERT INTO sophon_event_counts
SELECT sophon_events_hour(ts), coalesce(device_id, ''), person_type, count(*)
  FROM sophon_events
 WHERE NOT EXISTS (SELECT FROM sophon_event_totals)
   AND NOT EXISTS (SELECT FROM sophon_event_counts)
 GROUP BY 1, 2, 3;

INSERT INTO sophon_event_totals
SELECT device_id, person_type, sum(n)
  FROM sophon_event_counts
 WHERE NOT EXISTS (SELECT FROM sophon_event_totals)
 GROUP BY 1, 2;

-- and a table of an earlier release, without rollups or identities
INSERT INTO sophon_event_rollups
SELECT g.grain, sophon_events_period(c.hour, g.hours), c.device_id,
       c.person_type, sum(c.n)
  FROM sophon_event_counts c, sophon_events_grains() g
 WHERE NOT EXISTS (SELECT FROM sophon_event_rollups)
 GROUP BY 1, 2, 3, 4;

-- (the identities: a table with strangers alone is counted again, to
-- nothing)
INSERT INTO sophon_event_identities
SELECT identity_id, identity_name, count(*)
  FROM (SELECT coalesce(identity_id, '') AS identity_id,
               coalesce(identity_name, '') AS identity_name
          FROM sophon_events) e
 WHERE (identity_id <> '' OR identity_name <> '')
   AND NOT EXISTS (SELECT FROM sophon_event_identities)
 GROUP BY 1, 2;

COMMIT;


-- The number of events of the whole hours [first_hour, end_hour), on these
-- cameras and of these person types (NULL: all): the hours before the
-- first whole day and after the last one, then the days before the first
-- whole 32 days and after the last ones, then the 32 days between.  Every
-- edge is a floor or ceiling of a bigint quotient, in bigint: "/" and "%"
-- truncate towards zero, and no product here leaves [first_hour,
-- end_hour], so none overflows.
CREATE OR REPLACE FUNCTION sophon_events_hours_total(first_hour bigint,
    end_hour bigint, devices text[], types smallint[])
RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    first_day    bigint;
    end_day      bigint;
    first_block  bigint;
    end_block    bigint;
    total        bigint;
    part         bigint;
BEGIN
    first_day := first_hour / 24
                 + CASE WHEN first_hour % 24 > 0 THEN 1 ELSE 0 END;
    end_day := end_hour / 24 - CASE WHEN end_hour % 24 < 0 THEN 1 ELSE 0 END;

    IF first_day >= end_day THEN
        SELECT coalesce(sum(n), 0) INTO total
          FROM sophon_event_counts c
         WHERE c.hour >= first_hour AND c.hour < end_hour
           AND (devices IS NULL OR c.device_id = ANY (devices))
           AND (types IS NULL OR c.person_type = ANY (types));

        RETURN total;
    END IF;

    SELECT coalesce(sum(n), 0) INTO total
      FROM sophon_event_counts c
     WHERE ((c.hour >= first_hour AND c.hour < first_day * 24)
            OR (c.hour >= end_day * 24 AND c.hour < end_hour))
       AND (devices IS NULL OR c.device_id = ANY (devices))
       AND (types IS NULL OR c.person_type = ANY (types));

    first_block := first_day / 32
                   + CASE WHEN first_day % 32 > 0 THEN 1 ELSE 0 END;
    end_block := end_day / 32 - CASE WHEN end_day % 32 < 0 THEN 1 ELSE 0 END;

    IF first_block >= end_block THEN
        first_block := end_day / 32 + 1;
        end_block := first_block;
    END IF;

    -- the days outside the whole 32 days (all of them, when there are none)
    SELECT coalesce(sum(n), 0) INTO part
      FROM sophon_event_rollups r
     WHERE r.grain = 1
       AND ((r.period >= first_day
             AND r.period < least(first_block * 32, end_day))
            OR (r.period >= greatest(end_block * 32, first_day)
                AND r.period < end_day))
       AND (devices IS NULL OR r.device_id = ANY (devices))
       AND (types IS NULL OR r.person_type = ANY (types));

    total := total + part;

    SELECT coalesce(sum(n), 0) INTO part
      FROM sophon_event_rollups r
     WHERE r.grain = 2 AND r.period >= first_block AND r.period < end_block
       AND (devices IS NULL OR r.device_id = ANY (devices))
       AND (types IS NULL OR r.person_type = ANY (types));

    RETURN total + part;
END
$$;


-- The whole hours [first_hour, end_hour) of the window gte <= ts <= lte,
-- for sophon_events_total() and sophon_events_stats() (the reasoning is
-- sophon_events_total()'s comment): NULL for a missing bound; 1 and 0,
-- no hour, for a window beyond the hours whose start is an exact double.
CREATE OR REPLACE FUNCTION sophon_events_whole_hours(gte double precision,
    lte double precision, OUT first_hour bigint, OUT end_hour bigint)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    -- the hours whose start h * 3600 is an exact double: |h| <= 2^40
    edge_hour   constant double precision := 1099511627776;
    h           double precision;
BEGIN
    IF gte > edge_hour * 3600 OR lte < -edge_hour * 3600 THEN
        -- no whole hour of the exact range inside
        first_hour := 1;
        end_hour := 0;

    ELSE
        IF gte < -edge_hour * 3600 THEN
            first_hour := -edge_hour;
        ELSIF gte IS NOT NULL THEN
            -- (a bound under a second is in hour 0 or next to it: no
            -- division, which would fail on a subnormal's underflow)
            h := CASE WHEN abs(gte) < 1 THEN 0 ELSE ceil(gte / 3600) END;
            IF h * 3600 < gte THEN
                h := h + 1;
            ELSIF (h - 1) * 3600 >= gte THEN
                h := h - 1;
            END IF;
            first_hour := h;
        END IF;

        IF lte > edge_hour * 3600 THEN
            end_hour := edge_hour;
        ELSIF lte IS NOT NULL THEN
            h := CASE WHEN abs(lte) < 1 THEN 0 ELSE floor(lte / 3600) END;
            IF h * 3600 > lte THEN
                h := h - 1;
            ELSIF (h + 1) * 3600 <= lte THEN
                h := h + 1;
            END IF;
            end_hour := h;
        END IF;
    END IF;
END
$$;


-- The number of events with gte <= ts <= lte (either may be NULL: no
-- bound), on these cameras and of these person types (NULL: all).
--
-- The counts cover the whole hours [first_hour, end_hour); the events of
-- [gte, first_hour * 3600) and [end_hour * 3600, lte] are counted as rows.
-- That is exact only if the hours are chosen with exact arithmetic: a bound
-- turned into numeric keeps 15 significant digits, so 1607432400.000004
-- became the hour 1607432400 itself and the events of its first 4
-- microseconds were counted although they are before gte.  So every step
-- here is float8, like ts and the bounds themselves:
--
--  * for |h| <= 2^40, h * 3600 < 2^52 is exact in a double, and an event's
--    hour floor(floor(ts) / 3600) is >= h exactly when ts >= h * 3600
--    (floor(ts) / 3600 is off by less than half an ulp of h, 2^-13, and
--    an hour's last second is 1/3600 below the next hour);
--  * ceil(gte / 3600) and floor(lte / 3600) (0 for a bound under a
--    second, whose quotient could underflow) may be off by one where
--    gte / 3600 rounds across an integer; exact comparisons of h * 3600
--    with the bound put them right: first_hour is the least hour with
--    first_hour * 3600 >= gte, end_hour the greatest with
--    end_hour * 3600 <= lte;
--  * a bound beyond those hours (|bound| > 2^40 hours, 125 million years,
--    infinities, NaN, which float8 orders above everything) is not made an
--    hour: gte above them or lte below them leaves no whole hour to sum,
--    so the rows are counted; gte below them starts the sum at their
--    first hour, lte above them ends it at their last, and the rows
--    between the bound and that edge are counted.  The event's hour is
--    monotonic in ts, so the counts of the hours in between are exactly
--    the events between their edges.
--
-- A bound that is not on an hour costs one index scan of its partial
-- hour, as before; gte on an hour costs none.
CREATE OR REPLACE FUNCTION sophon_events_total(gte double precision,
    lte double precision, devices text[], types smallint[])
RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    first_hour  bigint;
    end_hour    bigint;
    total       bigint;
    edge        bigint;
BEGIN
    IF gte IS NULL AND lte IS NULL THEN
        SELECT coalesce(sum(n), 0) INTO total
          FROM sophon_event_totals t
         WHERE (devices IS NULL OR t.device_id = ANY (devices))
           AND (types IS NULL OR t.person_type = ANY (types));

        RETURN total;
    END IF;

    SELECT w.first_hour, w.end_hour INTO first_hour, end_hour
      FROM sophon_events_whole_hours(gte, lte) w;

    IF first_hour >= end_hour THEN
        -- no whole hour inside: count the events themselves (a missing
        -- bound is an infinite one: ts is finite, or its hour would not
        -- fit the bigint and its insert would have failed)
        SELECT count(*) INTO total
          FROM sophon_events e
         WHERE e.ts >= coalesce(gte, '-Infinity')
           AND e.ts <= coalesce(lte, 'Infinity')
           AND (devices IS NULL OR e.device_id = ANY (devices))
           AND (types IS NULL OR e.person_type = ANY (types));

        RETURN total;
    END IF;

    -- no bound: every bigint hour on that side (no stored hour is the
    -- greatest bigint: the greatest double below 2^63 is 2^63 - 1024)
    first_hour := coalesce(first_hour, -9223372036854775807 - 1);
    end_hour := coalesce(end_hour, 9223372036854775807);

    total := sophon_events_hours_total(first_hour, end_hour, devices, types);

    IF gte < first_hour::float8 * 3600 THEN
        SELECT count(*) INTO edge
          FROM sophon_events e
         WHERE e.ts >= gte AND e.ts < first_hour::float8 * 3600
           AND (devices IS NULL OR e.device_id = ANY (devices))
           AND (types IS NULL OR e.person_type = ANY (types));

        total := total + edge;
    END IF;

    IF lte IS NOT NULL THEN
        SELECT count(*) INTO edge
          FROM sophon_events e
         WHERE e.ts >= end_hour::float8 * 3600 AND e.ts <= lte
           AND (devices IS NULL OR e.device_id = ANY (devices))
           AND (types IS NULL OR e.person_type = ANY (types));

        total := total + edge;
    END IF;

    RETURN total;
END
$$;


-- The number of events per hour or per day (UTC), and per camera and
-- person type if asked, of the events sophon_events_total(gte, lte,
-- devices, types) counts: GET /SophonFace/api/events/stats, interval=hour
-- (bucket_hours 1) or day (24), group_by=streams (by_device),
-- userType (by_type).
--
--   SELECT * FROM sophon_events_stats($1, $2, 24, $3, $4, true, false);
--
-- One row per bucket and key that has events (n > 0; an empty bucket is
-- left out), ordered by start, then camera, then person type:
--
--  * start: the bucket's first second, Unix seconds.  An event's bucket is
--    the one of its hour, sophon_events_hour(ts), the hour the counts file
--    it under: sophon_events_period(hour, bucket_hours), floors of bigint
--    quotients, never a rounded float or numeric one.  Within 2^40 hours
--    of 1970, where the hour is exact, that is exactly
--    floor(ts / (3600 * bucket_hours)): days start at 00:00 UTC.  Any
--    bucket_hours >= 1 works; multiples of 24 read the days' roll-ups.
--  * device_id: the camera when by_device, else NULL.  An event without a
--    camera is counted under NULL, and so is one whose camera is '': the
--    counts keep both as '' and cannot tell them apart.  NULL sorts first,
--    where '' would (the camera's order is the "C" collation's, byte by
--    byte, whatever the database's).
--  * person_type: when by_type, else NULL.
--  * n: the events; the n of all the rows add up to sophon_events_total()
--    of the same window and filters, in the same snapshot.
--
-- A function scan returns its rows in this order; a caller that joins
-- the rows to something else says ORDER BY again.
--
-- The events are read where sophon_events_total() reads them, with its
-- float-exact choice of the whole hours [first_hour, end_hour) (see its
-- comment: bounds on an hour or a microsecond off it, beyond 2^40 hours,
-- infinite or NaN are all exact), each piece grouped by bucket instead of
-- summed:
--
--  * the whole days of those hours from sophon_event_rollups (grain 1),
--    when a bucket is whole days: a year is 366 rows per camera and type,
--    not 8,784;
--  * the other whole hours (the partial days at the ends, or all of them
--    for hourly buckets) from sophon_event_counts;
--  * the events of the two partial hours at the window's ends (or of the
--    whole window, when it has no whole hour) from sophon_events.
--
-- A counter is the sum of its key's slots, and deletes may leave a key's
-- slots summing to 0: every piece adds slots and events into the buckets'
-- sums, and a bucket is left out when its sum is 0, never because one of
-- its rows is.  (Not "> 0": counts are never negative, and if a wrong one
-- ever was it had better show.)
--
-- Extreme hours.  Hours run from -2^63 to 2^63 - 1024 (the last double
-- below 2^63): an event 3.3e22 s away is stored and counted.  Its bucket's
-- start in seconds does not fit a bigint, which holds +-9.2e18 s (292
-- billion years); no bucket within 9.2e18 s of 1970 is out of it.  Such a
-- bucket is neither clamped nor left out: the function raises
-- numeric_value_out_of_range (22003) naming the event, when a bucket it
-- would return holds one; a window that leaves such events out answers as
-- usual.  The check costs an index probe at each far end of the events'
-- times, and only for a window reaching past 9.2e18 s (or unbounded).
-- Every other product below stays within hours or buckets that exist, and
-- start = bucket * seconds would itself raise rather than wrap.
--
-- devices must not hold '': no filter value is empty (the module refuses
-- them), and '' is what the counts make of a missing camera, so counts
-- and rows would disagree on it; the function raises
-- invalid_parameter_value rather than answer something else than
-- count(*).  by_device and by_type NULL are false.
--
-- A year by day, on 200,000 events of 8 cameras and 4 person types over
-- 2020 (slots folded), took 5 ms, or 21 to 26 ms per camera and type
-- (11,712 rows, half of it their sort), where GROUP BY over the events
-- took 85 to 120 ms; a week by hour 3 ms.  (Two cores, no parallel
-- workers: the parallel plan the planner chose took 35 ms.  Unfolded,
-- every key in 8 slots: 45 ms.)
--
-- STABLE: every statement of the function reads the snapshot of the
-- caller's statement, so counts, roll-ups and events agree, however many
-- writers there are.
CREATE OR REPLACE FUNCTION sophon_events_stats(gte double precision,
    lte double precision, bucket_hours int, devices text[],
    types smallint[], by_device boolean, by_type boolean)
RETURNS TABLE (start bigint, device_id text, person_type smallint,
    n bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    -- the events beyond it may be in a bucket whose start in seconds is
    -- not a bigint; no event nearer is (see above)
    far_ts       constant double precision := 9.2e18;
    seconds      bigint;
    max_bucket   bigint;
    far_event    double precision;
    first_hour   bigint;
    end_hour     bigint;
    first_day    bigint;
    end_day      bigint;
    -- the pieces, each empty while NULL: whole hours [hours_lo, hours_hi)
    -- and [hours2_lo, hours2_hi), whole days [days_lo, days_hi), events
    -- [rows_lo, rows_hi) and [rows2_lo, rows2_hi]
    hours_lo     bigint;
    hours_hi     bigint;
    hours2_lo    bigint;
    hours2_hi    bigint;
    days_lo      bigint;
    days_hi      bigint;
    rows_lo      double precision;
    rows_hi      double precision;
    rows2_lo     double precision;
    rows2_hi     double precision;
BEGIN
    IF bucket_hours IS NULL OR bucket_hours < 1 THEN
        RAISE invalid_parameter_value USING
            MESSAGE = format('sophon_events_stats: bucket_hours is %s,'
                             ' not a number of hours >= 1',
                             coalesce(bucket_hours::text, 'NULL'));
    END IF;

    IF '' = ANY (devices) THEN
        RAISE invalid_parameter_value USING
            MESSAGE = 'sophon_events_stats: a camera in devices is empty';
    END IF;

    by_device := coalesce(by_device, false);
    by_type := coalesce(by_type, false);

    -- the buckets whose start, bucket * seconds, is a bigint: as many on
    -- either side, since seconds, a multiple of 3600, is no power of 2
    seconds := 3600::bigint * bucket_hours;
    max_bucket := 9223372036854775807 / seconds;

    IF coalesce(gte < -far_ts, true) OR coalesce(lte > far_ts, true) THEN
        SELECT e.ts INTO far_event
          FROM sophon_events e
         WHERE (e.ts < -far_ts OR e.ts > far_ts)
           AND e.ts >= coalesce(gte, '-Infinity')
           AND e.ts <= coalesce(lte, 'Infinity')
           AND (devices IS NULL OR e.device_id = ANY (devices))
           AND (types IS NULL OR e.person_type = ANY (types))
           AND sophon_events_period(sophon_events_hour(e.ts), bucket_hours)
               NOT BETWEEN -max_bucket AND max_bucket
         LIMIT 1;

        IF FOUND THEN
            RAISE numeric_value_out_of_range USING
                MESSAGE = format('sophon_events_stats: the event at %s s is'
                                 ' in a bucket whose start is beyond the'
                                 ' bigint seconds', far_event),
                HINT = 'A window that ends before it or starts after it'
                       ' leaves it out.';
        END IF;
    END IF;

    -- the whole hours: sophon_events_total()'s
    SELECT w.first_hour, w.end_hour INTO first_hour, end_hour
      FROM sophon_events_whole_hours(gte, lte) w;

    IF first_hour >= end_hour THEN
        -- no whole hour inside: the events themselves (a missing bound is
        -- an infinite one: ts is finite)
        rows2_lo := coalesce(gte, '-Infinity');
        rows2_hi := coalesce(lte, 'Infinity');

    ELSE
        -- no bound: every bigint hour on that side (no stored hour is the
        -- greatest bigint: the greatest double below 2^63 is 2^63 - 1024)
        first_hour := coalesce(first_hour, -9223372036854775807 - 1);
        end_hour := coalesce(end_hour, 9223372036854775807);

        -- the whole days inside, by bigint ceiling and floor ("/" and "%"
        -- truncate towards zero); their hours, first_day * 24 and
        -- end_day * 24, are within [first_hour, end_hour]
        first_day := first_hour / 24
                     + CASE WHEN first_hour % 24 > 0 THEN 1 ELSE 0 END;
        end_day := end_hour / 24
                   - CASE WHEN end_hour % 24 < 0 THEN 1 ELSE 0 END;

        IF bucket_hours % 24 = 0 AND first_day < end_day THEN
            hours_lo := first_hour;
            hours_hi := first_day * 24;
            days_lo := first_day;
            days_hi := end_day;
            hours2_lo := end_day * 24;
            hours2_hi := end_hour;
        ELSE
            hours_lo := first_hour;
            hours_hi := end_hour;
        END IF;

        IF gte < first_hour::float8 * 3600 THEN
            rows_lo := gte;
            rows_hi := first_hour::float8 * 3600;
        END IF;

        IF lte IS NOT NULL THEN
            rows2_lo := end_hour::float8 * 3600;
            rows2_hi := lte;
        END IF;
    END IF;

    RETURN QUERY
    SELECT b.bucket * seconds, nullif(b.device_id, ''), b.person_type,
           sum(b.n)::bigint
      FROM (SELECT sophon_events_period(r.period,
                                        greatest(bucket_hours / 24, 1))
                   AS bucket,
                   CASE WHEN by_device THEN r.device_id END AS device_id,
                   CASE WHEN by_type THEN r.person_type END AS person_type,
                   r.n
              FROM sophon_event_rollups r
             WHERE r.grain = 1 AND r.period >= days_lo AND r.period < days_hi
               AND (devices IS NULL OR r.device_id = ANY (devices))
               AND (types IS NULL OR r.person_type = ANY (types))
            UNION ALL
            SELECT sophon_events_period(c.hour, bucket_hours),
                   CASE WHEN by_device THEN c.device_id END,
                   CASE WHEN by_type THEN c.person_type END,
                   c.n
              FROM sophon_event_counts c
             WHERE ((c.hour >= hours_lo AND c.hour < hours_hi)
                    OR (c.hour >= hours2_lo AND c.hour < hours2_hi))
               AND (devices IS NULL OR c.device_id = ANY (devices))
               AND (types IS NULL OR c.person_type = ANY (types))
            UNION ALL
            SELECT sophon_events_period(sophon_events_hour(e.ts),
                                        bucket_hours),
                   CASE WHEN by_device THEN coalesce(e.device_id, '') END,
                   CASE WHEN by_type THEN e.person_type END,
                   1::bigint
              FROM sophon_events e
             WHERE ((e.ts >= rows_lo AND e.ts < rows_hi)
                    OR (e.ts >= rows2_lo AND e.ts <= rows2_hi))
               AND (devices IS NULL OR e.device_id = ANY (devices))
               AND (types IS NULL OR e.person_type = ANY (types))) b
     GROUP BY b.bucket, b.device_id, b.person_type
    HAVING sum(b.n) <> 0
     ORDER BY b.bucket, b.device_id COLLATE "C", b.person_type;
END
$$;

-- The live stream (GET /SophonFace/api/events/stream).
--
-- A stream must lose nothing and repeat nothing, even when transactions
-- commit in another order than the one they started in, so it cannot
-- follow a sequence: a sequence number is taken before commit, and a
-- reader that saw 7 may see 6 commit after it.  Instead every row keeps
-- the transaction that wrote it (xid, set by sophon_events_fields()), and a
-- stream keeps the snapshot of its last read: the next read sends the rows
-- whose transaction the new snapshot sees and the old one did not.  A
-- snapshot names every transaction it does not see, so a late commit is
-- found the next time, whatever its order.  The module's statement and
-- cursor are described in src/ngx_http_sophon_events_stream.c.
--
-- A deleted event reaches a stream as a row here, with the columns the
-- stream's filters read, written in the deleting transaction.  Rows older
-- than a stream's cursor are never read again: sophon_events_forget()
-- drops them after a while (schedule it, README).  TRUNCATE writes none.
BEGIN;

-- the definer function below resolves its names here, not in a schema its
-- caller puts first (see the counts' functions above)
DO $$ BEGIN PERFORM sophon_events_pin_search_path(); END $$;

CREATE TABLE IF NOT EXISTS sophon_event_deletions (
    xid             xid8 NOT NULL,
    id              text COLLATE "C" NOT NULL,
    ts              double precision NOT NULL,
    identity_id     text,
    identity_name   text,
    person_type     smallint NOT NULL,
    score           double precision,
    group_id        text,
    device_id       text,
    room            text,
    deleted_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS sophon_event_deletions_xid_id
    ON sophon_event_deletions (xid, id);
DROP INDEX IF EXISTS sophon_event_deletions_xid;
CREATE INDEX IF NOT EXISTS sophon_event_deletions_deleted_at
    ON sophon_event_deletions (deleted_at);

-- written as the owner of the counts, like them: the writer may delete
-- events, not make deletions up
CREATE OR REPLACE FUNCTION sophon_events_record_deletions()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
    -- sophon_events_expire() and the moves into a new month's partition
    IF current_setting('sophon_events.maintenance', true) = 'on' THEN
        RETURN NULL;
    END IF;

    INSERT INTO sophon_event_deletions (xid, id, ts, identity_id,
           identity_name, person_type, score, group_id, device_id, room)
    SELECT pg_current_xact_id(), id, ts, identity_id, identity_name,
           person_type, score, group_id, device_id, room
      FROM old_rows;

    RETURN NULL;
END
$$;

-- One notification per writing statement, a few bytes, never the
-- document: it only wakes the module's listening connections, which read
-- the rows themselves.  PostgreSQL delivers it at commit, and folds the
-- identical ones of a transaction into one.
CREATE OR REPLACE FUNCTION sophon_events_notify()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sophon_events', '');
    RETURN NULL;
END
$$;

-- Locks the events of these ids in id order, for the module's DELETE of
-- them (src/ngx_http_sophon_events_delete.c): two DELETEs of overlapping
-- lists then wait for each other instead of deadlocking, as they could
-- when each deletes in its plan's order (a partition after another, a
-- hash of its list).  A definer function because FOR UPDATE needs the
-- UPDATE privilege, which the deleter's role has not and must not have;
-- it only locks, and only sophon_deleter may call it (sql/roles.sql).
CREATE OR REPLACE FUNCTION sophon_events_lock(ids text[])
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM FROM sophon_events e
      WHERE e.id = ANY (ids COLLATE "C")
      ORDER BY e.id
        FOR UPDATE;

    RETURN true;
END
$$;

DO $$
DECLARE
    owner  text := (SELECT relowner::regrole::text FROM pg_class
                     WHERE oid = 'sophon_event_counts'::regclass);
BEGIN
    EXECUTE format('ALTER TABLE sophon_event_deletions OWNER TO %s', owner);
    EXECUTE format('ALTER FUNCTION sophon_events_record_deletions()'
                   ' OWNER TO %s', owner);
    EXECUTE format('ALTER FUNCTION sophon_events_lock(text[]) OWNER TO %s',
                   owner);
END
$$;

REVOKE EXECUTE ON FUNCTION sophon_events_record_deletions(),
    sophon_events_lock(text[]) FROM PUBLIC;

CREATE OR REPLACE TRIGGER sophon_events_record_deletions
    AFTER DELETE ON sophon_events REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_record_deletions();

CREATE OR REPLACE TRIGGER sophon_events_notify
    AFTER INSERT OR UPDATE OR DELETE ON sophon_events
    FOR EACH STATEMENT EXECUTE FUNCTION sophon_events_notify();

COMMIT;

-- Drops the deletions older than "keep"; a stream resumed from a cursor
-- older than that would miss them.  Returns how many.
CREATE OR REPLACE FUNCTION sophon_events_forget(keep interval
    DEFAULT '7 days', OUT forgotten bigint)
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM sophon_event_deletions
                   WHERE deleted_at < now() - keep RETURNING 1)
    SELECT count(*) FROM gone;
$$;

REVOKE EXECUTE ON FUNCTION sophon_events_forget(interval) FROM PUBLIC;

-- An earlier release rounded the hours of events past 2^52 s (143 million
-- years from 1970) in float8 (sophon_events_hour()): if there are any, the
-- counts are taken again, and theirs move to their exact hours.
DO $$
BEGIN
    IF EXISTS (SELECT FROM sophon_events
                WHERE ts >= 4503599627370496 OR ts <= -4503599627370496)
    THEN
        PERFORM sophon_events_recount();
    END IF;
END
$$;


-- Partitions and retention (README, "Partitions and retention").
--
-- sophon_events is partitioned by month of the documents' "timestamp"
-- (the key sophon_events_doc_ts(doc), equal to ts): sophon_events_YYYY_MM
-- holds [its month's first second, the next one's) in UTC, one contiguous
-- run of months, and sophon_events_other (the default partition) what
-- falls outside them (events older than the first month, far in the
-- future).  Months, not days: the module's statements read every
-- partition (an expression key gives no pruning on ts), so their number
-- is what a query pays for (README).
--
-- _id: each partition has a unique index on id, and the insert trigger
-- (sophon_events_fields) refuses an _id that another partition holds.
--
-- A new, empty table is partitioned by this script; an existing one by
--   SELECT * FROM sophon_events_partition();
-- and events older than a time are removed by
--   SELECT * FROM sophon_events_expire(before);
BEGIN;

DO $$ BEGIN PERFORM sophon_events_pin_search_path(); END $$;

-- (a quoted body: one of SQL's own would depend on the table, and the
-- table could not be swapped for a partitioned one)
CREATE OR REPLACE FUNCTION sophon_events_partitioned()
RETURNS boolean LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT relkind = 'p' FROM pg_class
     WHERE oid = 'sophon_events'::regclass
$$;

-- a month's first second in UTC, as the key counts it
CREATE OR REPLACE FUNCTION sophon_events_month_start(month date)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN extract(epoch FROM date_trunc('month', month::timestamp)
                          AT TIME ZONE 'UTC');

-- the months of sophon_events' partitions, oldest first
CREATE OR REPLACE FUNCTION sophon_events_months(OUT month date,
    OUT partition regclass)
RETURNS SETOF record LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$
    SELECT to_date(substr(c.relname, 15), 'YYYY_MM'), c.oid::regclass
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'sophon_events'::regclass
       AND c.relname ~ '^sophon_events_[0-9]{4}_[0-9]{2}$'
     ORDER BY 1
$$;

-- One month's partition of "parent", with its unique index on id.  Events
-- already in the default partition for that month move into it (deleted
-- and inserted again, in this transaction; a stream sees them again).
CREATE OR REPLACE FUNCTION sophon_events_add_month(parent regclass,
    month date)
RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    lo     constant double precision := sophon_events_month_start(month);
    hi     constant double precision
           := sophon_events_month_start((month + interval '1 month')::date);
    name   constant text := 'sophon_events_' || to_char(month, 'YYYY_MM');
    quiet  constant text := current_setting('sophon_events.maintenance',
                                            true);
    moved  json[];
BEGIN
    -- a move, not deletions a stream tells of
    PERFORM set_config('sophon_events.maintenance', 'on', true);

    EXECUTE format('WITH m AS (DELETE FROM %s'
                   ' WHERE sophon_events_doc_ts(doc) >= $1'
                   ' AND sophon_events_doc_ts(doc) < $2 RETURNING doc)'
                   ' SELECT array_agg(doc) FROM m', parent)
       INTO moved USING lo, hi;

    EXECUTE format('CREATE TABLE %I PARTITION OF %s'
                   ' FOR VALUES FROM (%s) TO (%s)', name, parent, lo, hi);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (id)',
                   name, name || '_id');

    -- the parent's owner's, whoever makes it: the owner expires it
    EXECUTE format('ALTER TABLE %I OWNER TO %s', name,
                   (SELECT relowner::regrole FROM pg_class
                     WHERE oid = parent));

    IF moved IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s (doc) SELECT unnest($1)', parent)
          USING moved;
    END IF;

    PERFORM set_config('sophon_events.maintenance', coalesce(quiet, ''),
                       true);
END
$$;

-- Makes the months from first_month to last_month exist, and every month
-- between them and the ones that do: the run stays contiguous, which
-- sophon_events_expire() counts on.  Returns how many it made.
CREATE OR REPLACE FUNCTION sophon_events_add_months(first_month date,
    last_month date, OUT added int)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    m     date;
    lo    date;
    hi    date;
BEGIN
    added := 0;

    IF NOT sophon_events_partitioned() THEN
        RETURN;
    END IF;

    SELECT least(min(month), date_trunc('month', first_month)::date),
           greatest(max(month), date_trunc('month', last_month)::date)
      INTO lo, hi
      FROM sophon_events_months();

    m := lo;

    WHILE m <= hi LOOP
        IF to_regclass('sophon_events_' || to_char(m, 'YYYY_MM')) IS NULL
        THEN
            PERFORM sophon_events_add_month('sophon_events', m);
            added := added + 1;
        END IF;

        m := (m + interval '1 month')::date;
    END LOOP;
END
$$;

-- Turns the unpartitioned sophon_events into a partitioned one with the
-- same columns, rows, indexes, triggers, owner and privileges: months
-- from the month of its oldest event (at most "history" months back) to
-- "ahead" months from now, and the default partition.  One transaction:
-- writers wait from the start (SHARE ROW EXCLUSIVE: they would write
-- into the table being copied), readers only for the swap at the end, a
-- rename.  The counts stay as they are: they count the same events.
CREATE OR REPLACE FUNCTION sophon_events_partition(ahead int DEFAULT 1,
    history int DEFAULT 12, OUT events bigint, OUT partitions int)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    this_month  constant date := date_trunc('month', now()
                                             AT TIME ZONE 'UTC')::date;
    first_month date;
    r           record;
    def         text;
BEGIN
    IF sophon_events_partitioned() THEN
        RAISE NOTICE 'sophon_events is partitioned already';
        RETURN;
    END IF;

    LOCK TABLE sophon_events IN SHARE ROW EXCLUSIVE MODE;

    CREATE TABLE sophon_events_partitioned (LIKE sophon_events
        INCLUDING CONSTRAINTS INCLUDING COMPRESSION INCLUDING STORAGE)
        PARTITION BY RANGE (sophon_events_doc_ts(doc));

    CREATE TABLE sophon_events_other PARTITION OF sophon_events_partitioned
        DEFAULT;
    ALTER TABLE sophon_events_other
        ADD CONSTRAINT sophon_events_other_id UNIQUE (id);

    -- the oldest event's month, if it is a month of the last "history"
    SELECT date_trunc('month', to_timestamp(min(ts)) AT TIME ZONE 'UTC')
           ::date
      INTO first_month
      FROM sophon_events
     WHERE ts >= sophon_events_month_start(
                     (this_month - history * interval '1 month')::date);

    first_month := least(coalesce(first_month, this_month), this_month);

    WHILE first_month <= this_month + ahead * interval '1 month' LOOP
        PERFORM sophon_events_add_month('sophon_events_partitioned',
                                        first_month);
        first_month := (first_month + interval '1 month')::date;
    END LOOP;

    -- the rows, before the indexes and without the triggers: the counts
    -- count them already
    INSERT INTO sophon_events_partitioned SELECT * FROM sophon_events;
    GET DIAGNOSTICS events = ROW_COUNT;

    -- the indexes, by their names (the old ones are renamed first), but
    -- the unique one on id: each partition has its own
    FOR r IN SELECT i.indexrelid::regclass AS idx, c.relname
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = 'sophon_events'::regclass
                AND NOT i.indisunique
    LOOP
        def := regexp_replace(pg_get_indexdef(r.idx), ' ON \S+ USING ',
                              ' ON sophon_events_partitioned USING ');
        EXECUTE format('ALTER INDEX %s RENAME TO %I', r.idx,
                       'sophon_events_old_' || r.idx::oid);
        EXECUTE def;
    END LOOP;

    -- the triggers move
    FOR r IN SELECT t.oid, t.tgname FROM pg_trigger t
              WHERE t.tgrelid = 'sophon_events'::regclass
                AND NOT t.tgisinternal
    LOOP
        def := regexp_replace(pg_get_triggerdef(r.oid), ' ON \S+ ',
                              ' ON sophon_events_partitioned ');
        EXECUTE format('DROP TRIGGER %I ON sophon_events', r.tgname);
        EXECUTE def;
    END LOOP;

    -- the owner and the privileges
    EXECUTE format('ALTER TABLE sophon_events_partitioned OWNER TO %s',
                   (SELECT relowner::regrole FROM pg_class
                     WHERE oid = 'sophon_events'::regclass));

    FOR r IN SELECT a.grantee, a.privilege_type, a.is_grantable
               FROM pg_class c, aclexplode(c.relacl) a
              WHERE c.oid = 'sophon_events'::regclass
                AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON sophon_events_partitioned TO %s%s',
                       r.privilege_type,
                       CASE r.grantee WHEN 0 THEN 'PUBLIC'
                            ELSE r.grantee::regrole::text END,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION'
                            ELSE '' END);
    END LOOP;

    -- the swap: readers wait from here to the commit, a few catalog rows
    LOCK TABLE sophon_events IN ACCESS EXCLUSIVE MODE;
    DROP TABLE sophon_events;
    ALTER TABLE sophon_events_partitioned RENAME TO sophon_events;

    SELECT count(*) INTO partitions FROM pg_inherits
     WHERE inhparent = 'sophon_events'::regclass;
END
$$;

-- Removes every event with ts < before, in one transaction: readers see
-- all of them or none, with counts that agree.
--
--  * the months wholly before "before" are detached and dropped, O(1)
--    whatever their size; the counts of their hours come off the totals
--    and roll-ups and their hours' and days' counters go (their events
--    are exactly those hours': months start on an hour, and ts is the
--    key), the identities' counters lose their events (one pass over the
--    month's rows: the only step that grows with them);
--  * the events of the month that "before" falls in, and of the default
--    partition, are deleted as rows, their counts by the triggers;
--  * the months ahead are made, "ahead" of them (the timer keeps them).
--
-- Expired events are not streamed as deletions.  Writers of the dropped
-- months wait for the commit; readers wait only while the months are
-- detached, at the end (lock_timeout: if a long statement holds the table,
-- the whole expiry fails and nothing changes; run it again).  A table
-- that is not partitioned has its events deleted as rows.  In READ
-- COMMITTED only.  Returns the partitions dropped and the events gone.
CREATE OR REPLACE FUNCTION sophon_events_expire(before double precision,
    ahead int DEFAULT 1, OUT partitions int, OUT events bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT SET lock_timeout = '10s'
AS $$
DECLARE
    this_month  constant date := date_trunc('month', now()
                                             AT TIME ZONE 'UTC')::date;
    first_lo    double precision;
    cut         double precision;
    dropped     regclass[];
    n           bigint;
BEGIN
    PERFORM sophon_events_read_committed('sophon_events_expire()');

    IF before IS NULL OR before IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE invalid_parameter_value USING
            MESSAGE = 'sophon_events_expire: before is not a time';
    END IF;

    partitions := 0;
    events := 0;

    -- writers wait from here to the commit: an event written meanwhile
    -- would be counted by the counters this takes off, or wait for one of
    -- them while this waits for its table (a deadlock); readers go on
    LOCK TABLE sophon_events IN SHARE ROW EXCLUSIVE MODE;

    -- expired events are not deletions a stream tells of
    PERFORM set_config('sophon_events.maintenance', 'on', true);

    IF NOT sophon_events_partitioned() THEN
        DELETE FROM sophon_events WHERE ts < before;
        GET DIAGNOSTICS events = ROW_COUNT;
        RETURN;
    END IF;

    -- the months wholly before "before", and where the kept ones start
    SELECT array_agg(m.partition ORDER BY m.month),
           max(sophon_events_month_start(
                   (m.month + interval '1 month')::date))
      INTO dropped, cut
      FROM sophon_events_months() m
     WHERE sophon_events_month_start((m.month + interval '1 month')::date)
           <= before;

    SELECT coalesce(sophon_events_month_start(min(month)), 'Infinity')
      INTO first_lo
      FROM sophon_events_months();

    -- the rows: of the default partition before the first month, then of
    -- the month "before" is in and of the default partition after the
    -- dropped months (the key's bounds prune the others)
    DELETE FROM sophon_events
     WHERE ts < before AND sophon_events_doc_ts(doc) < first_lo;
    GET DIAGNOSTICS n = ROW_COUNT;
    events := events + n;

    DELETE FROM sophon_events
     WHERE ts < before
       AND sophon_events_doc_ts(doc) >= coalesce(cut, first_lo);
    GET DIAGNOSTICS n = ROW_COUNT;
    events := events + n;

    IF dropped IS NOT NULL THEN
        events := events
                  + sophon_events_expire_months(dropped,
                                                sophon_events_hour(cut));
        partitions := cardinality(dropped);
    END IF;

    PERFORM sophon_events_add_months(this_month,
                                     (this_month + ahead * interval '1 month')
                                     ::date);
END
$$;

-- The months "dropped", the oldest of the table, go, and their counts come
-- off: no event is left before cut_hour (the hour the kept months start
-- at) but theirs, whose counts are exactly the counters of those hours
-- (months start on an hour, and ts is the key).  Returns their events.
CREATE OR REPLACE FUNCTION sophon_events_expire_months(dropped regclass[],
    cut_hour bigint)
RETURNS bigint LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    part        regclass;
    gone        bigint;
    rows        text;
    cut_block   constant bigint := sophon_events_period(cut_hour, 768);
BEGIN
    -- no writer adds to them meanwhile
    FOREACH part IN ARRAY dropped LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', part);
    END LOOP;

    -- the identities lose the months' events: one pass over their rows
    SELECT string_agg(format('SELECT identity_id, identity_name FROM %s', p),
                      ' UNION ALL ')
      INTO rows
      FROM unnest(dropped) p;

    EXECUTE format(
        'INSERT INTO sophon_event_identities AS i'
        ' SELECT identity_id, identity_name, -count(*)'
        '   FROM (SELECT coalesce(identity_id, '''') AS identity_id,'
        '                coalesce(identity_name, '''') AS identity_name'
        '           FROM (%s) r) e'
        '  WHERE identity_id <> '''' OR identity_name <> '''''
        '  GROUP BY 1, 2 ORDER BY 1, 2'
        ' ON CONFLICT (identity_id, md5(identity_name))'
        ' DO UPDATE SET n = i.n + excluded.n', rows);

    -- the totals lose the hours' counts, and so does the 32 days that
    -- straddles the cut; the hours, the days and the 32 days before it go
    SELECT coalesce(sum(n), 0) INTO gone
      FROM sophon_event_counts WHERE hour < cut_hour;

    INSERT INTO sophon_event_totals AS t (device_id, person_type, slot, n)
    SELECT device_id, person_type, 0, -sum(n)
      FROM sophon_event_counts
     WHERE hour < cut_hour
     GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
    ON CONFLICT (device_id, person_type, slot)
    DO UPDATE SET n = t.n + excluded.n;

    INSERT INTO sophon_event_rollups AS r
           (grain, period, device_id, person_type, slot, n)
    SELECT 2, cut_block, device_id, person_type, 0, -sum(n)
      FROM sophon_event_counts
     WHERE hour >= cut_block * 768 AND hour < cut_hour
     GROUP BY 3, 4 HAVING sum(n) <> 0 ORDER BY 3, 4
    ON CONFLICT (grain, period, device_id, person_type, slot)
    DO UPDATE SET n = r.n + excluded.n;

    DELETE FROM sophon_event_rollups
     WHERE (grain = 1 AND period < sophon_events_period(cut_hour, 24))
        OR (grain = 2 AND period < cut_block);

    DELETE FROM sophon_event_counts WHERE hour < cut_hour;

    -- last, for the shortest lock: readers wait from here to the commit
    FOREACH part IN ARRAY dropped LOOP
        EXECUTE format('ALTER TABLE sophon_events DETACH PARTITION %s',
                       part);
        EXECUTE format('DROP TABLE %s', part);
    END LOOP;

    RETURN gone;
END
$$;

-- the owner (or a superuser) partitions and expires; nobody else may
REVOKE EXECUTE ON FUNCTION sophon_events_partition(int, int),
    sophon_events_expire(double precision, int),
    sophon_events_expire_months(regclass[], bigint),
    sophon_events_add_month(regclass, date),
    sophon_events_add_months(date, date) FROM PUBLIC;

-- a new, empty table is partitioned now; a partitioned one has its months
-- ahead
DO $$
BEGIN
    IF NOT sophon_events_partitioned()
       AND NOT EXISTS (SELECT FROM sophon_events)
    THEN
        PERFORM sophon_events_partition();
    END IF;

    PERFORM sophon_events_add_months(
        date_trunc('month', now() AT TIME ZONE 'UTC')::date,
        (date_trunc('month', now() AT TIME ZONE 'UTC')
         + interval '1 month')::date);
END
$$;

COMMIT;
