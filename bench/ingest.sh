#!/usr/bin/env bash
# bench/ingest.sh: how fast concurrent writers insert events, on one camera
# and on as many cameras as writers.  Run with --help for the details.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." &&
       pwd -P)
PROG=bench/ingest.sh

PG_DIR=${PG_DIR:-$ROOT/build/slots-pg}
PG_PORT=${PG_PORT:-25860}
DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-16}
JOBS=${JOBS:-2}
PRELOAD=${PRELOAD:-50000}
ROUNDS=${ROUNDS:-2}
KEEP=${KEEP:-1}
MODES=${MODES:-durable fast}
WORK=$ROOT/build/ingest-work

usage() {
    cat <<EOF
Usage: $PROG [--single]

Starts (or reuses) a throwaway PostgreSQL 15 cluster (util/sophon-pg,
$PG_DIR, 127.0.0.1:$PG_PORT), runs sql/schema.sql and sql/roles.sql of
this checkout on it, preloads PRELOAD generated events once
(util/sophon-events-gen PRELOAD 7 | util/sophon-events-load), deletes the
events of earlier runs of this script, and then measures, as sophon_writer,
with pgbench -n -M prepared -c CLIENTS -j JOBS -T DURATION:

  1 cam,   1/stmt    every client on one camera, one event per INSERT
  N cams,  1/stmt    client i on camera i
  1 cam, 100/stmt    one camera, INSERT ... SELECT of 100 events
  N cams, 100/stmt   client i on camera i, 100 events per INSERT

each ROUNDS times, the second round in the reverse order (a machine that
gets busier or quieter biases no case), and prints events a second and the
ratio one camera / N cameras.  Every event is a generated document (one
line of util/sophon-events-gen 1 3, 12 KB with its 512-float feature)
whose _id (a UUID), timestamp (in the current hour: every writer on the
same hour counter, the hot case), camera and person (one of 1,000
identity_ids: one person is not in front of every camera at once) vary;
it goes to the server as text and is checked there as json, as the
pipeline's inserts are.

All of it twice (MODES="durable fast"): with durable commits (fsync=on,
synchronous_commit=on, as a real server runs, set for the run with ALTER
SYSTEM and reset at the end), and with the throwaway cluster's own
fsync=off, synchronous_commit=off.  A durable commit waits for its WAL
flush, and a writer holds the counter rows it updated until then.  A mode
ending in "-quiet" (MODES="durable durable-quiet") runs without the
NOTIFY of every writing statement (sophon_events_notify, the live
stream's wake-up), disabled for its runs: what that costs the writers.

--single also measures one client alone (pgbench -c 1) for both statement
sizes: what a lone writer pays per event.

Environment: PG_DIR, PG_PORT, DURATION=$DURATION, CLIENTS=$CLIENTS,
JOBS=$JOBS, PRELOAD=$PRELOAD, ROUNDS=$ROUNDS, MODES, KEEP=1 (0: stop the
cluster at the end; its data stays in PG_DIR).  Raw pgbench outputs are in
$WORK.
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

SINGLE=0
case ${1:-} in
    -h|--help|help) usage; exit 0 ;;
    --single) SINGLE=1 ;;
    '') ;;
    *) usage >&2; exit 2 ;;
esac

cd "$ROOT"

ADMIN=$(util/sophon-pg start "$PG_DIR" "$PG_PORT" | tail -n 1)
WRITER=${ADMIN/user=postgres/user=sophon_writer}
q() { psql -X -q -v ON_ERROR_STOP=1 -tA -d "$ADMIN" "$@"; }

q -f sql/schema.sql
q -f sql/roles.sql

have=$(q -c "SELECT count(*) FROM sophon_events WHERE device_id NOT LIKE 'bench-cam-%'")
if [ "$have" -lt "$PRELOAD" ]; then
    say "preloading $PRELOAD events"
    q -c "TRUNCATE sophon_events"
    util/sophon-events-gen "$PRELOAD" 7 | util/sophon-events-load "$ADMIN"
fi

# the template: the generator's bytes, with placeholders for what varies
mkdir -p "$WORK"
util/sophon-events-gen 1 3 |
    perl -pe 's/"_id":"[^"]*"/"_id":"\@ID\@"/;
              s/"timestamp":[-0-9.eE+]+/"timestamp":\@TS\@/;
              s/"device_id":"[^"]*"/"device_id":"\@DEV\@"/;
              s/"identity_id":"[^"]*"/"identity_id":"\@WHO\@"/' \
    > "$WORK/template.json"
[ "$(grep -o '@ID@\|@TS@\|@DEV@\|@WHO@' "$WORK/template.json" | sort -u | wc -l)" = 4 ] ||
    die "the generator's document has changed: no placeholders"

q <<EOF
SET client_min_messages = warning;
DELETE FROM sophon_events WHERE device_id LIKE 'bench-cam-%';
DROP TABLE IF EXISTS bench_template;
CREATE TABLE bench_template (tpl text NOT NULL);
ALTER TABLE bench_template ALTER tpl SET STORAGE EXTERNAL;
\\set tpl \`cat "$WORK/template.json"\`
INSERT INTO bench_template VALUES (:'tpl');
GRANT SELECT ON bench_template TO sophon_writer;
VACUUM ANALYZE sophon_events, sophon_event_counts, sophon_event_totals,
    bench_template;
CHECKPOINT;
EOF

# one script per statement size; the camera is :cam (0, or the client)
hour=$(( $(date +%s) / 3600 ))
for batch in 1 100; do
    for cams in one many; do
        if [ $cams = one ]; then cam='\set cam 0'; else cam='\set cam :client_id'; fi
        cat > "$WORK/ingest-$cams-$batch.sql" <<EOF
$cam
INSERT INTO sophon_events (doc)
SELECT replace(replace(replace(replace(t.tpl,
           '@ID@', gen_random_uuid()::text),
           '@WHO@', (1 + floor(random() * 1000))::int::text),
           '@TS@', (:hour::numeric * 3600
                    + round((random() * 3599.999)::numeric, 6))::text),
           '@DEV@', 'bench-cam-' || :cam::text)::json
  FROM bench_template t, generate_series(1, $batch);
EOF
    done
done

# the writers waiting for a lock (another writer's counter row), sampled
# every half second while pgbench runs: the serialization this measures
sample_waits() {
    while :; do
        q -c "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*)
                FROM pg_stat_activity
               WHERE usename = 'sophon_writer' AND state = 'active'" \
            2>/dev/null || true
        sleep 0.5
    done
}

# run CAMS BATCH CLIENTS: events a second, and the mean number of writers
# waiting for a lock
run() {
    local out=$WORK/run-$1-$2-c$3-$(date +%s%N).log sampler
    sample_waits > "$out.waits" &
    sampler=$!
    pgbench -n -M prepared -c "$3" -j "$([ "$3" -lt "$JOBS" ] && echo "$3" || echo "$JOBS")" \
        -T "$DURATION" -D hour="$hour" -f "$WORK/ingest-$1-$2.sql" \
        "$WRITER" > "$out" 2>&1 || { kill "$sampler"; cat "$out" >&2; die "pgbench failed"; }
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    grep -q '^number of failed transactions: 0 ' "$out" ||
        ! grep -q '^number of failed' "$out" || { cat "$out" >&2; die "failures"; }
    printf '%s/%s\n' \
        "$(awk -v b="$2" '/^tps = .*without initial/ { printf "%.0f", $3 * b }' "$out")" \
        "$(awk -F'|' '$2 > 0 { w += $1; k++ } END { printf "%.1f", k ? w / k : 0 }' "$out.waits")"
}

# set_mode durable|fast: commits that wait for their WAL to be on disk
# (fsync, synchronous_commit: what a real server does; a writer holds its
# counter rows until its commit is flushed), or the throwaway cluster's own
# settings (neither)
set_mode() {
    local fsync=off notify=ENABLE
    [ "${1%-quiet}" = durable ] && fsync=on
    [ "${1%-quiet}" != "$1" ] && notify=DISABLE
    q -c "ALTER SYSTEM SET fsync = $fsync" -c "SELECT pg_reload_conf()" \
      -c "ALTER TABLE sophon_events $notify TRIGGER sophon_events_notify" \
      >/dev/null
    export PGOPTIONS="-c synchronous_commit=$fsync"
}
trap 'q -c "ALTER SYSTEM RESET fsync" -c "SELECT pg_reload_conf()" \
        -c "ALTER TABLE sophon_events ENABLE TRIGGER sophon_events_notify" \
        >/dev/null 2>&1 || true
      [ "$KEEP" = 1 ] || util/sophon-pg stop "$PG_DIR" >/dev/null 2>&1 || true' EXIT

declare -A ev
cases=("one 1" "many 1" "one 100" "many 100")
for mode in $MODES; do
set_mode "$mode"
for round in $(seq "$ROUNDS"); do
    order=("${cases[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=("${cases[3]}" "${cases[2]}" "${cases[1]}" "${cases[0]}")
    fi
    for c in "${order[@]}"; do
        set -- $c
        r=$(run "$1" "$2" "$CLIENTS")
        say "$mode, round $round: $CLIENTS clients, $1 camera(s), $2/stmt: $r events/s"
        ev[$mode-$1-$2]="${ev[$mode-$1-$2]:-} $r"
    done
done

if [ "$SINGLE" = 1 ]; then
    for b in 1 100; do
        r=$(run one "$b" 1)
        say "$mode: 1 client, $b/stmt: $r events/s"
        ev[$mode-single-$b]=$r
    done
fi
done

slots=$(q -c "SELECT count(*) FROM information_schema.columns
               WHERE table_name = 'sophon_event_counts' AND column_name = 'slot'")
echo
echo "ingest: $CLIENTS clients, ${DURATION} s a run, $(nproc) CPUs," \
     "counter slots: $([ "$slots" = 1 ] && echo yes || echo no)"
echo "events/s (writers waiting for a lock, mean of the samples)"
printf '%-8s %-9s %-16s %-16s %s\n' commits "" "1 camera" "$CLIENTS cameras" "1/$CLIENTS"
for mode in $MODES; do
    for b in 1 100; do
        read -r -a o <<<"${ev[$mode-one-$b]}"
        read -r -a m <<<"${ev[$mode-many-$b]}"
        for i in "${!o[@]}"; do
            printf '%-8s %-9s %-16s %-16s %.2f\n' "$mode" "$b/stmt" \
                "${o[$i]%/*} (${o[$i]#*/})" "${m[$i]%/*} (${m[$i]#*/})" \
                "$(echo "${o[$i]%/*} / ${m[$i]%/*}" | bc -l)"
        done
    done
    if [ "$SINGLE" = 1 ]; then
        echo "$mode: 1 client, 1 camera: ${ev[$mode-single-1]%/*} events/s" \
             "at 1/stmt, ${ev[$mode-single-100]%/*} events/s at 100/stmt"
    fi
done
q -c "SELECT 'events in the table: ' || count(*) FROM sophon_events"
