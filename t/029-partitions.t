# vi:filetype=perl

# Partitions and retention (README, "Partitions and retention"), in
# databases of this file's own (sophon_part, sophon_part_old) of the test
# cluster, made at the start and dropped at the end:
#
#   TEST 1   a new table is partitioned by month, with months ahead and a
#            default partition; INSERT (doc) lands in its month; an _id is
#            refused in another month as in its own; an UPDATE that moves
#            an event to another month moves it, counts and all
#   TEST 2   sophon_events_expire() at a month's first second and a
#            microsecond and an ulp either side of it, inside a month and
#            past every month: exactly the events before the cut go, the
#            months wholly before it are dropped, and every total (time
#            windows, cameras, person types, identities, the statistics)
#            is count(*) after each; the list agrees over HTTP
#   TEST 3   a month of 1,000,000 events expired: its partition dropped
#            in one transaction that writes a few kB of WAL, not the rows;
#            readers checking total = count(*) meanwhile never see them
#            differ (the time it took is printed: a figure, not a test)
#   TEST 4   sophon_events_partition() converts an unpartitioned table
#            with its events: same rows, totals, indexes, triggers and
#            privileges
#   TEST 5   util/sophon-events-expire --keep, --dry-run and its errors

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();

$SophonClient::AppName = 'sophon_029_check';

my $MainPid = $$;
our $Db = 'sophon_part';
our $OldDb = 'sophon_part_old';

sub conninfo {
    my ($db, $user) = @_;
    my $c = admin_conninfo($db);
    $c =~ s/\buser=\S+/user=$user/ if $user;
    return $c;
}

# SQL on $Db (or $db) as the superuser: the first column of each row
sub sq {
    my ($sql, $db) = @_;
    return join "\n", map { join "\t", @$_ }
                      @{ psql_rows($sql, conninfo($db // $Db)) };
}

sub run_file {
    my ($db, @files) = @_;
    for my $f (@files) {
        system('psql', conninfo($db), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
               '-f', $f) == 0 or die "$f on $db failed\n";
    }
}

sub fresh_db {
    my ($db) = @_;
    sq("DROP DATABASE IF EXISTS $db WITH (FORCE)", 'postgres');
    sq("CREATE DATABASE $db", 'postgres');
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { sq("DROP DATABASE IF EXISTS $_ WITH (FORCE)", 'postgres')
               for $Db, $OldDb };
    }
}

fresh_db($Db);
run_file($Db, 'sql/schema.sql', 'sql/roles.sql');

$ENV{TEST_NGINX_SOPHON_PART_DB} = conninfo($Db, 'sophon_reader');

use_scenarios();

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", <<'_EOC_') if !defined $block->config;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_PART_DB";
    }
_EOC_
});


# --------------------------------------------------------------------------
# Events, and what the counts must say of them

# a month's first second (UTC) $k months from this one
sub month_start {
    my ($k) = @_;
    return sq("SELECT sophon_events_month_start((date_trunc('month', now()"
             . " AT TIME ZONE 'UTC') + interval '$k month')::date)");
}

# a double as text that reads back as the same double (Perl's own
# "%.15g" would lose the microseconds of a time)
sub num { sprintf '%.17g', $_[0] }

# an event's document: id, ts, camera, person type, identity
sub doc {
    my ($id, $ts, $cam, $type, $who) = @_;
    return sprintf '{"_id":"%s","timestamp":%s,"common":{"person_type":%d,'
                   . '"identity_id":"%s","identity_name":"N %s",'
                   . '"ep_info":{"device_id":"%s"}}}',
                   $id, num($ts), $type, $who, $who, $cam;
}

sub insert {
    my (@docs) = @_;
    sq("INSERT INTO sophon_events (doc) VALUES "
      . join(',', map { "('$_')" } @docs));
}

# each total the counts answer, against count(*): '' when all agree, else
# the first that does not
sub totals_differ {
    my (@windows) = @_;
    my @checks = ("sophon_events_total(NULL, NULL, NULL, NULL)"
                      => "true",
                  "sophon_events_total(NULL, NULL, ARRAY['cam-a'], NULL)"
                      => "device_id = 'cam-a'",
                  "sophon_events_total(NULL, NULL, NULL, ARRAY[2::smallint])"
                      => "person_type = 2");

    for my $w (@windows) {
        my ($lo, $hi) = map { num($_) } @$w;
        push @checks, "sophon_events_total($lo, $hi, NULL, NULL)"
                          => "ts >= $lo AND ts <= $hi",
                      "sophon_events_total($lo, $hi, ARRAY['cam-b'],"
                      . " ARRAY[1::smallint])"
                          => "ts >= $lo AND ts <= $hi AND device_id = 'cam-b'"
                             . " AND person_type = 1",
                      "(SELECT coalesce(sum(n), 0) FROM sophon_events_stats("
                      . "$lo, $hi, 24, NULL, NULL, true, true))"
                          => "ts >= $lo AND ts <= $hi";
    }

    while (my ($total, $where) = splice @checks, 0, 2) {
        my ($t, $c) = split /\t/, sq("SELECT $total, (SELECT count(*) FROM"
                                    . " sophon_events WHERE $where)");
        return "$total is $t, count(*) is $c" if $t != $c;
    }

    my $bad = sq("SELECT count(*) FROM (SELECT identity_id, sum(n) AS n"
                . " FROM sophon_event_identities GROUP BY 1) i"
                . " FULL JOIN (SELECT identity_id, count(*) AS n"
                . " FROM sophon_events WHERE identity_id <> ''"
                . " GROUP BY 1) e USING (identity_id)"
                . " WHERE coalesce(i.n, 0) <> coalesce(e.n, 0)");
    return "$bad identities' counts differ from their events" if $bad;

    return '';
}

sub partitions {
    return sq("SELECT string_agg(partition::text, ' ' ORDER BY month)"
             . " FROM sophon_events_months()");
}


# --------------------------------------------------------------------------
# Scenarios

sub scenario_layout {
    my ($block) = @_;
    my $name = $block->name;

    is(sq("SELECT relkind FROM pg_class WHERE oid = 'sophon_events'::regclass"),
       'p', "$name - sophon_events is partitioned");

    my @months = split / /, partitions();
    is(scalar @months, 2, "$name - this month and the next: @months");
    is(sq("SELECT count(*) FROM pg_inherits WHERE inhparent ="
         . " 'sophon_events'::regclass AND inhrelid ="
         . " 'sophon_events_other'::regclass"), 1,
       "$name - and the default partition");

    my $m0 = month_start(0);
    my $m1 = month_start(1);
    insert(doc('l-1', $m0, 'cam-a', 1, 'p1'),
           doc('l-2', $m1 - 0.000001, 'cam-a', 2, 'p1'),
           doc('l-3', $m1, 'cam-b', 1, 'p2'),
           doc('l-4', 1000.5, 'cam-b', 2, 'p2'));

    # ts and the key are one value: a repeated key's last, a string's
    sq("INSERT INTO sophon_events (doc) VALUES"
       . " ('{\"_id\":\"l-5\",\"timestamp\":" . num($m0 + 1)
       . ",\"common\":{},\"timestamp\":" . num($m1 + 0.5) . "}'),"
       . " ('{\"_id\":\"l-6\",\"timestamp\":\"" . num($m0 + 2.5)
       . "\",\"common\":{}}')");
    is(sq("SELECT count(*) FROM sophon_events"
          . " WHERE ts IS DISTINCT FROM sophon_events_doc_ts(doc)"
          . " OR ts <> sophon_events_doc_ts(doc)"), 0,
       "$name - every event's ts is its partition key");
    is(sq("SELECT tableoid::regclass || ' ' || ts FROM sophon_events"
          . " WHERE id = 'l-5'"), "$months[1] " . num($m1 + 0.5),
       "$name - a repeated timestamp's last value counts");

    is(sq("SELECT string_agg(id || ' ' || tableoid::regclass, ', ' ORDER BY id)"
         . " FROM sophon_events WHERE id IN ('l-1', 'l-2', 'l-3', 'l-4')"),
       "l-1 $months[0], l-2 $months[0], l-3 $months[1], l-4 sophon_events_other",
       "$name - each event in its month, the first second in it, the"
       . " microsecond before it in the month before; the rest in the"
       . " default partition");

    my ($ok, $out, $err) = SophonTest::psql_script(
        "\\c $Db\n" . "INSERT INTO sophon_events (doc) VALUES ('"
        . doc('l-3', $m0 + 5, 'cam-a', 1, 'p1') . "')");
    ok(!$ok && $err =~ /duplicate key value violates unique constraint/,
       "$name - an _id of another month is refused") or diag($err);

    ($ok, $out, $err) = SophonTest::psql_script(
        "\\c $Db\n" . "INSERT INTO sophon_events (doc) VALUES ('"
        . doc('l-1', $m0 + 5, 'cam-a', 1, 'p1') . "')");
    ok(!$ok && $err =~ /duplicate key/, "$name - and one of its own month");

    # an update that moves an event to the next month
    sq("UPDATE sophon_events SET doc = '" . doc('l-1', $m1 + 7, 'cam-b', 1,
                                               'p2') . "' WHERE id = 'l-1'");
    is(sq("SELECT tableoid::regclass || ' ' || ts || ' ' || device_id"
         . " FROM sophon_events WHERE id = 'l-1'"),
       "$months[1] " . ($m1 + 7) . " cam-b",
       "$name - an update moves the event to its new month");

    is(totals_differ([$m0, $m1], [0, $m1 + 10]), '',
       "$name - every total is count(*)");
}

# the expiries of TEST 2, each after the events are made again: [name,
# before], and which events must stay
sub scenario_expire_edges {
    my ($block) = @_;
    my $name = $block->name;

    my $m0 = month_start(0);

    # the spacing of the doubles around it: 2^-22 s under 2^31 s
    my $ulp = 2 ** (int(log($m0) / log(2)) - 52);

    for my $case (['the first second of the month', 0],
                  ['a microsecond before it', -0.000001],
                  ['a microsecond after it', 0.000001],
                  ['an ulp before it', -$ulp],
                  ['an ulp after it', $ulp],
                  ['an hour and a half into it', 5400],
                  ['the month before, at its middle', -86400 * 14],
                  ['past every month', 86400 * 200]) {
        my ($what, $delta) = @$case;

        sq('TRUNCATE sophon_events');
        sq("SELECT sophon_events_add_months((date_trunc('month', now() AT"
          . " TIME ZONE 'UTC') - interval '3 months')::date, now()::date)");

        # events around the month's start, the months before, the default
        my @ts = ($m0 - 0.000001, $m0 - $ulp, $m0, $m0 + $ulp,
                  $m0 + 0.000001,
                  $m0 + 3599.999999, $m0 + 3600, $m0 + 5400,
                  $m0 - 86400 * 14, $m0 - 86400 * 40, $m0 - 86400 * 70,
                  $m0 + 86400 * 100, 1000.25, -5, $m0 + 86400 * 3000);
        my $i = 0;
        insert(map { doc('x-' . $i++, $_, $i % 2 ? 'cam-a' : 'cam-b',
                          1 + $i % 3, 'p' . $i % 4) } @ts);

        my $before = num($m0 + $delta);
        my $months_before = sq("SELECT count(*) FROM sophon_events_months() m"
                              . " WHERE sophon_events_month_start((m.month"
                              . " + interval '1 month')::date) <= $before");
        my $want = sq("SELECT count(*) FROM sophon_events WHERE ts < $before");

        my ($parts, $gone) = split /\t/,
            sq("SELECT * FROM sophon_events_expire($before)");

        is($gone, $want, "$name - $what: the events before it go ($gone)");
        is($parts, $months_before, "$name - $what: the months wholly before"
                                   . " it are dropped ($parts)");
        is(sq("SELECT count(*) FROM sophon_events WHERE ts < $before"), 0,
           "$name - $what: none is left before it");
        is(totals_differ([$m0 - 0.000001, $m0 + 3600], [$m0 - 86400 * 15,
                          $m0 + 86400 * 200], [-10, 2000]), '',
           "$name - $what: every total is count(*)");
        is(sq("SELECT count(*) FROM sophon_event_deletions"), 0,
           "$name - $what: no deletion is streamed");
    }

    # the module reads the partitioned table: its total is count(*)
    my $r = http_request('per_page=3');
    like($r->{body}, qr/"total_count":\Q${\ sq('SELECT count(*) FROM sophon_events')}\E\b/,
         "$name - the list's total is count(*)");
}

sub scenario_million {
    my ($block) = @_;
    my $name = $block->name;
    my $old = month_start(-2);

    sq('TRUNCATE sophon_events');
    sq("SELECT sophon_events_add_months((date_trunc('month', now() AT"
      . " TIME ZONE 'UTC') - interval '2 months')::date, now()::date)");

    # a million events in the month two months ago, made without the
    # triggers (as a restore would) and counted by the recount; and some
    # in the months after it
    my ($ok, $out, $err) = SophonTest::psql_script(<<"_SQL_");
\\c $Db
SET session_replication_role = replica;
INSERT INTO sophon_events (doc, id, ts, identity_id, identity_name,
       person_type, device_id)
SELECT json_build_object('_id', 'm-' || i, 'timestamp', $old + i * 2.5),
       'm-' || i, $old + i * 2.5, 'p' || i % 50, 'N p' || i % 50,
       1 + i % 3, 'cam-' || i % 8
  FROM generate_series(1, 1000000) i;
RESET session_replication_role;
SELECT sophon_events_recount();
_SQL_
    ok($ok, "$name - a month of 1,000,000 events") or diag($err);
    insert(map { doc("n-$_", month_start(-1) + $_ * 3600, 'cam-a', 1, 'p1') }
           1 .. 50);
    # a month long past has been vacuumed (its hint bits set) long before
    sq('VACUUM ANALYZE sophon_events');

    my $parts = partitions();
    my $month = (split / /, $parts)[0];
    is(sq("SELECT count(*) FROM $month"), 1000000, "$name - in $month");

    # readers compare the total with count(*) all along
    my $set = start_clients(2, sub {
        my ($id, $stop) = @_;
        my ($n, @bad) = (0);
        while (!-e $stop) {
            my $r = sq("SELECT sophon_events_total(NULL, NULL, NULL, NULL)"
                      . " - (SELECT count(*) FROM sophon_events)");
            push @bad, $r if $r != 0;
            $n++;
        }
        return { checks => $n, bad => \@bad };
    });
    Time::HiRes::sleep(0.5);

    my $wal0 = sq('SELECT pg_current_wal_insert_lsn()');
    my $t0 = now();
    my ($dropped, $gone) = split /\t/,
        sq('SELECT * FROM sophon_events_expire(' . month_start(-1) . ')');
    my $took = now() - $t0;
    my $wal = sq("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$wal0')");

    Time::HiRes::sleep(0.5);
    my $res = stop_clients($set, 30);

    is($gone, 1000000, "$name - the million are gone");
    is($dropped, 1, "$name - in one partition");
    is(sq("SELECT to_regclass('$month') IS NULL"), 't',
       "$name - $month is dropped");
    ok($wal < 4 * 1024 * 1024, "$name - written: $wal bytes of WAL, not the"
                               . " rows (a DELETE writes hundreds of MB)");
    diag(sprintf "$name: expiring the month took %.3f s", $took);

    ok($res->{checks} > 2, "$name - readers checked meanwhile"
                           . " ($res->{checks} times)");
    is_deeply($res->{bad}, [], "$name - every reader saw total = count(*)");
    is(totals_differ([month_start(-1), month_start(0)]), '',
       "$name - every total is count(*)");
}

sub scenario_migrate {
    my ($block) = @_;
    my $name = $block->name;

    # an unpartitioned table with events: the previous release's, brought
    # to this one's columns by this schema (which partitions only an
    # empty table)
    fresh_db($OldDb);
    run_file($OldDb, 't/fixtures/schema-previous.sql');
    my @docs = map { doc("o-$_", 1607400000 + $_ * 7200.5, "cam-$_",
                          1 + $_ % 2, "p$_") } 1 .. 40;
    sq("INSERT INTO sophon_events (doc) VALUES "
      . join(',', map { "('$_')" } @docs), $OldDb);
    run_file($OldDb, 'sql/schema.sql', 'sql/roles.sql');
    is(sq("SELECT relkind FROM pg_class WHERE oid = 'sophon_events'::regclass",
         $OldDb), 'r', "$name - a table with events stays as it is");

    my $before = sq("SELECT count(*), sophon_events_total(NULL, NULL, NULL,"
                   . " NULL), string_agg(id, ',' ORDER BY id)"
                   . " FROM sophon_events", $OldDb);

    my ($n) = split /\t/, sq('SELECT * FROM sophon_events_partition()',
                           $OldDb);
    is($n, 40, "$name - sophon_events_partition() copied the 40 events");
    is(sq("SELECT relkind FROM pg_class WHERE oid = 'sophon_events'::regclass",
         $OldDb), 'p', "$name - the table is partitioned");
    is(sq("SELECT count(*), sophon_events_total(NULL, NULL, NULL, NULL),"
         . " string_agg(id, ',' ORDER BY id) FROM sophon_events", $OldDb),
       $before, "$name - the same events and totals");

    is(sq("SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY 1)"
         . " FROM pg_index WHERE indrelid = 'sophon_events'::regclass",
         $OldDb),
       sq("SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY 1)"
         . " FROM pg_index WHERE indrelid = 'sophon_events'::regclass",
         $Db), "$name - the indexes of a new table");
    is(sq("SELECT string_agg(tgname, ' ' ORDER BY 1) FROM pg_trigger"
         . " WHERE tgrelid = 'sophon_events'::regclass", $OldDb),
       sq("SELECT string_agg(tgname, ' ' ORDER BY 1) FROM pg_trigger"
         . " WHERE tgrelid = 'sophon_events'::regclass", $Db),
       "$name - the triggers of a new table");

    # the triggers work: an insert is counted; the roles keep their rights
    sq("INSERT INTO sophon_events (doc) VALUES ('"
      . doc('o-new', month_start(0) + 1, 'cam-1', 1, 'p1') . "')", $OldDb);
    is(sq('SELECT sophon_events_total(NULL, NULL, NULL, NULL)', $OldDb), 41,
       "$name - a new event is counted");
    is(scalar @{ psql_rows('SELECT count(*) FROM sophon_events',
                           conninfo($OldDb, 'sophon_reader')) }, 1,
       "$name - the reader reads it");
    my ($ok, $out, $err) = SophonTest::psql_script(
        "\\c $OldDb\nINSERT INTO sophon_events (doc) VALUES ('"
        . doc('o-w', month_start(0) + 2, 'cam-1', 1, 'p1') . "')",
        'sophon_writer');
    ok($ok, "$name - the writer writes") or diag($err);
    local $Db = $OldDb;
    is(totals_differ([1607400000, 1607500000]), '',
       "$name - every total is count(*)");
}

sub scenario_tool {
    my ($block) = @_;
    my $name = $block->name;
    my $tool = 'util/sophon-events-expire';
    my $c = conninfo($Db);

    sq('TRUNCATE sophon_events');
    insert(doc('t-1', 1000, 'cam-a', 1, 'p1'),
           doc('t-2', month_start(0) + 1, 'cam-a', 1, 'p1'));

    my $out = `$tool --keep 30d --dry-run '$c' 2>&1`;
    like($out, qr/would remove the events before .* UTC: 1 events/,
         "$name - --dry-run says what would go") or diag($out);
    is(sq('SELECT count(*) FROM sophon_events'), 2, "$name - and removes"
                                                   . " nothing");

    $out = `$tool --keep 30d '$c' 2>&1`;
    is($?, 0, "$name - --keep 30d runs") or diag($out);
    like($out, qr/removed the events before .* UTC: 1 events/,
         "$name - and says what went");
    is(sq("SELECT string_agg(id, ',') FROM sophon_events"), 't-2',
       "$name - the old event is gone");

    $out = `$tool --keep 30x '$c' 2>&1`;
    is($? >> 8, 2, "$name - a bad duration is refused");
    like($out, qr/bad duration/, "$name - and said so");
    $out = `$tool '$c' 2>&1`;
    is($? >> 8, 2, "$name - --keep is required");
}

run_tests();

__DATA__

=== TEST 1: a new table is partitioned by month; inserts, _id across months, updates across months
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: layout
--- no_error_log
[error]



=== TEST 2: expiry at a month's first second, a microsecond and an ulp either side, inside and past the months: exact, totals = count(*)
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: expire_edges
--- timeout: 60
--- no_error_log
[error]



=== TEST 3: a month of a million events expires by dropping its partition; readers never see totals differ from count(*)
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: million
--- timeout: 300
--- no_error_log
[error]



=== TEST 4: an unpartitioned table with events is converted by sophon_events_partition()
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: migrate
--- timeout: 60
--- no_error_log
[error]



=== TEST 5: util/sophon-events-expire
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: tool
--- timeout: 60
--- no_error_log
[error]
