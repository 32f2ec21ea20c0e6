# vi:filetype=perl

# A client that leaves, or a HEAD, costs no backend: a request whose client
# went away mid-query or mid-answer lets its connection read to the end of
# the pipeline (drain) and gives it back to the pool, and a HEAD asks the
# database for the total only.  Measured with pg_stat_database.sessions of
# the test database (every session ever opened to it), read from the
# "postgres" database so that the checks are not sessions of what they
# count: with connections=4, it may rise by 4 at most over thousands of
# aborted requests and HEADs.
#
# TEST 1 makes SOPHON_016_ABORTS aborted requests of each kind (default
# 1000: closed right after sending; after the status line; after 64 KB of
# a 1.2 MB page; reset with SO_LINGER 0 after 16 KB of one), then
# SOPHON_016_HEADS HEADs (default 1000), from 4 forked clients, bounded by
# SOPHON_016_SECONDS (default 70) for the aborts: at least a quarter of
# each kind must be made.  TEST 2 compares HEAD with GET and reads
# $sophon_events_rows and $sophon_events_total from the access log.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();

$SophonClient::AppName = 'sophon_016_check';

our $Aborts = $ENV{SOPHON_016_ABORTS} || 1000;
our $Heads = $ENV{SOPHON_016_HEADS} || 1000;
our $Seconds = $ENV{SOPHON_016_SECONDS} || 70;
our @Kinds = qw(sent status body rst);

# SophonClient's stop_helpers: after each scenario, and at the end
use_scenarios(\&stop_helpers);

# the fixtures are read once, before any client is forked
SophonTest::fixtures();

# one aborted request of a kind; '' or what was wrong
sub abort_one {
    my ($kind, $qs) = @_;
    my $c = http_send($qs) or return "$qs: connect: $!";

    if ($kind eq 'sent') {
        close $c->{sock};
        return '';
    }

    my $want = { status => 0, body => 65_536, rst => 16_384 }->{$kind};
    http_pump([$c], 10, sub {
        my $i = index $c->{buf}, "\r\n";
        $i >= 0 && length($c->{buf}) >= $want
    });
    my $why = $c->{buf} =~ m{^HTTP/1\.1 200 } ? ''
            : "$qs ($kind): not a 200: " . substr($c->{buf}, 0, 40);

    $kind eq 'rst' ? close_rst($c) : close $c->{sock};
    return $why;
}

# one HEAD, read whole; '' or what was wrong
sub head_one {
    my ($qs) = @_;
    my $c = http_send($qs, method => 'HEAD') or return "$qs: connect: $!";
    http_pump([$c], 10);
    return "$qs: no end in 10 s" if !$c->{eof};

    my $end = index $c->{buf}, "\r\n\r\n";
    return "$qs: no header" if $end < 0;
    return "$qs: not a 200: " . substr($c->{buf}, 0, 40)
        if $c->{buf} !~ m{^HTTP/1\.1 200 };
    return "$qs: " . (length($c->{buf}) - $end - 4) . " bytes of body"
        if length $c->{buf} != $end + 4;
    return '';
}

# TEST 1
sub scenario_sessions {
    my ($block) = @_;
    my $name = $block->name;

    my $before = db_sessions();
    ok(defined $before, "$name - pg_stat_database.sessions: $before");

    my $deadline = now() + $Seconds;
    my $set = start_clients(4, sub {
        my ($id, $stop) = @_;
        my (%st, @fail);
        my $n = int(($Aborts * @Kinds + 3) / 4);
        for my $i (0 .. $n - 1) {
            last if now() > $deadline || -e $stop;
            my $kind = $Kinds[($i + $id) % @Kinds];
            my $pp = $kind =~ /^(?:body|rst)$/ ? 100 : (1, 10, 100)[$i % 3];
            my $why = abort_one($kind, "per_page=$pp&page=" . ($i % 5)
                                       . "&_=a$id-$i");
            $st{$kind}++;
            push @fail, $why if $why ne '' && @fail < 10;
        }
        return { %st, failures => \@fail };
    });
    wait_clients($set, $Seconds + 20);
    my $res = stop_clients($set, 5);

    my @short;
    for my $kind (@Kinds) {
        my $least = int($Aborts / 4);
        push @short, "$kind: " . ($res->{$kind} // 0)
            if ($res->{$kind} // 0) < $least;
    }
    diag(sprintf "$name: aborted requests in %.1f s: %s", $res->{took},
         join ', ', map { "$_ " . ($res->{$_} // 0) } @Kinds);
    is("@short", '', "$name - enough aborted requests of each kind");
    is(scalar @{ $res->{failures} }, 0, "$name - each answered a 200 until"
                                        . " its client left")
        or diag(join "\n", @{ $res->{failures} });

    my $mid = settled_sessions($name, 'the aborts');
    ok(defined $mid && $mid - $before <= 4,
       "$name - over the aborts, pg_stat_database.sessions rose by at most"
       . " the pool's 4 (by " . (($mid // 0) - $before) . ")");

    $set = start_clients(4, sub {
        my ($id, $stop) = @_;
        my ($n, @fail) = (0);
        for my $i (1 .. int(($Heads + 3) / 4)) {
            last if -e $stop;
            my $why = head_one("per_page=" . (1, 10, 1000)[$i % 3]
                               . "&page=" . ($i % 7) . "&_=h$id-$i");
            $n++;
            push @fail, $why if $why ne '' && @fail < 10;
        }
        return { heads => $n, failures => \@fail };
    });
    wait_clients($set, 60);
    $res = stop_clients($set, 5);

    diag(sprintf "$name: %d HEADs in %.1f s", $res->{heads} // 0,
         $res->{took});
    is($res->{heads} // 0, 4 * int(($Heads + 3) / 4), "$name - every HEAD"
                                                     . " made");
    is(scalar @{ $res->{failures} }, 0, "$name - each HEAD a 200 without a"
                                        . " body")
        or diag(join "\n", @{ $res->{failures} });

    my $after = settled_sessions($name, 'the HEADs');
    ok(defined $after && $after - $mid <= 4,
       "$name - over the HEADs, pg_stat_database.sessions rose by at most"
       . " the pool's 4 (by " . (($after // 0) - ($mid // 0)) . ")");
    ok(defined $after && $after - $before <= 4,
       "$name - over it all, pg_stat_database.sessions rose by at most the"
       . " pool's 4 (by " . (($after // 0) - $before) . ")");
}

# the sessions once the connections have settled (drained, back in the
# pool) and those that ended have reported theirs
sub settled_sessions {
    my ($name, $what) = @_;
    my ($idle) = wait_until(20, 0.2, sub {
        !grep { $_->{state} ne 'idle' } @{ module_backends() }
    });
    ok($idle, "$name - every backend idle after $what")
        or diag(describe_backends(module_backends()));
    my $b = module_backends();
    ok(@$b <= 4, "$name - at most 4 backends after $what (" . @$b . ")");

    Time::HiRes::sleep(1);
    return db_sessions();
}

# TEST 2: HEAD and GET, and the access log
sub scenario_head {
    my ($block) = @_;
    my $name = $block->name;
    my $log = server_root() . '/logs/rows.log';

    my $f = SophonTest::fixtures()->[3]{doc};
    my $dev = SophonTest::uri($f->{common}{ep_info}{device_id});
    my @queries = (
        'per_page=10&page=0',
        'per_page=1000&page=0',
        "userType=1,4&streams=$dev&per_page=5&page=1",
        'name=a&score_min=0.5&per_page=3',
        'per_page=10&page=100000',
        'per_page=0',
    );

    for my $k (0 .. $#queries) {
        my $qs = "$queries[$k]&_=q$k";
        my $g = http_send($qs) or die "connect: $!\n";
        http_pump([$g], 10);
        my $h = http_send($qs, method => 'HEAD') or die "connect: $!\n";
        http_pump([$h], 10);

        my $gr = parse_http($g->{buf});
        my $hr = parse_http($h->{buf});
        is($hr->{status}, $gr->{status}, "$name - HEAD ?$qs: the GET's status"
                                         . " ($gr->{status})");
        is($hr->{headers}{'content-type'} // '', 'application/json;'
           . ' charset=utf-8', "$name - ... its Content-Type");
        is($gr->{headers}{'content-type'} // '', 'application/json;'
           . ' charset=utf-8', "$name - ... as the GET's");
        my $end = index $h->{buf}, "\r\n\r\n";
        ok($h->{eof} && $end >= 0 && length $h->{buf} == $end + 4,
           "$name - ... and no body");
        is(check_page($g->{buf}, $qs), '', "$name - the GET is right")
            if $gr->{status} == 200;

        next if $gr->{status} != 200;

        my $want = SophonTest::expected($queries[$k]);
        my ($gl, $hl);
        wait_until(3, 0.1, sub {
            my @l = @{ log_since($log, 0) };
            ($gl) = grep { /^GET \S*_=q$k / } @l;
            ($hl) = grep { /^HEAD \S*_=q$k / } @l;
            $gl && $hl;
        });
        my ($grows, $gtotal) = ($gl // '') =~ / (\S+) (\S+)$/;
        my ($hrows, $htotal) = ($hl // '') =~ / (\S+) (\S+)$/;
        is($grows, scalar @{ $want->{events} },
           "$name - GET ?$qs: \$sophon_events_rows is the page's events");
        is($gtotal, $want->{pagination}{total_count},
           "$name - ... \$sophon_events_total the total");
        is($hrows, 0, "$name - HEAD ?$qs: \$sophon_events_rows is 0: no"
                      . " document was asked for");
        is($htotal, $gtotal, "$name - ... \$sophon_events_total is the"
                             . " GET's");
    }
}

run_tests();

__DATA__

=== TEST 1: connections=4: thousands of clients that leave at every point, and a thousand HEADs, open at most 4 sessions
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=4 queue=64 queue_timeout=10s;
    }
--- log_level: info
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=10&page=3"]
--- error_code eval
[200, 200]
--- scenario: sessions
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal



=== TEST 2: HEAD answers what GET does, without a body, and asks the database for the total only
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config
    log_format sophon_rows '$request_method $request_uri $status $sophon_events_rows $sophon_events_total';
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2;
        access_log $TEST_NGINX_SERVER_ROOT/logs/rows.log sophon_rows;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "HEAD /SophonFace/api/events?per_page=2&userType=4"]
--- error_code eval
[200, 200]
--- scenario: head
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
