# vi:filetype=perl

# The counts behind the totals are written by the triggers alone.
#
# sophon_writer (the box's pipeline, sql/roles.sql) inserts and deletes
# events, and their counts follow, but it cannot write a counter itself,
# nor divert the triggers with a temporary table of the counters' name.
# sophon_events_recount() repairs counts that were written by hand, and it
# does so online: readers are not blocked and keep exact totals, writers
# wait for its lock.
#
# The events of this file are of the camera dev-counters, not in the
# fixtures: they are deleted before the blocks that check pages against
# the fixtures, and at exit, when the counts are recounted too, however
# the script ends.  Sections of this file (each runs before its block):
#   --- writer_denied    the writer cannot write the counters; inserts
#   --- hijack           a writer's temporary "sophon_event_counts" and
#                        "sophon_event_totals" get nothing; it deletes one
#   --- corrupt_recount  counters written by hand, then recounted
#   --- start_recount    a recount held open for $Hold seconds, with a
#                        counter of dev-ghost that it is about to correct
#   --- wait_recount     the recount has committed

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(psql_start reap wait_until);

repeat_each(2);
no_shuffle();

our $Device = 'dev-counters';
our $Hold = 5;

my $MainPid = $$;

sub admin {
    return SophonTest::psql($_[0]);
}

# (ok, stdout, stderr) of a script run as sophon_writer
sub writer {
    return SophonTest::psql_script($_[0], 'sophon_writer');
}

# "(doc)" of a small event of $Device, for INSERT ... VALUES; the
# timestamp is written as given (a decimal, as the box writes it); person
# types 1 to 3 name a person of their own, 4 (strangers) nobody
sub doc_sql {
    my ($id, $ts, $type) = @_;
    my $who = $type == 4 ? '' : " \"identity_id\": \"counters-$type\","
                               . " \"identity_name\": \"Counters $type\",";
    return "('{\"_id\": \"counters-$id\", \"timestamp\": $ts,"
           . " \"common\": {$who \"person_type\": $type,"
           . " \"ep_info\": {\"device_id\": \"$Device\"}}}')";
}

# the events of $Device, and every counter checked against the rows: the
# counts must be what the events give, their slots summed (a counter at 0
# is right)
sub counts_exact {
    my ($name) = @_;

    is(admin(<<'_SQL_'), '0|0|0|0', "$name - the four counts are what the events give");
WITH fresh AS (
    SELECT sophon_events_hour(ts) AS hour, coalesce(device_id, '') AS device_id,
           person_type, count(*) AS n
      FROM sophon_events GROUP BY 1, 2, 3
),
rolled AS (
    SELECT g.grain, sophon_events_period(hour, g.hours), device_id,
           person_type, sum(n)::bigint
      FROM fresh, sophon_events_grains() g GROUP BY 1, 2, 3, 4
),
counts AS (
    SELECT hour, device_id, person_type, sum(n)::bigint AS n
      FROM sophon_event_counts GROUP BY 1, 2, 3
),
rollups AS (
    SELECT grain, period, device_id, person_type, sum(n)::bigint AS n
      FROM sophon_event_rollups GROUP BY 1, 2, 3, 4
),
totals AS (
    SELECT device_id, person_type, sum(n)::bigint AS n
      FROM sophon_event_totals GROUP BY 1, 2
),
who AS (
    SELECT coalesce(identity_id, ''), coalesce(identity_name, ''), count(*)
      FROM sophon_events
     WHERE coalesce(identity_id, '') <> '' OR coalesce(identity_name, '') <> ''
     GROUP BY 1, 2
)
SELECT (SELECT count(*) FROM (
            (SELECT * FROM fresh
             EXCEPT SELECT * FROM counts)
            UNION ALL
            (SELECT * FROM counts WHERE n <> 0
             EXCEPT SELECT * FROM fresh)) d),
       (SELECT count(*) FROM (
            (SELECT device_id, person_type, sum(n) FROM fresh GROUP BY 1, 2
             EXCEPT SELECT * FROM totals)
            UNION ALL
            (SELECT * FROM totals WHERE n <> 0
             EXCEPT SELECT device_id, person_type, sum(n) FROM fresh
                    GROUP BY 1, 2)) d),
       (SELECT count(*) FROM (
            (SELECT * FROM rolled EXCEPT SELECT * FROM rollups)
            UNION ALL
            (SELECT * FROM rollups WHERE n <> 0
             EXCEPT SELECT * FROM rolled)) d),
       (SELECT count(*) FROM (
            (SELECT * FROM who EXCEPT SELECT * FROM sophon_event_identities)
            UNION ALL
            (SELECT * FROM sophon_event_identities WHERE n <> 0
             EXCEPT SELECT * FROM who)) d)
_SQL_

    is(admin("SELECT sophon_events_total(NULL, NULL, NULL, NULL)"
             . " = (SELECT count(*) FROM sophon_events)"
             . " AND sophon_events_total(1607385600.5, 1607432400.000004,"
             . " NULL, '{1,2}') = (SELECT count(*) FROM sophon_events"
             . " WHERE ts >= 1607385600.5 AND ts <= 1607432400.000004"
             . " AND person_type IN (1, 2))"),
       't', "$name - totals are count(*)");
}

# a statement the writer may not run: refused for want of privilege
sub denied {
    my ($name, $sql, $table) = @_;
    my ($ok, $out, $err) = writer($sql);

    ok(!$ok && $err =~ /permission denied for table \Q$table\E/,
       "$name - the writer may not: $sql") or diag($err);
}

# a psql of the recount held open (SophonClient's psql_start), started by
# this script only
my $Recount;

sub start_recount {
    $Recount = psql_start("BEGIN;\nSELECT sophon_events_recount();\n"
                          . "SELECT pg_sleep($Hold);\nCOMMIT;\n");
}

# its exit status (0: it committed), or 'killed' past TIMEOUT seconds
sub reap_recount {
    my ($timeout) = @_;
    return undef if !$Recount;

    my $status = reap($Recount, $timeout);
    undef $Recount;
    return $status;
}

# whatever happened, the other files find the counts exact and no event
# of this file
sub clean {
    admin("DELETE FROM sophon_events WHERE device_id = '$Device'");
    admin("SELECT sophon_events_recount()");
}

END {
    if ($$ == $MainPid) {
        local $?;
        reap_recount(0) if $Recount;
        eval { clean() };
        warn "015-counters: cannot clean up: $@" if $@;
    }
}

clean();

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->name;

    SophonTest::default_location($block);

    if (defined $block->writer_denied) {
        denied($name, "INSERT INTO sophon_event_counts VALUES"
                      . " (446509, '$Device', 1, 1000)",
               'sophon_event_counts');
        denied($name, "UPDATE sophon_event_counts SET n = n + 1",
               'sophon_event_counts');
        denied($name, "DELETE FROM sophon_event_counts",
               'sophon_event_counts');
        denied($name, "INSERT INTO sophon_event_totals VALUES"
                      . " ('$Device', 1, 1000)", 'sophon_event_totals');
        denied($name, "UPDATE sophon_event_totals SET n = 0",
               'sophon_event_totals');
        denied($name, "TRUNCATE sophon_event_totals", 'sophon_event_totals');
        denied($name, "UPDATE sophon_event_identities SET n = n + 1",
               'sophon_event_identities');
        denied($name, "DELETE FROM sophon_event_rollups",
               'sophon_event_rollups');

        my ($ok, $out, $err) = writer(
            "INSERT INTO sophon_events (doc) VALUES "
            . join(', ', doc_sql(1, '1607432399.999996', 1),
                         doc_sql(2, '1607432400', 2),
                         doc_sql(3, '1607432400.000004', 2)));
        ok($ok, "$name - the writer inserts events") or diag($err);

        is(admin("SELECT sum(n) FROM sophon_event_counts"
                 . " WHERE device_id = '$Device'"), 3,
           "$name - the triggers counted them");
        counts_exact($name);
    }

    if (defined $block->hijack) {
        my ($ok, $out, $err) = writer(<<"_SQL_");
CREATE TEMP TABLE sophon_event_counts (hour bigint, device_id text,
    person_type smallint, n bigint, PRIMARY KEY (hour, device_id, person_type));
CREATE TEMP TABLE sophon_event_totals (device_id text, person_type smallint,
    n bigint, PRIMARY KEY (device_id, person_type));
CREATE TEMP TABLE sophon_event_rollups (grain smallint, slot bigint,
    device_id text, person_type smallint, n bigint,
    PRIMARY KEY (grain, slot, device_id, person_type));
CREATE TEMP TABLE sophon_event_identities (identity_id text,
    identity_name text, n bigint, PRIMARY KEY (identity_id, identity_name));
INSERT INTO sophon_events (doc) VALUES @{[ doc_sql(4, '1607436000.5', 3) ]},
    @{[ doc_sql(5, '1607435999.999999', 1) ]};
DELETE FROM sophon_events WHERE id = 'counters-1';
SELECT (SELECT count(*) FROM pg_temp.sophon_event_counts),
       (SELECT count(*) FROM pg_temp.sophon_event_totals),
       (SELECT count(*) FROM pg_temp.sophon_event_rollups),
       (SELECT count(*) FROM pg_temp.sophon_event_identities);
_SQL_

        ok($ok, "$name - the writer made its tables, inserted and deleted")
            or diag($err);
        is($out, '0|0|0|0', "$name - its temporary tables got no counter");
        is(admin("SELECT sum(n) FROM sophon_event_totals"
                 . " WHERE device_id = '$Device'"), 4,
           "$name - the real counts did");
        counts_exact($name);
    }

    if (defined $block->corrupt_recount) {
        admin("DELETE FROM sophon_events WHERE device_id = '$Device'");

        # what a restore without triggers, or a hand, might leave
        admin("UPDATE sophon_event_counts SET n = n + 7"
              . " WHERE device_id = 'dev-hours-1' AND hour = 446509");
        admin("DELETE FROM sophon_event_totals WHERE device_id = 'dev-hours-2'");
        admin("INSERT INTO sophon_event_counts VALUES (446505, 'dev-ghost', 1, 9)");
        admin("INSERT INTO sophon_event_totals VALUES ('dev-ghost', 1, 9)");
        admin("INSERT INTO sophon_event_identities VALUES ('ghost', 'Ghost', 9)");
        admin("UPDATE sophon_event_rollups SET n = n + 5"
              . " WHERE device_id = 'dev-hours-1' AND grain = 1");
        admin("UPDATE sophon_event_identities SET n = n + 7"
              . " WHERE (identity_id, identity_name) IN"
              . " (SELECT identity_id, identity_name FROM sophon_event_identities"
              . " ORDER BY 1, 2 LIMIT 1)");

        is(admin("SELECT sophon_events_total(NULL, NULL, NULL, NULL)"
                 . " <> (SELECT count(*) FROM sophon_events)"
                 . " AND sophon_events_total(1607400000, 1607436000.5,"
                 . " '{dev-hours-1,dev-ghost}', NULL)"
                 . " <> (SELECT count(*) FROM sophon_events"
                 . " WHERE ts >= 1607400000 AND ts <= 1607436000.5"
                 . " AND device_id = 'dev-hours-1')"),
           't', "$name - the counts are wrong before the recount");

        my ($ok, $out, $err) = SophonTest::psql_script(
            "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
            . "SELECT sophon_events_recount();\n");
        ok(!$ok && $err =~ /needs a READ COMMITTED transaction/,
           "$name - no recount from an older snapshot") or diag($err);

        my $events = admin("SELECT count(*) FROM sophon_events");
        my ($counted, $corrected) = split /\|/,
            admin("SELECT * FROM sophon_events_recount()");

        is($counted, $events, "$name - the recount counted every event");
        ok($corrected >= 7, "$name - and corrected the counters written"
           . " by hand ($corrected)");
        is(admin("SELECT * FROM sophon_events_recount()"), "$events|0",
           "$name - a second recount finds nothing to correct");
        counts_exact($name);

        ($ok, $out, $err) = writer("SELECT sophon_events_recount()");
        ok(!$ok && $err =~ /permission denied for function/,
           "$name - the writer may not recount") or diag($err);
    }

    if (defined $block->start_recount) {
        admin("INSERT INTO sophon_event_counts VALUES (446505, 'dev-ghost', 1, 9)");
        admin("INSERT INTO sophon_event_totals VALUES ('dev-ghost', 1, 9)");

        start_recount();

        # until the recount holds its lock
        my ($held) = wait_until(7, 0.05, sub {
            admin("SELECT count(*) FROM pg_locks"
                  . " WHERE relation = 'sophon_events'::regclass"
                  . " AND mode = 'ShareRowExclusiveLock' AND granted"
                  . " AND pid <> pg_backend_pid()")
        });
        is($held, 1, "$name - the recount holds SHARE ROW EXCLUSIVE");

        my ($ok, $out, $err) = SophonTest::psql_script(
            "SET statement_timeout = '1s';\n"
            . "SELECT sophon_events_total(NULL, NULL, '{dev-ghost}', NULL),"
            . " sophon_events_total(1607400000, NULL, '{dev-ghost}', NULL);\n",
            'sophon_reader');
        ok($ok, "$name - a reader is not blocked") or diag($err);
        is($out, '9|9', "$name - it sees the old counts until the commit");

        ($ok, $out, $err) = writer(
            "SET lock_timeout = '300ms';\n"
            . "INSERT INTO sophon_events (doc) VALUES "
            . doc_sql(6, '1607436000.5', 1) . ";\n");
        ok(!$ok && $err =~ /lock timeout/, "$name - a writer waits for the"
           . " recount's lock") or diag($err);
    }

    if (defined $block->wait_recount) {
        is(reap_recount($Hold + 30), 0, "$name - the recount committed");
        is(admin("SELECT sophon_events_total(NULL, NULL, '{dev-ghost}', NULL)"),
           0, "$name - the counter it corrected is gone");
        counts_exact($name);
    }
});

# the pages of the blocks that the fixtures give
add_response_body_check(sub {
    my ($block) = @_;
    goto &SophonTest::check_body if defined $block->fixtures;
});

run_tests();

__DATA__

=== TEST 1: the writer cannot write a counter; the events it inserts are counted
--- writer_denied
--- request eval
["GET /SophonFace/api/events?streams=dev-counters",
 "GET /SophonFace/api/events?streams=dev-counters&datetime_gte=1607432400.000001",
 "GET /SophonFace/api/events?streams=dev-counters&datetime_lte=1607432400"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"total_count":3,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":2,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 2: a temporary table of the counters' name diverts nothing
--- hijack
--- request eval
["GET /SophonFace/api/events?streams=dev-counters",
 "GET /SophonFace/api/events?streams=dev-counters&datetime_gte=1607432400&datetime_lte=1607435999.999999"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"total_count":4,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":3,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 3: counters written by hand, recounted: every total as the fixtures give
--- corrupt_recount
--- fixtures
--- request eval
["GET /SophonFace/api/events",
 "GET /SophonFace/api/events?datetime_gte=1607400000&datetime_lte=1607436000.5&streams=dev-hours-1",
 "GET /SophonFace/api/events?datetime_gte=1607385600.000004&userType=1,2",
 "GET /SophonFace/api/events?streams=dev-hours-2&per_page=3&page=5"]
--- error_code eval
[200, 200, 200, 200]
--- no_error_log
[error]



=== TEST 4: while a recount is under way, readers read exact totals
--- start_recount
--- fixtures
--- request eval
["GET /SophonFace/api/events?streams=dev-hours-1,dev-hours-2&per_page=5&page=6",
 "GET /SophonFace/api/events?datetime_gte=1607400000&datetime_lte=1607436000.5&streams=dev-hours-1",
 "GET /SophonFace/api/events?datetime_gte=1607385600.000004&datetime_lte=1607420000&userType=2,3",
 "GET /SophonFace/api/events?datetime_gte=1700000000"]
--- error_code eval
[200, 200, 200, 200]
--- no_error_log
[error]



=== TEST 5: once it committed, every total is exact again, the camera it corrected too
--- wait_recount
--- fixtures
--- request eval
["GET /SophonFace/api/events",
 "GET /SophonFace/api/events?streams=dev-ghost",
 "GET /SophonFace/api/events?datetime_gte=1607400000&datetime_lte=1607436000.5"]
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]
