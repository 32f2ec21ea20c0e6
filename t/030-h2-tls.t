# vi:filetype=perl

# HTTP/2 over TLS (listen ... ssl http2, a self-signed certificate made
# for this run), through curl --http2 --cacert.  What the module answers
# there is what it answers over HTTP/1.1, and what nginx's HTTP/2 does
# differently below the module (a request is a stream of a connection it
# does not own, its output goes through HTTP/2's flow control and TLS)
# changes nothing the client sees: a live stream's events come as they are
# committed, a slow reader holds no database connection, a client that
# leaves frees what it held, and an answer cut by the database reaches the
# client as an error (a reset stream), never as a clean end.
#
# Every block's locations (its --- config) are served by three servers:
# the harness's (HTTP/1.1, or cleartext HTTP/2 under TEST_NGINX_USE_HTTP2),
# one of HTTP/2 over TLS and one of HTTP/1.1 in clear text, each on a port
# of its own (listen_ports); the pool is declared at the http level (the
# block's --- http_config), so the three share it.
#
#   TEST 1   pages, filters, an event, errors and HEAD: the same status,
#            Content-Type and bytes over HTTP/2 and TLS as over HTTP/1.1
#   TEST 2   the live stream over HTTP/2 and TLS: events inserted meanwhile
#            arrive, deletions too, the heartbeat when idle; a client that
#            leaves frees its stream (sophon_events_max_streams 1)
#   TEST 3   a client that stops reading a page of 12 MB (t/015): the
#            connection is idle in the pool meanwhile, the rest waits in a
#            temporary file, others are served, then the whole page comes
#   TEST 4   the database fails mid-answer (t/012): curl sees the stream
#            reset, not a complete-looking body; the next request is served
#   TEST 5   a client that leaves in the middle of that page (t/009): no
#            backend left busy, no file left, the next request served

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);
use File::Temp ();
use JSON::PP ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();
master_off();
check_accum_error_log();

$SophonClient::AppName = 'sophon_030_check';

our $Cam = 'h2-cam';
our $T0 = 1500000000;

my $MainPid = $$;
my $Json = JSON::PP->new->utf8->canonical;

# the certificate, in a directory removed at exit; nginx.conf names it
my $CertDir = File::Temp::tempdir('sophon-030-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
($ENV{TEST_NGINX_SOPHON_CERT}, $ENV{TEST_NGINX_SOPHON_KEY})
    = tls_cert($CertDir);

sub clean {
    my ($ok, undef, $err) = SophonTest::psql_script(
        "DELETE FROM sophon_events WHERE device_id LIKE '$Cam-%';\n"
        . "DELETE FROM sophon_event_deletions"
        . " WHERE device_id LIKE '$Cam-%';\n");
    die "psql: $err\n" if !$ok;
}

my $Stopped;

# after every scenario and at the end: nginx continued, curl ended, the
# lock released, this file's events gone (the fixtures' pages stay exact)
sub end_helpers {
    kill 'CONT', $Stopped if $Stopped;
    undef $Stopped;
    curl_end_all();
    eval { unlock_table() };
    eval { clean() };
}

add_cleanup_handler(\&end_helpers);

END {
    if ($$ == $MainPid) {
        local $?;
        end_helpers();
    }
}

use_scenarios(\&end_helpers);

SophonTest::fixtures();
clean();

# the two servers of every block, after its own --- http_config (the
# pool); backlog=511 is nginx's default on Linux: it changes nothing, and
# marks the clear-text server's listen line for listen_ports()
add_block_preprocessor(sub {
    my ($block) = @_;
    my $loc = $block->config;
    my $http = $block->http_config // '';

    $block->set_value(http_config => $http . <<"_EOC_");
    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1 ssl http2;
        server_name localhost;
        ssl_certificate \$TEST_NGINX_SOPHON_CERT;
        ssl_certificate_key \$TEST_NGINX_SOPHON_KEY;
$loc
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_2 backlog=511;
        server_name localhost;
$loc
    }
_EOC_
});

sub tls_port { (listen_ports('ssl'))[0] }
sub plain_port { (listen_ports('backlog=511'))[0] }

# curl over HTTP/2 and TLS, the certificate checked against ours
sub h2_start {
    my ($target, @args) = @_;
    return curl_start('https://127.0.0.1:' . tls_port() . $target,
                      '--http2', '--cacert', $ENV{TEST_NGINX_SOPHON_CERT},
                      @args);
}

# one whole request over HTTP/2 and TLS: curl_response()'s hash, with exit
# and stderr
sub h2_request {
    my ($target, @args) = @_;
    my $c = h2_start($target, @args);
    my $exit = curl_wait($c, 30);
    my $r = curl_response($c);
    @$r{qw(exit stderr)} = ($exit, curl_stderr($c));
    return $r;
}

# --------------------------------------------------------------------------
# TEST 1: the same answers over HTTP/2 and TLS as over HTTP/1.1

sub scenario_same_answers {
    my ($block) = @_;
    my $name = $block->name;
    my $plain = plain_port();

    my $id = SophonTest::fixtures()->[7]{doc}{_id};
    my @cases = (
        ['GET', undef, 'per_page=5&page=1'],
        ['GET', undef, 'per_page=1000&page=0'],
        ['GET', undef, 'per_page=100&page=2&with_feature=0'],
        ['GET', undef, 'userType=1,2&per_page=50&page=1'],
        ['GET', undef, 'userType=9'],
        ['GET', undef, 'per_page=10&page=100000'],
        ['HEAD', undef, 'per_page=10&page=1'],
        ['GET', "$Api/" . SophonTest::uri($id), undef],
        ['GET', "$Api/no-such-event", undef],
    );

    for my $case (@cases) {
        my ($method, $path, $qs) = @$case;
        my $target = ($path // $Api) . (defined $qs ? "?$qs" : '');
        my $what = "$method $target";

        my $h1 = http_request($qs, method => $method, port => $plain,
                              defined $path ? (path => $path) : ());
        my $h2 = h2_request($target, $method eq 'HEAD' ? ('-I') : ());

        is($h2->{exit}, 0, "$name - $what: curl ends well over HTTP/2")
            or diag($h2->{stderr});
        is($h2->{version}, '2', "$name - $what: the answer is HTTP/2");
        is($h2->{status}, $h1->{status}, "$name - $what: the status is"
                                         . " HTTP/1.1's ($h1->{status})");
        is($h2->{headers}{'content-type'}, $h1->{headers}{'content-type'},
           "$name - $what: so is the Content-Type");
        ok($h2->{body} eq $h1->{body}, "$name - $what: so is the body,"
                                       . " byte for byte ("
                                       . length($h1->{body}) . " bytes)")
            or diag("first difference at byte "
                    . SophonTest::first_difference($h2->{body},
                                                   $h1->{body}));

        is(check_page($h1->{raw}, $qs), '', "$name - $what: the page the"
                                            . " fixtures give")
            if $method eq 'GET' && !defined $path && $h1->{status} == 200;
    }
}


# --------------------------------------------------------------------------
# TEST 2: the live stream over HTTP/2 and TLS

sub doc {
    my ($id, $cam, $ts) = @_;
    return "{\"_id\":\"$id\",\"timestamp\":$ts,\"common\":{\"score\":90,"
           . "\"ep_info\":{\"device_id\":\"$cam\",\"ep_type\":\"rtsp\"},"
           . '"identity_id":"iid-0","identity_name":"Nobody",'
           . '"group_id":"g0","identity_info":{}}}';
}

sub ids_of {
    my ($events, $type) = @_;
    return map { my $d = eval { $Json->decode($_->{data}) };
                 ref $d eq 'HASH' ? $d->{_id} // '?' : '?' }
           grep { $_->{event} eq $type } @$events;
}

sub scenario_live_stream {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-1";
    my $target = "$Api/stream?streams=$cam";

    my $c = h2_start($target);
    my $started = curl_sse_wait($c, 5, sub {
        grep { $_ eq "retry: 1000\n\n" } @{ $_[0]{blocks} } });
    my $s = curl_sse($c);
    ok($started, "$name - the stream starts with its retry block")
        or diag(curl_stderr($c) . substr(curl_output($c), 0, 300));
    is($s->{version}, '2', "$name - over HTTP/2");
    is($s->{status}, 200, "$name - a 200");
    is($s->{headers}{'content-type'}, 'text/event-stream',
       "$name - Content-Type: text/event-stream");

    # three for this camera, one for another, each its own transaction
    my @ids = map { "$T0.10000$_" } 1 .. 3;
    for my $i (0 .. $#ids) {
        SophonTest::insert_events(doc($ids[$i], $cam, $T0 + $i));
        SophonTest::insert_events(doc("$T0.200001", "$Cam-2", $T0))
            if $i == 1;
    }

    my $got = curl_sse_wait($c, 5, sub { @{ $_[0]{events} } >= 3 });
    $s = curl_sse($c);
    ok($got, "$name - the 3 events inserted meanwhile arrive")
        or diag(scalar(@{ $s->{events} }) . " events: "
                . substr($s->{body}, 0, 500));
    is(join(' ', ids_of($s->{events}, 'event')), "@ids",
       "$name - exactly those, in order, none of the other camera");

    my @eids = map { $_->{id} // '' } @{ $s->{events} };
    ok(!grep({ !/\A[0-9a-f]{16}(?:[0-9a-f]{2})+\z/ } @eids)
       && join(' ', @eids) eq join(' ', sort @eids),
       "$name - each has an id, increasing") or diag("@eids");

    my ($ok, undef, $err) = SophonTest::psql_script(
        "DELETE FROM sophon_events WHERE id = '$ids[1]';\n");
    die "psql: $err\n" if !$ok;
    curl_sse_wait($c, 5, sub { ids_of($_[0]{events}, 'deleted') });
    $s = curl_sse($c);
    is(join(' ', ids_of($s->{events}, 'deleted')), $ids[1],
       "$name - a deletion arrives as event: deleted");

    # idle: a heartbeat (a comment) every second
    my $had = @{ $s->{comments} };
    my $beat = curl_sse_wait($c, 3, sub { @{ $_[0]{comments} } > $had });
    ok($beat, "$name - the heartbeat comes while nothing happens");

    ok(curl_running($c), "$name - the stream is still open");
    is(scalar @{ $s->{bad} }, 0, "$name - nothing malformed")
        or diag("@{ $s->{bad} }");

    # the client leaves; its stream is free again at once (max_streams 1)
    curl_end($c);
    my $next;
    my ($free) = wait_until(5, 0.2, sub {
        $next = h2_start($target);
        curl_sse_wait($next, 2, sub {
            grep { $_ eq "retry: 1000\n\n" } @{ $_[0]{blocks} } })
            || do { curl_end($next); 0 };
    });
    ok($free, "$name - the stream is freed when its client leaves: a new"
              . " one starts (sophon_events_max_streams 1)")
        or diag(curl_output($next));

    SophonTest::insert_events(doc("$T0.100004", $cam, $T0 + 4));
    my $again = curl_sse_wait($next, 5, sub { @{ $_[0]{events} } });
    is(join(' ', ids_of(curl_sse($next)->{events}, 'event')), "$T0.100004",
       "$name - and gets the next event") if $free;
    curl_end($next);
}


# --------------------------------------------------------------------------
# TEST 3: a client that stops reading a page of 12 MB

sub scenario_stops_reading {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = server_root() . '/sophon_temp';
    my $qs = 'per_page=1000&page=0&_=h2-slow';

    my $pid = sole_backend();
    ok($pid, "$name - one module backend ($pid)");
    my $rss_before = worker_rss();

    # stopped as soon as the answer starts: it reads nothing more
    my $c = h2_start("$Api?$qs");
    my ($begun) = wait_until(10, 0.001, sub { -s $c->{out} });
    curl_stop($c);
    ok($begun, "$name - the answer starts");

    # meanwhile: the backend, the temporary file, the worker's memory, and
    # 5 other pages over HTTP/2 and TLS from the same pool of one
    my (@states, %files, @rss, @others);
    for my $i (1 .. 5) {
        Time::HiRes::sleep(0.8);
        push @states, join ',', map { "$_->{pid}:$_->{state}" }
                                @{ module_backends() };
        $files{$_}++ for open_files_under($dir);
        push @rss, worker_rss();

        my $t = now();
        my $r = h2_request("$Api?per_page=3&page=$i&_=other-$i");
        push @others, sprintf "page %d: exit %s, status %s, %.3f s", $i,
                              $r->{exit}, $r->{status} // '-', now() - $t;
    }
    my $held = -s $c->{out};

    my @bad = grep { !/exit 0, status 200, (\d+\.\d+) s$/ || $1 >= 2 }
              @others;
    is(scalar @bad, 0, "$name - 5 other pages served meanwhile, each a 200"
                       . " in less than 2 s (queue_timeout is 3 s)")
        or diag(join "\n", @others);
    my @busy = grep { $_ ne "$pid:idle" } @states;
    is(scalar @busy, 0, "$name - the module's backend is idle while the"
                        . " client reads nothing") or diag("@states");
    ok(scalar(keys %files), "$name - the rest waits in a temporary file"
                            . " under $dir");

    my ($rss_max) = sort { $b <=> $a } grep { defined } @rss;
    SKIP: {
        skip "$name - the RSS of a worker under ASan or valgrind", 1
            if $ENV{SOPHON_SANITIZE} || $ENV{TEST_NGINX_USE_VALGRIND};

        ok(defined $rss_max && $rss_max - $rss_before < 4096,
           "$name - the worker's RSS grows by less than 4 MB meanwhile"
           . " ($rss_before kB, then at most " . ($rss_max // '?') . " kB)");
    }

    # it reads again: the whole page, the one HTTP/1.1 gives
    curl_cont($c);
    my $exit = curl_wait($c, 60);
    is($exit, 0, "$name - then curl reads to the end and ends well"
                 . " (it had $held bytes while stopped)")
        or diag(curl_stderr($c));

    my $h1 = http_request($qs, port => plain_port());
    is(check_page($h1->{raw}, $qs), '', "$name - HTTP/1.1 gives the page");
    my $r = curl_response($c);
    is($r->{version}, '2', "$name - over HTTP/2");
    ok($r->{body} eq $h1->{body}, "$name - HTTP/2 gave the same bytes ("
                                  . length($r->{body}) . " of "
                                  . length($h1->{body}) . ")");

    my ($gone) = wait_until(3, 0.1, sub { !files_under($dir) });
    ok($gone, "$name - no temporary file left");
    is(sole_backend(), $pid, "$name - still the same one backend");
}


# --------------------------------------------------------------------------
# TEST 4: the database fails mid-answer (t/012's sequence): the backend's
# statement waits for a table lock while nginx is stopped; the lock goes,
# the backend sends rows until its socket to nginx is full; it is
# terminated and nginx continued: nginx has started the 200, and the rest
# never comes

sub backend_waits {
    return psql_rows("SELECT coalesce(wait_event, '') FROM pg_stat_activity"
                     . " WHERE application_name = 'nginx sophon_events'",
                     admin_conninfo('postgres'));
}

sub scenario_cut {
    my ($block) = @_;
    my $name = $block->name;
    my $elog = (-s errlog()) // 0;

    lock_table(20);
    my $c = h2_start("$Api?per_page=1000&_=h2-cut");

    my ($waits) = wait_until(10, 0.05, sub { lock_waiters() == 1 });
    ok($waits, "$name - the statement waits for the table lock");

    $Stopped = master_pid() or die "no nginx pid\n";
    kill 'STOP', $Stopped;
    unlock_table();

    my ($blocked) = wait_until(10, 0.05, sub {
        grep { $_->[0] eq 'ClientWrite' } @{ backend_waits() } });
    ok($blocked, "$name - the backend is blocked writing rows to nginx");

    psql_rows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
              . " WHERE application_name = 'nginx sophon_events'");
    my ($gone) = wait_until(10, 0.05, sub { !@{ backend_waits() } });
    ok($gone, "$name - the backend is gone");

    kill 'CONT', $Stopped;
    undef $Stopped;

    my $exit = curl_wait($c, 15);
    my $err = curl_stderr($c);
    my $r = curl_response($c);

    is($r->{status}, 200, "$name - the answer had started: a 200");
    ok($exit =~ /^\d+$/ && $exit != 0 && $exit != 28,
       "$name - curl ends on an error, not a clean end nor its timeout"
       . " (exit $exit: " . ($err =~ s/\s+\z//r) . ")");
    like($err, qr{HTTP/2 stream \d+ (?:was not closed cleanly|was reset)},
         "$name - curl saw the stream reset");
    ok(length($r->{body}) > 4096, "$name - the rows nginx had are sent ("
                                  . length($r->{body}) . " bytes)");
    like($r->{body}, qr/\A\{"data":\[\{/, "$name - the body is a page's"
                                          . " start");
    unlike($r->{body}, qr/"pagination":\{[^{}]*\}\}\s*\z/,
           "$name - but not a whole page (no pagination at its end)");

    my ($cut) = wait_until(3, 0.1, sub {
        (map { /answer cut after (\d+) events/ ? $1 : () }
             @{ log_since(errlog(), $elog) })[0] });
    ok(defined $cut && $cut < 1000, "$name - the log says the answer was cut"
                                    . " short of 1000 events ("
                                    . ($cut // 'no such line') . ")");

    my $next = h2_request("$Api?per_page=2&page=5");
    ok($next->{exit} eq '0' && ($next->{status} // '') eq '200',
       "$name - the next request over HTTP/2 and TLS is served")
        or diag("exit $next->{exit}: $next->{stderr}");
}


# --------------------------------------------------------------------------
# TEST 5: the client leaves in the middle of the 12 MB page: stopped after
# its first bytes (the rest is in the temporary file by then), or while it
# reads; curl ends on SIGTERM, which closes the TLS connection under the
# stream

sub scenario_leaves {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = server_root() . '/sophon_temp';
    my $worker = master_pid();
    my $pid = sole_backend();
    ok($pid, "$name - one module backend ($pid)");

    for my $case ([1, 'stopped'], [4_000_000, 'reading']) {
        my ($want, $how) = @$case;
        my $what = "$how, after $want bytes";

        # 4 MB/s: the page takes about 3 s, so that it is left midway
        my $c = h2_start("$Api?per_page=1000&page=0&_=h2-leave-$want",
                         '--limit-rate', '4M');
        my ($got) = wait_until(10, 0.001, sub {
            (-s $c->{out} // 0) >= $want });
        if ($how eq 'stopped') {
            curl_stop($c);
            Time::HiRes::sleep(1);
        }
        ok($got && curl_running($c), "$name - the page is on its way"
                                     . " ($what)");
        curl_end($c);

        my ($idle) = wait_until(4, 0.05, sub {
            !grep { $_->{state} ne 'idle' } @{ module_backends() } });
        ok($idle, "$name - no backend is left busy with the page ($what)")
            or diag(describe_backends(module_backends()));
        my ($clean) = wait_until(3, 0.1, sub { !files_under($dir) });
        ok($clean, "$name - no temporary file left ($what)");

        # connections=1, queue_timeout=2s: a 503 if the slot were not back
        my $r = h2_request("$Api?per_page=3&page=1&_=after-$want");
        ok($r->{exit} eq '0' && ($r->{status} // '') eq '200',
           "$name - the next request over HTTP/2 is served ($what)")
            or diag("exit $r->{exit}, status " . ($r->{status} // '-')
                    . ": $r->{stderr}");
    }

    is(sole_backend(), $pid, "$name - the same one backend throughout");
    ok(master_pid() == $worker && alive($worker),
       "$name - the same nginx process: no crash");
}

our $Page = qr/^\{"data":\[\{.*\}\],"pagination":\{"num_pages":\d+,"page":\d+,"per_page":\d+,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$/s;

run_tests();

__DATA__

=== TEST 1: pages, filters, an event, errors and HEAD: the same status, type and bytes over HTTP/2 and TLS as over HTTP/1.1
--- http_config
    sophon_events_db "$TEST_NGINX_SOPHON_DB";
--- config
    location /SophonFace/api/events {
        sophon_events;
    }
--- request
GET /SophonFace/api/events?per_page=5&page=1
--- scenario: same_answers
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: the live stream over HTTP/2 and TLS: events inserted meanwhile arrive, deletions, the heartbeat; a client that leaves frees its stream
--- http_config
    sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2;
--- config
    location = /SophonFace/api/events {
        sophon_events;
    }

    location = /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_stream_heartbeat 1s;
        sophon_events_max_streams 1;
    }
--- request
GET /SophonFace/api/events?per_page=2
--- scenario: live_stream
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: connections=1: a client that stops reading a 12 MB page over HTTP/2 and TLS holds no connection; others are served; then it gets the whole page
--- http_config
    sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=3s;
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_buffers 4 8k;
        sophon_events_temp_path $TEST_NGINX_SERVER_ROOT/sophon_temp;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=1"]
--- error_code eval
[200, 200]
--- scenario: stops_reading
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: a 200 cut by a killed backend over HTTP/2 and TLS: curl sees the stream reset, the reason is logged, the next request is served
--- http_config
    sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_buffers 1 4k;
    }
--- request eval
["GET /SophonFace/api/events?per_page=2",
 "GET /SophonFace/api/events?per_page=2&page=3"]
--- error_code eval
[200, 200]
--- response_body_like eval
[$main::Page, $main::Page]
--- scenario: cut
--- timeout: 20
--- error_log
sophon_events: answer cut after
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 5: a client that leaves in the middle of a 12 MB page over HTTP/2 and TLS: no backend left busy, no file left, the next request served
--- http_config
    sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=64 queue_timeout=2s;
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_buffers 4 8k;
        sophon_events_temp_path $TEST_NGINX_SERVER_ROOT/sophon_temp;
    }
--- request
GET /SophonFace/api/events?per_page=1
--- scenario: leaves
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
