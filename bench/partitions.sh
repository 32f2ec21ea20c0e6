#!/usr/bin/env bash
# bench/partitions.sh [EVENTS]: what the monthly partitions cost a writer.
# The same EVENTS generated documents (default 2000, about 12 kB each, with
# their timestamps moved to yesterday) are inserted one statement each into
# a partitioned sophon_events and into an unpartitioned one (a table that
# had an event before sql/schema.sql ran stays unpartitioned), in one
# transaction each (the server's work per insert, not the commit's), twice
# in turns: unpartitioned, partitioned, unpartitioned, partitioned.  Prints
# ms per insert and the ratio.  A throwaway cluster on 127.0.0.1:25470 in
# build/partitions-pg, destroyed at the end.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "$0")/.." && pwd -P)
cd "$ROOT"

EVENTS=${1:-2000}
PGDIR=$ROOT/build/partitions-pg
DOCS=$ROOT/build/partitions-docs.jsonl

trap 'util/sophon-pg destroy "$PGDIR" >/dev/null 2>&1 || true; rm -f "$DOCS"' EXIT

conninfo=$(util/sophon-pg start "$PGDIR" 25470 | tail -n 1)
base=${conninfo/dbname=sophon/dbname=postgres}

util/sophon-events-gen "$EVENTS" 7 > "$DOCS"

for db in unpartitioned partitioned; do
    psql "$base" -X -q -c "CREATE DATABASE $db"
done

# the unpartitioned one: a table with an event before the schema runs
psql "${conninfo/dbname=sophon/dbname=unpartitioned}" -X -q \
     -f t/fixtures/schema-previous.sql \
     -c "INSERT INTO sophon_events (doc) VALUES
         ('{\"_id\":\"seed\",\"timestamp\":1.5,\"common\":{}}')"

for db in unpartitioned partitioned; do
    psql "${conninfo/dbname=sophon/dbname=$db}" -X -q -v ON_ERROR_STOP=1 \
         -f sql/schema.sql >/dev/null
done

round() {   # round DB: ms per insert
    psql "${conninfo/dbname=sophon/dbname=$1}" -X -q -A -t -v ON_ERROR_STOP=1 <<EOF
CREATE TEMP TABLE raw (doc json);
\copy raw FROM '$DOCS' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')
CREATE TEMP TABLE docs AS
SELECT regexp_replace(doc::text, '"timestamp":[-0-9.eE+]+',
                      '"timestamp":' || (extract(epoch FROM now()) - 86400))
       ::json AS doc
  FROM raw;
TRUNCATE sophon_events;
CREATE TEMP TABLE took (ms float8);
DO \$\$
DECLARE
    d   record;
    t0  timestamptz := clock_timestamp();
BEGIN
    FOR d IN SELECT doc FROM docs LOOP
        INSERT INTO sophon_events (doc) VALUES (d.doc);
    END LOOP;
    INSERT INTO took
    SELECT extract(epoch FROM clock_timestamp() - t0) * 1000 / count(*)
      FROM docs;
END
\$\$;
SELECT round(ms::numeric, 3) FROM took;
EOF
}

u1=$(round unpartitioned); p1=$(round partitioned)
u2=$(round unpartitioned); p2=$(round partitioned)

awk -v u1="$u1" -v u2="$u2" -v p1="$p1" -v p2="$p2" -v n="$EVENTS" 'BEGIN {
    u = (u1 + u2) / 2; p = (p1 + p2) / 2
    printf "%d single-row inserts of generated documents, ms per insert:\n", n
    printf "  unpartitioned  %.3f  %.3f\n", u1, u2
    printf "  partitioned    %.3f  %.3f\n", p1, p2
    printf "  partitioned inserts per unpartitioned one: %.2f\n", u / p
}'
