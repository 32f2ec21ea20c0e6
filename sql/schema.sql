-- The events table of ngx_http_sophon_events_module.
--
--   psql -v ON_ERROR_STOP=1 -d DB -f sql/schema.sql
--
-- Safe to run again on a live database: every statement is IF NOT EXISTS.
--
-- Each event is the JSONB document the box produced, in "doc": the source of
-- truth, returned to clients as it is.  Every other column is GENERATED from
-- "doc" and STORED, so writers insert the document alone:
--
--   INSERT INTO sophon_events (doc) VALUES ($1::jsonb);
--
-- and the API's filters read plain indexed columns instead of digging through
-- JSON at query time.  A document without a string "_id" or a numeric
-- "timestamp", or whose "common.person_type" or "common.score" is not a
-- number, is refused by the insert itself.

SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS sophon_events (
    -- lz4: pglz spent 60% of a bulk load compressing 10 KB feature-heavy
    -- documents for no saving at all (801 MB either way)
    doc             jsonb COMPRESSION lz4 NOT NULL,

    -- "_id", unique; compared byte by byte so that the newest-first order
    -- ("timestamp" desc, "_id" desc) does not depend on the locale.
    id              text COLLATE "C" NOT NULL
                    GENERATED ALWAYS AS (doc ->> '_id') STORED,

    -- "timestamp", Unix seconds with fractions.
    ts              double precision NOT NULL
                    GENERATED ALWAYS AS
                    ((doc ->> 'timestamp')::double precision) STORED,

    identity_id     text
                    GENERATED ALWAYS AS
                    (doc #>> '{common,identity_id}') STORED,

    identity_name   text
                    GENERATED ALWAYS AS
                    (doc #>> '{common,identity_name}') STORED,

    -- An event without "person_type" counts as an employee (1).
    person_type     smallint NOT NULL
                    GENERATED ALWAYS AS
                    (coalesce((doc #>> '{common,person_type}')
                              ::numeric::smallint, 1)) STORED,

    score           double precision
                    GENERATED ALWAYS AS
                    ((doc #>> '{common,score}')::double precision) STORED,

    group_id        text
                    GENERATED ALWAYS AS
                    (doc #>> '{common,group_id}') STORED,

    device_id       text
                    GENERATED ALWAYS AS
                    (doc #>> '{common,ep_info,device_id}') STORED,

    -- Firmware keeps the room in identity_info.ext_info, some older builds
    -- in identity_info itself; strangers ({} identity_info) have none.
    room            text
                    GENERATED ALWAYS AS
                    (coalesce(doc #>> '{common,identity_info,ext_info,room}',
                              doc #>> '{common,identity_info,room}')) STORED,

    CONSTRAINT sophon_events_pkey PRIMARY KEY (id),
    CONSTRAINT sophon_events_doc_is_object
        CHECK (jsonb_typeof(doc) = 'object')
);

-- for tables made before the column said so
ALTER TABLE sophon_events ALTER COLUMN doc SET COMPRESSION lz4;

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
