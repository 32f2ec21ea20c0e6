#!/usr/bin/env bash
# bench/storage.sh [EVENTS]: what an event costs to store, in bytes and in
# insert time, in the previous release's table (doc jsonb, the other
# columns GENERATED from it: sql/schema.sql of git revision REV) and in
# this one (doc json, the columns filled by a trigger), measured back to
# back on the same generated events.
#
#   bench/storage.sh            20,000 events
#   REV=f448242 bench/storage.sh 50000
#
# Each layout is the whole schema script, counters and indexes included,
# in a schema of its own on a throwaway cluster (util/sophon-pg,
# build/storage-pg, 127.0.0.1:25470).  Measured per layout:
#   bytes/event     pg_total_relation_size(sophon_events) / EVENTS: heap,
#                   TOAST and every index
#   doc bytes       avg(pg_column_size(doc)): the document as stored
#   bulk load       INSERT INTO sophon_events (doc) SELECT line FROM the
#                   staging table, all EVENTS in one statement
#   1-event tps     pgbench -c 1 -T SECONDS_EACH (10): BEGIN, one of
#                   EVENTS more events inserted by a statement of its own,
#                   ROLLBACK (so the table does not grow while it is
#                   measured)
# The cluster is destroyed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."

EVENTS=${1:-20000}
REV=${REV:-f448242}
SECONDS_EACH=${SECONDS_EACH:-10}
PGDIR=$PWD/build/storage-pg
PORT=25470

[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || { echo "EVENTS: a positive integer" >&2; exit 2; }

trap 'util/sophon-pg destroy "$PGDIR" >/dev/null 2>&1 || true' EXIT

conn=$(util/sophon-pg start "$PGDIR" "$PORT" 2>/dev/null | tail -n 1)
events=$PWD/build/storage-events.jsonl
work=$(mktemp -d)

q() { PGOPTIONS="-c client_min_messages=warning" psql "$conn" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# EVENTS to load, then as many more for the one-event inserts
util/sophon-events-gen $((EVENTS * 2)) 1 > "$events"

q -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" \
  -c "CREATE UNLOGGED TABLE stage (n int PRIMARY KEY, line text NOT NULL)"
perl -pe 's/\\/\\\\/g; s/^/$.\t/' "$events" |
    q -c "COPY stage FROM STDIN"
q -c "VACUUM ANALYZE stage"

git show "$REV:sql/schema.sql" > "$work/old.sql"
cp sql/schema.sql "$work/new.sql"

printf '| layout | bytes/event | doc bytes/event | bulk load s | events/s | 1-event inserts/s |\n'
printf '|---|---:|---:|---:|---:|---:|\n'

for layout in old new; do
    # the type of doc in that layout
    type=jsonb
    [ $layout = new ] && type=json

    cat > "$work/insert.sql" <<EOF
\\set k random($((EVENTS + 1)), $((EVENTS * 2)))
BEGIN;
INSERT INTO sophon_events (doc)
    SELECT line::$type FROM public.stage WHERE n = :k;
ROLLBACK;
EOF

    q -c "DROP SCHEMA IF EXISTS $layout CASCADE" -c "CREATE SCHEMA $layout"
    { echo "SET search_path = $layout, public;"; cat "$work/$layout.sql"; } |
        q -f - >/dev/null

    t0=$(date +%s.%N)
    q -c "SET search_path = $layout, public" \
      -c "INSERT INTO sophon_events (doc) SELECT line::$type FROM public.stage WHERE n <= $EVENTS"
    t1=$(date +%s.%N)
    q -c "CHECKPOINT" -c "VACUUM ANALYZE $layout.sophon_events"

    read -r total doc <<<"$(q -F ' ' -c "SELECT
        pg_total_relation_size('$layout.sophon_events') / $EVENTS,
        round(avg(pg_column_size(doc))) FROM $layout.sophon_events")"

    tps=$(PGOPTIONS="-c search_path=$layout,public" \
          pgbench -n -c 1 -T "$SECONDS_EACH" -f "$work/insert.sql" "$conn" \
              2>&1 | tee "$work/pgbench.$layout.out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')

    secs=$(echo "$t1 - $t0" | bc -l)
    printf '| %s | %d | %d | %.2f | %.0f | %.0f |\n' "$layout" "$total" "$doc" \
        "$secs" "$(echo "$EVENTS / $secs" | bc -l)" "$tps"
done

cat "$work"/pgbench.*.out | grep -i error || true
rm -rf "$work"
