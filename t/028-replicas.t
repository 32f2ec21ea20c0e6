# vi:filetype=perl

# Several servers of one PostgreSQL cluster (README, "Replicas and
# failover"), on a real primary and two streaming standbys that this file
# makes with util/sophon-pg replicas (ports $TEST_NGINX_SOPHON_PGPORT + 20,
# + 21, + 22), loaded with the fixtures:
#
#   TEST 1   reads go to both standbys, round robin, never to the primary;
#            every page is the fixtures' page, its total exact
#   TEST 2   a standby killed (SIGKILL of its postmaster) under load from 6
#            clients: no request hangs, failures are 503s of requests in
#            flight at the kill, none from a second after; it is started
#            again and takes reads again by itself
#   TEST 3   both standbys down: reads go to the primary; back up, the
#            standbys take them again
#   TEST 4   max_lag=1s: a standby whose replay is paused while the
#            primary commits is left out, and taken again once it replays;
#            a standby's total is count(*) of its own snapshot
#   TEST 5   the primary stopped, a standby promoted: the module finds the
#            new roles; a DELETE goes to the new primary, reads to the
#            standby left
#
# The cluster is destroyed at the end; SOPHON_028_KEEP=1 keeps it.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);
use File::Spec ();
use JSON::PP ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();
master_on();
workers(2);
log_level('info');

$SophonClient::AppName = 'sophon_028_check';

my $MainPid = $$;
my $Json = JSON::PP->new->utf8->canonical;
my $SophonPg = File::Spec->rel2abs('util/sophon-pg');

our $Dir = File::Spec->rel2abs(($ENV{TEST_NGINX_SOPHON_PGDIR}
            or die "TEST_NGINX_SOPHON_PGDIR is not set: run with"
                   . " util/run-tests\n") . '.replicas');
our $Port = $ENV{TEST_NGINX_SOPHON_PGPORT} + 20;
our @Ports = ($Port, $Port + 1, $Port + 2);    # primary, standby1, standby2
our @Conninfo;                                 # the superuser's, each

sub pg {
    my (@args) = @_;
    my $out = `$SophonPg @args 2>&1`;
    die "sophon-pg @args failed: $out\n" if $?;
    return $out;
}

sub on {
    my ($i, $sql) = @_;
    return psql_rows($sql, $Conninfo[$i]);
}

# the primary's current WAL position replayed by standby $i
sub replayed {
    my ($i) = @_;
    my $lsn = on(0, 'SELECT pg_current_wal_lsn()')->[0][0];
    my ($ok) = wait_until(20, 0.05, sub {
        on($i, "SELECT pg_last_wal_replay_lsn() >= '$lsn'")->[0][0] eq 't'
    });
    die "standby$i did not replay $lsn\n" if !$ok;
}

sub setup {
    @Conninfo = grep { /port=/ } split /\n/, pg('replicas', $Dir, $Port, 2);
    die "replicas: @Conninfo\n" if @Conninfo != 3;

    for my $f ('sql/schema.sql', 'sql/roles.sql') {
        system('psql', $Conninfo[0], '-X', '-q', '-v', 'ON_ERROR_STOP=1',
               '-f', $f) == 0 or die "$f failed\n";
    }

    on(0, 'TRUNCATE sophon_events');
    system('util/sophon-events-load', $Conninfo[0],
           $ENV{TEST_NGINX_FIXTURES}) == 0 or die "load failed\n";
    replayed($_) for 1, 2;

    for my $i (0 .. 2) {
        ($ENV{"TEST_NGINX_R$i"} = $Conninfo[$i])
            =~ s/\buser=postgres\b/user=sophon_reader/;
        ($ENV{"TEST_NGINX_D$i"} = $Conninfo[$i])
            =~ s/\buser=postgres\b/user=sophon_deleter/;
    }
}

SophonTest::fixtures();
setup();

END {
    if ($$ == $MainPid) {
        local $?;
        stop_all_clients();
        `$SophonPg destroy $Dir 2>&1` if !$ENV{SOPHON_028_KEEP};
    }
}

use_scenarios(\&stop_helpers);

our $Config = <<'_EOC_';
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_R0" fail_timeout=2s;
        sophon_events_db "$TEST_NGINX_R1" fail_timeout=2s;
        sophon_events_db "$TEST_NGINX_R2" fail_timeout=2s;
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_D0" fail_timeout=2s;
        sophon_events_delete_db "$TEST_NGINX_D1" fail_timeout=2s;
        sophon_events_delete_db "$TEST_NGINX_D2" fail_timeout=2s;
        add_header X-Server $sophon_events_server always;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", $Config) if !defined $block->config;
});


# --------------------------------------------------------------------------
# Requests

# one request: {status, port (of the server that answered), total, took,
# body}
sub ask {
    my ($qs, %opt) = @_;
    my $t0 = now();
    my $r = http_request($qs, timeout => 10, %opt);
    my ($port) = ($r->{headers}{'x-server'} // '') =~ /:(\d+)$/;
    my $d = eval { $Json->decode($r->{body}) } // {};

    return { status => $r->{status} // 0, port => $port // 0,
             total => ref $d eq 'HASH' && $d->{pagination}
                      ? $d->{pagination}{total_count} : undef,
             took => now() - $t0, body => $r->{body}, data => $d };
}

# how many of $n reads each server answered: { port => count }, and the
# answers that were not a 200
sub reads {
    my ($n, $qs) = @_;
    my (%by, @bad);

    for (1 .. $n) {
        my $r = ask($qs);
        $by{ $r->{port} }++;
        push @bad, "$r->{status} from $r->{port}: $r->{body}"
            if $r->{status} != 200;
    }

    return (\%by, \@bad);
}

sub served { my ($by) = @_; join ', ', map { "$_: $by->{$_}" } sort keys %$by }

# the fixtures' total, read from the primary when it was loaded
our $Total;

sub fixtures_total {
    $Total //= on(0, 'SELECT count(*) FROM sophon_events')->[0][0];
    return $Total;
}

# waits until standby $i answers reads again (a read a tenth of a second)
sub reads_back {
    my ($i, $timeout) = @_;
    my ($ok, $took) = wait_until($timeout, 0.1, sub {
        ask()->{port} == $Ports[$i]
    });
    return ($ok, $took);
}


# --------------------------------------------------------------------------
# Scenarios

sub scenario_spread {
    my ($block) = @_;
    my $name = $block->name;

    # each worker's probe has learned the roles within milliseconds
    Time::HiRes::sleep(0.5);

    my ($by, $bad) = reads(60);
    is_deeply($bad, [], "$name - every read is a 200");
    ok(!$by->{$Ports[0]}, "$name - no read went to the primary ("
                          . served($by) . ')');
    ok(($by->{$Ports[1]} // 0) >= 20 && ($by->{$Ports[2]} // 0) >= 20,
       "$name - both standbys take reads, round robin (" . served($by) . ')');

    # every page is the fixtures' page: the standbys hold what was loaded
    my $bad_pages = 0;
    for my $qs (undef, 'page=3&per_page=7', 'userType=2', 'streams=cam-1') {
        my $want = SophonTest::expected($qs // '');
        for (1 .. 4) {
            my $r = ask($qs);
            $bad_pages++ if $r->{status} != 200
                || !Test::More::eq_array(
                       [ map { $_->{_id} } @{ $r->{data}{data} || [] } ],
                       [ map { $_->{_id} } @{ $want->{events} } ])
                || $r->{total} != $want->{pagination}{total_count};
        }
    }
    is($bad_pages, 0, "$name - each page and total is the fixtures'");
    is(ask()->{total}, fixtures_total(), "$name - the total is count(*)");
}

# 6 clients read while each action [AT, CODE] runs in the parent AT
# seconds after the start, and for $tail seconds after the last one has
# returned; each read: [sent, took, status, port], and each action's
# [start, end] by its AT (times from the start)
sub under_load {
    my ($tail, $actions) = @_;
    my $start = now();

    my $set = start_clients(6, sub {
        my ($id, $stop) = @_;
        my @r;
        while (!-e $stop) {
            my $t = now();
            my $a = ask();
            push @r, [ $t - $start, $a->{took}, $a->{status}, $a->{port} ];
        }
        return { reads => \@r };
    });

    my %when;
    for my $act (@$actions) {
        my ($at, $code) = @$act;
        my $wait = $start + $at - now();
        Time::HiRes::sleep($wait) if $wait > 0;
        my $t = now() - $start;
        $code->();
        $when{$at} = [ $t, now() - $start ];
    }

    Time::HiRes::sleep($tail);

    my $res = stop_clients($set, 15);
    return ($res, \%when);
}

sub scenario_kill_standby {
    my ($block) = @_;
    my $name = $block->name;
    my $s1 = "$Dir/standby1";

    # (a backend busy when its postmaster dies answers what it has; the
    # kill returns when they have all gone)
    my ($res, $when) = under_load(3, [ [ 1.5, sub { pg('kill', $s1) } ] ]);
    my ($kill, $gone) = @{ $when->{1.5} };
    my @reads = @{ $res->{reads} || [] };

    ok(@reads > 50, "$name - the clients read (" . @reads . " reads)");
    is($res->{killed}, 0, "$name - every client stopped when told");

    my @slow = grep { $_->[1] > 3 } @reads;
    is(scalar @slow, 0, "$name - no read took more than 3 s");

    my @bad = grep { $_->[2] != 200 } @reads;
    my @other = grep { $_->[2] != 503 } @bad;
    is(scalar @other, 0, "$name - every failure is a 503 ("
                         . join(', ', map { $_->[2] } @other) . ')');

    my @late = grep { $_->[0] > $gone + 1 } @bad;
    is(scalar @late, 0, "$name - no failure from a second after the kill "
                        . "(at $kill to $gone s: " . join(', ', map {
                            sprintf '%.3f %d', $_->[0], $_->[2] } @late)
                        . ')');

    ok(@bad <= 6, "$name - at most the reads in flight failed (" . @bad
                  . ' failed)');

    my @s1 = grep { $_->[3] == $Ports[1] && $_->[0] > $gone } @reads;
    is(scalar @s1, 0, "$name - the killed standby answers nothing after");

    my @after = grep { $_->[0] > $gone + 1 } @reads;
    my @s2 = grep { $_->[3] == $Ports[2] } @after;
    ok(@s2 > 10 && @s2 == @after, "$name - the other standby takes the"
                                  . " reads (" . @s2 . " of " . @after
                                  . " from " . sprintf('%.2f', $gone + 1)
                                  . " s)");

    my @p = grep { $_->[3] == $Ports[0] } @reads;
    is(scalar @p, 0, "$name - the primary takes none");

    # back: it takes reads again by itself once its fail_timeout is over
    pg('start', $s1, $Ports[1]);
    my ($ok, $took) = reads_back(1, 10);
    ok($ok, "$name - the restarted standby takes reads again ("
            . sprintf('%.1f s', $took // 0) . ')');

    my ($by, $bad2) = reads(20);
    is_deeply($bad2, [], "$name - then every read is a 200");
    ok($by->{$Ports[1]} && $by->{$Ports[2]} && !$by->{$Ports[0]},
       "$name - both standbys again, not the primary (" . served($by) . ')');
}

sub scenario_both_down {
    my ($block) = @_;
    my $name = $block->name;

    pg('stop', "$Dir/standby$_") for 1, 2;

    # the first reads find them down (connections refused: another
    # server is tried), then they are left out
    my ($by, $bad) = reads(20);
    is_deeply($bad, [], "$name - every read is a 200");
    is_deeply($by, { $Ports[0] => 20 }, "$name - all from the primary ("
                                        . served($by) . ')');

    pg('start', "$Dir/standby$_", $Ports[$_]) for 1, 2;
    replayed($_) for 1, 2;

    my ($ok) = wait_until(10, 0.2, sub {
        my ($b) = reads(6);
        !$b->{$Ports[0]} && $b->{$Ports[1]} && $b->{$Ports[2]}
    });
    ok($ok, "$name - back up, the standbys take the reads again");
}

sub scenario_lag {
    my ($block) = @_;
    my $name = $block->name;
    Time::HiRes::sleep(0.5);

    my ($by) = reads(10);
    ok($by->{$Ports[1]} && $by->{$Ports[2]}, "$name - both standbys read "
                                              . "first (" . served($by) . ')');

    on(1, 'SELECT pg_wal_replay_pause()');

    my $ok = eval {
        my $doc = '{"_id":"lag-1","timestamp":1200000000,"common":'
                  . '{"ep_info":{"device_id":"lag-cam"}}}';
        on(0, "INSERT INTO sophon_events (doc) VALUES ('$doc')");

        # left out once its lag passes 1 s
        my ($gone, $took) = wait_until(6, 0.1, sub {
            my ($b) = reads(4);
            !$b->{$Ports[1]}
        });
        ok($gone, "$name - the paused standby is left out (after "
                  . sprintf('%.1f s', $took) . ')');

        ($by) = reads(10);
        is_deeply($by, { $Ports[2] => 10 }, "$name - the other standby "
                                             . "takes every read ("
                                             . served($by) . ')');

        my $r = ask('streams=lag-cam');
        is($r->{total}, 1, "$name - it has the new event");
        1;
    };
    my $err = $@;

    on(1, 'SELECT pg_wal_replay_resume()');
    die $err if !$ok;

    my ($back, $took) = wait_until(6, 0.1, sub {
        my ($b) = reads(4);
        $b->{$Ports[1]}
    });
    ok($back, "$name - replaying again, it takes reads again (after "
              . sprintf('%.1f s', $took // 0) . ')');

    # each standby's total is count(*) of its own snapshot
    replayed($_) for 1, 2;
    my $count = on(0, 'SELECT count(*) FROM sophon_events')->[0][0];
    for (1 .. 6) {
        my $r = ask();
        is($r->{total}, $count, "$name - the total from $r->{port} is "
                                . "count(*)");
    }

    on(0, "DELETE FROM sophon_events WHERE id = 'lag-1'");
    replayed($_) for 1, 2;
}

sub scenario_failover {
    my ($block) = @_;
    my $name = $block->name;

    my $doc = '{"_id":"failover-1","timestamp":1200000001,"common":'
              . '{"ep_info":{"device_id":"failover-cam"}}}';
    on(0, "INSERT INTO sophon_events (doc) VALUES ('$doc')");
    replayed($_) for 1, 2;

    pg('stop', "$Dir/primary");
    pg('promote', "$Dir/standby1");

    # each worker's probe sees standby1's new role within a second
    my ($ok, $took) = wait_until(10, 0.2, sub {
        my ($b) = reads(10);
        !$b->{$Ports[1]} && $b->{$Ports[2]}
    });
    ok($ok, "$name - reads leave the promoted server (after "
            . sprintf('%.1f s', $took // 0) . ')');

    my ($by, $bad) = reads(10);
    is_deeply($bad, [], "$name - every read is a 200");
    is_deeply($by, { $Ports[2] => 10 }, "$name - reads go to the standby "
                                         . "left (" . served($by) . ')');

    my $r = ask('event_id_list=failover-1', method => 'DELETE');
    is($r->{status}, 200, "$name - the DELETE is a 200: $r->{body}");
    is($r->{port}, $Ports[1], "$name - the DELETE went to the new primary");
    is_deeply($r->{data}{data}{deleted}, ['failover-1'],
              "$name - it deleted the event");
    is(on(1, "SELECT count(*) FROM sophon_events WHERE id = 'failover-1'")
       ->[0][0], 0, "$name - the new primary has it no more");
}

run_tests();

__DATA__

=== TEST 1: reads go to both standbys, never the primary; pages and totals exact
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: spread
--- timeout: 30
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 2: a standby killed under load: no hang, only in-flight 503s, none after a second; it comes back by itself
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: kill_standby
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: both standbys down: reads go to the primary; back up, to the standbys again
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: both_down
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: max_lag: a standby behind by more is left out, then taken again; a standby's total is its count(*)
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_R0";
        sophon_events_db "$TEST_NGINX_R1" max_lag=1s;
        sophon_events_db "$TEST_NGINX_R2" max_lag=1s;
        add_header X-Server $sophon_events_server always;
    }
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: lag
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 5: the primary stopped and a standby promoted: new roles found, the DELETE goes to the new primary
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?userType=9
--- error_code: 400
--- scenario: failover
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]
