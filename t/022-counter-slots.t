# vi:filetype=perl

# Writers of one camera count in different rows: each counter of hours,
# days and 32 days, and each total, is kept in slots (sql/schema.sql), a
# writing backend adds to the slot pg_backend_pid() %
# sophon_events_slots(), and a count is the sum of its key's slots.
#
# $Writers sessions of sophon_writer write the camera dev-slots at once,
# one event a statement and several hours and types a statement; then as
# many new sessions delete half of another session's events (counted in
# another slot) while inserting more.  Each session reports its slot.
# The counters of dev-slots must be in exactly the slots of the sessions,
# in several of them, and add up to the events; sophon_events_total() must
# be count(*); a recount finds nothing to correct however the slots split
# a count, corrects a slot written by hand (the key's count in slot 0, its
# other slots gone), and the counts are exact after deleting every event.
# Sections of this file (each runs before its block):
#   --- concurrent   the two phases of writers, and the checks
#   --- fold         a fold, then folds while writers write old hours
#   --- recount      the recounts, by hand and not
# The events of dev-slots are deleted at the start and at exit.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();

repeat_each(1);
no_shuffle();

our $Device = 'dev-slots';
our $Writers = 6;
our $Each = 40;         # events of a session of the first phase
our $More = 10;         # events of a session of the second phase
our $Base = 1728000000; # its events: three hours from here

my $MainPid = $$;

sub admin {
    return SophonTest::psql($_[0]);
}

# "(doc)" of a small event of $Device: hours and types vary with $j
sub doc_sql {
    my ($id, $j) = @_;
    my $ts = $Base + ($j * 337) % 10800 + 0.25;
    my $type = 1 + $j % 3;
    return "('{\"_id\": \"slots-$id\", \"timestamp\": $ts,"
           . " \"common\": {\"person_type\": $type,"
           . " \"ep_info\": {\"device_id\": \"$Device\"}}}')";
}

# the scripts as sophon_writer (a script given as [SQL, undef]: as the
# owner), each in its own session, all at once: SophonTest::psql_sessions
sub sessions {
    return SophonTest::psql_sessions(
        map { ref $_ ? $_ : [ $_, 'sophon_writer' ] } @_);
}

# every counter of dev-slots against its events, summed over the slots
sub counts_exact {
    my ($name) = @_;

    is(admin(<<"_SQL_"), '0|0', "$name - the slots add up to the events");
WITH fresh AS (
    SELECT sophon_events_hour(ts) AS hour, person_type, count(*) AS n
      FROM sophon_events WHERE device_id = '$Device' GROUP BY 1, 2
),
counts AS (
    SELECT hour, person_type, sum(n) AS n
      FROM sophon_event_counts WHERE device_id = '$Device' GROUP BY 1, 2
),
totals AS (
    SELECT person_type, sum(n) AS n
      FROM sophon_event_totals WHERE device_id = '$Device' GROUP BY 1
),
fresh_rollups AS (
    SELECT g.grain, floor(hour::numeric / g.hours)::bigint AS period,
           person_type, sum(n) AS n
      FROM fresh, sophon_events_grains() g GROUP BY 1, 2, 3
),
rollups AS (
    SELECT grain, period, person_type, sum(n) AS n
      FROM sophon_event_rollups WHERE device_id = '$Device' GROUP BY 1, 2, 3
)
SELECT (SELECT count(*) FROM (
            (SELECT * FROM fresh_rollups EXCEPT SELECT * FROM rollups)
            UNION ALL
            (SELECT * FROM rollups WHERE n <> 0
             EXCEPT SELECT * FROM fresh_rollups)) d)
       + (SELECT count(*) FROM (
            (SELECT * FROM fresh EXCEPT SELECT * FROM counts)
            UNION ALL
            (SELECT * FROM counts WHERE n <> 0 EXCEPT SELECT * FROM fresh)) d),
       (SELECT count(*) FROM (
            (SELECT person_type, sum(n) FROM fresh GROUP BY 1
             EXCEPT SELECT * FROM totals)
            UNION ALL
            (SELECT * FROM totals WHERE n <> 0
             EXCEPT SELECT person_type, sum(n) FROM fresh GROUP BY 1)) d)
_SQL_

    my $lte = $Base + 7200.5;
    is(admin("SELECT sophon_events_total(NULL, NULL, '{$Device}', NULL)"
             . " || '|' || sophon_events_total($Base, $lte, '{$Device}',"
             . " '{1,3}')"),
       admin("SELECT count(*) || '|' || count(*) FILTER (WHERE ts >= $Base"
             . " AND ts <= $lte AND person_type IN (1, 3))"
             . " FROM sophon_events WHERE device_id = '$Device'"),
       "$name - sophon_events_total() is count(*)");
}

sub clean {
    admin("DELETE FROM sophon_events WHERE device_id = '$Device'");
    admin("SELECT sophon_events_recount()");
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { clean() };
        warn "022-counter-slots: cannot clean up: $@" if $@;
    }
}

clean();

my $SlotSql = "SELECT pg_backend_pid() % sophon_events_slots();\n";

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->name;

    SophonTest::default_location($block);

    if (defined $block->concurrent) {
        my (%slots, @scripts);

        # one event a statement, then five hours and types in one
        for my $i (0 .. $Writers - 1) {
            my $sql = $SlotSql;
            for my $j (0 .. $Each - 6) {
                $sql .= "INSERT INTO sophon_events (doc) VALUES "
                        . doc_sql("$i-$j", $i + $j) . ";\n";
            }
            $sql .= "INSERT INTO sophon_events (doc) VALUES "
                    . join(', ', map { doc_sql("$i-$_", $i + $_) }
                                     reverse($Each - 5 .. $Each - 1))
                    . ";\n";
            push @scripts, $sql;
        }

        my @done = sessions(@scripts);
        is(scalar(grep { $_->[0] } @done), $Writers,
           "$name - every writer of the first phase wrote")
            or diag(join "\n", map { $_->[2] } @done);
        $slots{$_->[1]} = 1 for @done;

        # the next session's first half goes, from another backend, while
        # more events come
        @scripts = ();
        for my $i (0 .. $Writers - 1) {
            my $next = ($i + 1) % $Writers;
            my $sql = $SlotSql;
            for my $j (0 .. $More - 1) {
                $sql .= "DELETE FROM sophon_events WHERE id IN ("
                        . join(', ', map { "'slots-$next-$_'" }
                                         grep { $_ % $More == $j }
                                         0 .. $Each / 2 - 1)
                        . ");\n";
                $sql .= "INSERT INTO sophon_events (doc) VALUES "
                        . doc_sql("more-$i-$j", 7 * $i + $j) . ";\n";
            }
            push @scripts, $sql;
        }

        @done = sessions(@scripts);
        is(scalar(grep { $_->[0] } @done), $Writers,
           "$name - every writer of the second phase deleted and wrote")
            or diag(join "\n", map { $_->[2] } @done);
        $slots{$_->[1]} = 1 for @done;

        my $want = join ',', sort { $a <=> $b } keys %slots;
        for my $t (qw(sophon_event_counts sophon_event_rollups
                      sophon_event_totals)) {
            is(admin("SELECT string_agg(DISTINCT slot::text, ','"
                     . " ORDER BY slot::text) FROM $t"
                     . " WHERE device_id = '$Device'"),
               $want, "$name - $t: in the slots of the writers ($want)");
        }
        ok(keys %slots >= 2, "$name - several slots");

        is(admin("SELECT count(*) FROM sophon_events"
                 . " WHERE device_id = '$Device'"),
           $Writers * ($Each / 2 + $More), "$name - the events left");
        counts_exact($name);
    }

    if (defined $block->fold) {
        my $slots = "SELECT count(*) FROM %s WHERE device_id = '$Device'"
                    . " AND slot <> 0";

        ok(admin("SELECT sophon_events_fold()") > 0,
           "$name - the fold merged slots");
        is(admin(sprintf $slots, 'sophon_event_counts'), 0,
           "$name - the hours that are over are in slot 0 alone");
        is(admin(sprintf $slots, 'sophon_event_rollups'), 0,
           "$name - so are their days and 32 days");
        ok(admin(sprintf $slots, 'sophon_event_totals') > 0,
           "$name - the totals keep their slots");
        is(admin("SELECT sophon_events_fold()"), 0,
           "$name - a second fold finds nothing to merge");
        counts_exact($name);

        # writers backfill those hours, in their slots, while the owner
        # folds them again and again: nobody deadlocks, nothing is lost
        my @scripts;
        for my $i (0 .. $Writers - 1) {
            push @scripts, join '', map {
                "INSERT INTO sophon_events (doc) VALUES "
                . doc_sql("fold-$i-$_", 3 * $i + $_) . ";\n"
            } 0 .. $More - 1;
        }
        push @scripts, [ "SELECT sophon_events_fold();\n" x 20, undef ];

        my @done = sessions(@scripts);
        is(scalar(grep { $_->[0] } @done), $Writers + 1,
           "$name - the writers wrote and the folds folded meanwhile")
            or diag(join "\n", map { $_->[2] } @done);

        admin("SELECT sophon_events_fold()");
        is(admin(sprintf $slots, 'sophon_event_counts'), 0,
           "$name - folded again: slot 0 alone");
        counts_exact("$name (backfilled)");

        # a writer's long transaction: the fold gives up instead of
        # queueing every other writer behind its lock request
        @done = sessions(
            "BEGIN;\nINSERT INTO sophon_events (doc) VALUES "
            . doc_sql('fold-long', 1) . ";\nSELECT pg_sleep(2);\nCOMMIT;\n",
            [ "SELECT pg_sleep(0.5);\n"
              . "SELECT coalesce(sophon_events_fold()::text, 'none');\n",
              undef ]);
        ok($done[0][0], "$name - the long writer committed")
            or diag($done[0][2]);
        is(($done[1][1] =~ /(\S+)\s*\z/)[0], 'none',
           "$name - the fold behind it folded nothing")
            or diag($done[1][2]);
        counts_exact("$name (long writer)");
    }

    if (defined $block->recount) {
        my $events = admin("SELECT count(*) FROM sophon_events");
        my $rows = admin("SELECT count(*) FROM sophon_event_counts"
                         . " WHERE device_id = '$Device'");

        is(admin("SELECT * FROM sophon_events_recount()"), "$events|0",
           "$name - the slots add up: nothing to correct");
        is(admin("SELECT count(*) FROM sophon_event_counts"
                 . " WHERE device_id = '$Device'"), $rows,
           "$name - and the slots stay");

        # one slot of one counter and one slot of a total, by hand
        my ($hour, $type, $slot) = split /\|/, admin(
            "SELECT hour, person_type, slot FROM sophon_event_counts"
            . " WHERE device_id = '$Device' AND n > 0"
            . " ORDER BY hour, person_type, slot LIMIT 1");
        admin("UPDATE sophon_event_counts SET n = n + 5"
              . " WHERE device_id = '$Device' AND hour = $hour"
              . " AND person_type = $type AND slot = $slot");
        admin("DELETE FROM sophon_event_totals WHERE ctid = (SELECT ctid"
              . " FROM sophon_event_totals WHERE device_id = '$Device'"
              . " AND n <> 0 ORDER BY person_type, slot DESC LIMIT 1)");

        my ($counted, $corrected) = split /\|/,
            admin("SELECT * FROM sophon_events_recount()");
        is($counted, $events, "$name - the recount counted every event");
        ok($corrected >= 2, "$name - and corrected ($corrected)");
        is(admin("SELECT string_agg(slot::text, ',') FROM sophon_event_counts"
                 . " WHERE device_id = '$Device' AND hour = $hour"
                 . " AND person_type = $type"),
           '0', "$name - the counter written by hand is in slot 0 alone");
        is(admin("SELECT * FROM sophon_events_recount()"), "$events|0",
           "$name - a second recount finds nothing to correct");
        counts_exact($name);

        admin("DELETE FROM sophon_events WHERE device_id = '$Device'");
        is(admin("SELECT coalesce(sum(n), 0) FROM sophon_event_totals"
                 . " WHERE device_id = '$Device'"), 0,
           "$name - every event deleted: the slots add up to 0");
        counts_exact("$name (deleted)");
    }
});

run_tests();

__DATA__

=== TEST 1: writers of one camera at once, in their own slots; totals exact
--- concurrent
--- request
GET /SophonFace/api/events?streams=dev-slots&per_page=1
--- error_code: 200
--- response_body_like: "total_count":180,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: a fold merges the slots of the hours that are over, also while they are written
--- fold
--- request
GET /SophonFace/api/events?streams=dev-slots&per_page=1
--- error_code: 200
--- response_body_like: "total_count":241,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 3: a recount keeps slots that add up, corrects one that does not
--- recount
--- request
GET /SophonFace/api/events?streams=dev-slots
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]
