# vi:filetype=perl

# A slow client never holds a database connection: the module reads the
# whole result at the database's speed, keeps what the client has not taken
# in its memory buffers (sophon_events_buffers), then in a temporary file
# (sophon_events_temp_path, default the location's client_body_temp_path),
# and gives the connection back to the pool with the last row.  Past
# sophon_events_max_temp_file_size (0: no file) the answer is cut, the error
# log names that directive, and the connection still goes back to the pool.
# $sophon_events_db_time is the database's time, not the client's.
#
# Scenarios (SophonClient's use_scenarios; --- scenario: NAME) use raw
# sockets with a small SO_RCVBUF, read at a fixed rate.  Pages carry their
# feature vectors: about 12 KB an event, so per_page=1000 is about 12 MB
# (t/fixtures and the 1,500 generated events).  A smaller page would not
# do: a few hundred KB fit in the sockets' buffers between PostgreSQL,
# nginx and the client (loopback, autotuned), and the old code, which
# stopped pulling rows for a slow client, passed with 600 KB.
#
# The blocks that need the new directives are skipped when nginx -t does not
# know them; TEST 1 fails then, saying so.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();

$SophonClient::AppName = 'sophon_015_check';

# whether the module knows the directives of the temporary file
our ($NewDirectives, $NginxSaid) = nginx_accepts(<<'_EOC_');
    server { location / { sophon_events;
        sophon_events_db "host=127.0.0.1 port=1 dbname=sophon";
        sophon_events_temp_path /tmp 1 2;
        sophon_events_max_temp_file_size 64k; } }
_EOC_

sub temp_dir { server_root() . '/' . $_[0] }

# SophonClient's stop_helpers: after each scenario, and at the end
use_scenarios(\&stop_helpers);

# the fixtures are read once, before any client is forked
SophonTest::fixtures();

# TEST 1: connections=1; one slow client, 20 others served meanwhile.  The
# slow client reads 8 KB/s for 12 s (the others are made then, and the
# backend is watched), then the rest of its 12 MB as fast as it comes, so
# that the file's time stays bounded.
sub scenario_slow_one_connection {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = temp_dir('sophon_body_temp');
    my ($rate, $slowly) = (8192, 12);

    ok($NewDirectives, "$name - nginx knows sophon_events_temp_path and"
                       . " sophon_events_max_temp_file_size")
        or diag($NginxSaid);

    my $pid = sole_backend();
    ok($pid, "$name - one module backend ($pid)");

    my $rss_before = worker_rss();
    my $qs = 'per_page=1000&page=0&_=slow';
    my $slow = http_send($qs, rcvbuf => 4096) or die "connect: $!\n";

    # meanwhile: 4 clients x 5 normal pages, from 1 s on, each timed
    my $set = start_clients(4, sub {
        my ($id, $stop) = @_;
        Time::HiRes::sleep(1);
        my @r;
        for my $i (1 .. 5) {
            last if -e $stop;
            my $q = "per_page=" . (1, 5, 10)[$i % 3] . "&page=$i&_=n$id-$i";
            my $t = now();
            my ($why) = full_request($q, 10);
            push @r, sprintf "%s %.3f %s", $q, now() - $t, $why;
        }
        return { results => \@r };
    });

    # while the slow client reads: the backend and the worker's temp files,
    # sampled from 3 s to 12 s after the request
    my (@states, @held, %seen_file, @rss);
    my $next = now() + 3;
    my $tick = sub {
        return if now() < $next || now() > $slow->{sent} + 12;
        $next = now() + 1;
        push @states, join ',', map { "$_->{pid}:$_->{state}" }
                                @{ module_backends() };
        $seen_file{$_}++ for open_files_under($dir);
        push @rss, worker_rss();
    };

    my $end = slow_read($slow, $rate, $slowly, undef, $tick);
    my $slow_bytes = length $slow->{buf};
    http_pump([$slow], 30) if !$slow->{eof};
    my $took = now() - $slow->{sent};
    wait_clients($set, 30);
    my $res = stop_clients($set, 5);

    # the others
    my @r = @{ $res->{results} || [] };
    is(scalar @r, 20, "$name - 20 other requests made while the slow client"
                      . " reads");
    my @bad = grep { !/^\S+ (\d+\.\d+) $/ || $1 >= 2 } @r;
    is(scalar @bad, 0, "$name - each of them is a whole, right 200 in less"
                       . " than 2 s (queue_timeout is 3 s)")
        or diag(join "\n", @bad);

    # the backend
    ok(@states >= 3, "$name - pg_stat_activity sampled while the slow"
                     . " client reads (" . @states . " samples)");
    my @busy = grep { $_ ne "$pid:idle" } @states;
    is(scalar @busy, 0, "$name - the module's backend is idle while the"
                        . " slow client still reads")
        or diag(join "\n", @states);
    ok(scalar(keys %seen_file), "$name - the worker keeps the rest in a"
                                . " temporary file under $dir")
        or diag("no open file under $dir");

    # a page of 12 MB does not sit in the worker's memory; under ASan or
    # valgrind the resident set also holds their quarantine of freed
    # blocks (each row's result is freed at once), so it says nothing
    my ($rss_max) = sort { $b <=> $a } @rss;
    SKIP: {
        skip "$name - the RSS of a worker under ASan or valgrind", 1
            if $ENV{SOPHON_SANITIZE} || $ENV{TEST_NGINX_USE_VALGRIND};

        ok(defined $rss_max && $rss_max - $rss_before < 4096,
           "$name - the worker's RSS grows by less than 4 MB while it holds"
           . " the 12 MB page for the slow client ($rss_before kB, then at"
           . " most " . ($rss_max // '?') . " kB)");
    }

    # the slow client
    is($end, 'timeout', "$name - the slow client was still reading after"
                        . " $slowly s ($slow_bytes bytes)");
    ok($slow->{eof}, sprintf("$name - then it reads to the end (%.1f s in"
                             . " all)", $took));
    is(check_page($slow->{buf}, $qs), '', "$name - ... and gets its whole,"
                                          . " right page");

    my @left = files_under($dir);
    is("@left", '', "$name - no temporary file left once the request ended");
    is(sole_backend(), $pid, "$name - still the same one backend");
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    return scalar <$fh>;
}

# TEST 2, 3: past the cap the answer is cut, the connection goes back
sub scenario_cap {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = temp_dir('sophon_temp');
    my $elog = (-s errlog()) // 0;

    my $pid = sole_backend();
    ok($pid, "$name - one module backend ($pid)");

    # 8 KB/s for 3 s, then as fast as it comes: a whole page would come
    my $qs = 'per_page=1000&page=0&_=capped';
    my $c = http_send($qs, rcvbuf => 4096) or die "connect: $!\n";
    slow_read($c, 8192, 3);
    http_pump([$c], 20) if !$c->{eof};

    my $r = parse_http($c->{buf});
    is($r->{status}, 200, "$name - the answer starts as a 200");
    ok($c->{eof}, "$name - nginx closes the connection");
    ok(!$r->{complete}, "$name - the answer is cut: no terminating chunk"
                        . " ($r->{bytes} bytes)");
    # what nginx handed to the kernel before the cut stays there: the
    # socket's send buffer (loopback autotunes it up to tcp_wmem's max)
    my $sndbuf = (split ' ', slurp('/proc/sys/net/ipv4/tcp_wmem'))[2];
    my $bound = $sndbuf + 2 * 4096 + 64 * 1024 + 16 * 1024;
    ok($r->{bytes} < $bound, "$name - ... long before the page's end"
                             . " ($r->{bytes} < $bound: buffers, file cap"
                             . " and the kernel's send buffer)");

    my ($logged) = wait_until(3, 0.1, sub {
        grep { /\[(?:warn|error)\].*sophon_events_max_temp_file_size/ }
             @{ log_since(errlog(), $elog) }
    });
    ok($logged, "$name - the error log names"
                . " sophon_events_max_temp_file_size (warn or error)");

    my ($idle) = wait_until(5, 0.1, sub {
        my $b = module_backends();
        @$b == 1 && $b->[0]{state} eq 'idle';
    });
    ok($idle, "$name - the connection is idle in the pool")
        or diag(describe_backends(module_backends()));

    my ($why) = full_request('per_page=3&page=2&_=after-cap', 10);
    is($why, '', "$name - the next request is served");
    is(sole_backend(), $pid, "$name - ... by the same backend (no new"
                            . " connection)");

    my @left = files_under($dir);
    is("@left", '', "$name - no temporary file left in $dir");
}

# TEST 5: nginx cannot write the temporary file: its own failure, not the
# client's
sub scenario_unwritable {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = temp_dir('sophon_temp');
    my ($elog, $alog) = ((-s errlog()) // 0, (-s acclog()) // 0);

    # nginx made the directory at start: a file in its place now
    rmdir $dir or die "rmdir $dir: $!\n";
    open my $fh, '>', $dir or die "$dir: $!\n";
    close $fh;

    my $pid = sole_backend();

    my $c = http_send('per_page=1000&page=0&_=unwritable', rcvbuf => 4096)
        or die "connect: $!\n";
    slow_read($c, 8192, 2);
    http_pump([$c], 20) if !$c->{eof};

    my $r = parse_http($c->{buf});
    is($r->{status}, 200, "$name - the answer starts as a 200");
    ok($c->{eof} && !$r->{complete}, "$name - it is cut: no terminating"
                                     . " chunk, the connection closed");

    my ($logged) = wait_until(3, 0.1, sub {
        grep { /\[error\].*sophon_events: answer cut after \d+ events: the answer could not be written/ }
             @{ log_since(errlog(), $elog) }
    });
    ok($logged, "$name - logged at error as the answer not written, not as"
                . " the client's failure");
    ok(!grep({ /unwritable/ && /client connection failed/ }
             @{ log_since(errlog(), $elog) }),
       "$name - ... and not as the client's");

    my ($status) = wait_until(3, 0.1, sub {
        my @st = map { /unwritable\S* HTTP\S+" (\d+) / ? $1 : () }
                     @{ log_since(acclog(), $alog) };
        $st[0];
    });
    is($status, 500, "$name - the access log says 500");

    my ($idle) = wait_until(5, 0.1, sub {
        my $b = module_backends();
        @$b == 1 && $b->[0]{state} eq 'idle';
    });
    ok($idle, "$name - the connection is idle in the pool")
        or diag(describe_backends(module_backends()));
    is(sole_backend(), $pid, "$name - ... the same backend");

    unlink $dir;
}

# TEST 4: the database's time is not the client's
sub scenario_db_time {
    my ($block) = @_;
    my $name = $block->name;
    my $log = server_root() . '/logs/dbtime.log';

    # 8 KB/s for 6 s, then the rest of the 12 MB as fast as it comes
    my $qs = 'per_page=1000&page=0&_=dbtime';
    my $c = http_send($qs, rcvbuf => 4096) or die "connect: $!\n";
    slow_read($c, 8192, 6);
    http_pump([$c], 30) if !$c->{eof};
    my $took = now() - $c->{sent};

    ok($c->{eof}, sprintf("$name - the slow client reads it all (%.1f s)",
                          $took));
    ok($took > 5, "$name - ... in more than 5 s");
    is(check_page($c->{buf}, $qs), '', "$name - ... the whole, right page");

    my ($line) = wait_until(3, 0.1, sub {
        (grep { /_=dbtime / } @{ log_since($log, 0) })[0]
    });
    my ($status, $db, $rt) = ($line // '') =~ /_=dbtime (\d+) (\S+) (\S+)/;
    is($status, 200, "$name - logged with its status");
    ok(defined $db && $db =~ /^\d+$/ && $db < 1000,
       "$name - \$sophon_events_db_time is the database's time: < 1000 ms"
       . " (" . ($db // 'none') . " ms, while the client took "
       . ($rt // '?') . " s)");
}

run_tests();

__DATA__

=== TEST 1: connections=1: a client that reads a 12 MB page at 8 KB/s holds no connection; 20 others are served meanwhile
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=3s;
        sophon_events_buffers 4 8k;
        client_body_temp_path $TEST_NGINX_SERVER_ROOT/sophon_body_temp;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=1"]
--- error_code eval
[200, 200]
--- scenario: slow_one_connection
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: the cap: buffers 2 4k, a 64k temporary file, a reader of 12 MB at 8 KB/s: cut, logged, the same connection serves next
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=3s;
        sophon_events_buffers 2 4k;
        sophon_events_temp_path $TEST_NGINX_SERVER_ROOT/sophon_temp 1 2;
        sophon_events_max_temp_file_size 64k;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=3"]
--- error_code eval
[200, 200]
--- scenario: cap
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: no temporary file (max_temp_file_size 0): buffers 2 4k, a reader of 12 MB at 8 KB/s: cut, logged, the same connection serves next
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=3s;
        sophon_events_buffers 2 4k;
        sophon_events_temp_path $TEST_NGINX_SERVER_ROOT/sophon_temp;
        sophon_events_max_temp_file_size 0;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=4"]
--- error_code eval
[200, 200]
--- scenario: cap
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: $sophon_events_db_time is the database's time, not the slow client's
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config
    log_format sophon_dbtime '$request_uri $status $sophon_events_db_time $request_time';
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
        sophon_events_buffers 4 8k;
        client_body_temp_path $TEST_NGINX_SERVER_ROOT/sophon_body_temp;
        access_log $TEST_NGINX_SERVER_ROOT/logs/dbtime.log sophon_dbtime;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=5"]
--- error_code eval
[200, 200]
--- scenario: db_time
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 5: the temporary file cannot be written: the answer is cut and logged as nginx's failure (500), not the client's; the connection goes back
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=3s;
        sophon_events_buffers 2 4k;
        sophon_events_temp_path $TEST_NGINX_SERVER_ROOT/sophon_temp;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=1"]
--- error_code eval
[200, 200]
--- scenario: unwritable
--- timeout: 10
--- no_error_log
[alert]
[emerg]
