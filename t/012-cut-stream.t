# vi:filetype=perl

# A 200 cut by a database error once it has started to stream
# (doc/events-api.md): the status cannot change any more, so the
# module closes the connection without the final chunk, logs why, and the
# next request is served.
#
# The scenario runs in a response body check after the first request of
# its block (Test::Base runs eval filters up front, so no action is done in
# an eval section), on its own socket:
#   --- cut_stream          run main::cut_stream($block) after request 0
# It is deterministic, though the module reads rows at the database's
# speed: the statement waits for a table lock (held by a background psql)
# while nginx is stopped (SIGSTOP); the lock is released, and the backend
# sends its page of 1000 events (about 12 MB) until the socket to nginx is
# full and it blocks writing (pg_stat_activity: wait_event ClientWrite).
# That backend is then terminated and nginx continued (SIGCONT): it reads
# the rows the socket holds, starts the 200, and finds the connection
# closed.  The client reads until EOF.  Every wait is bounded; nginx is
# continued and the lock released however the scenario ends.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);

repeat_each(1);
no_shuffle();
no_long_string();
check_accum_error_log();

$SophonClient::AppName = 'sophon_012_check';
$SophonClient::LockerAppName = 'sophon_012_locker';

# whether a backend of the module is active and waits for EVENT
# (pg_stat_activity.wait_event), within 10 s
sub backend_waits {
    my ($event) = @_;
    my ($waits) = wait_until(10, 0.05, sub {
        grep { $_->{state} eq 'active' && $_->{event} eq $event }
             @{ module_backends() }
    });
    return $waits;
}

# nginx (no master: it is its own worker), stopped with SIGSTOP
my $Stopped;

sub stop_nginx {
    my $pid = master_pid() or die "no nginx pid\n";
    kill 'STOP', $pid or die "SIGSTOP $pid: $!\n";
    $Stopped = $pid;
}

sub continue_nginx {
    return if !$Stopped;
    kill 'CONT', $Stopped;
    $Stopped = undef;
}

# (SophonClient's END releases the lock after this one)
my $MainPid = $$;
END {
    if ($$ == $MainPid) {
        local $?;
        continue_nginx();
    }
}

sub cut_stream {
    my ($block) = @_;
    my $ok = eval { cut_stream_scenario($block); 1 };
    my $err = $@;
    continue_nginx();
    eval { unlock_table() };
    die $err if !$ok;
}

sub cut_stream_scenario {
    my ($block) = @_;
    my $name = $block->name;

    lock_table(20);

    # a small receive buffer, the window small from the start; keepalive
    # (no Connection: close): only the cut closes the connection
    my $c = http_send('per_page=1000', rcvbuf => 4096, keepalive => 1)
        or die "connect: $!\n";

    # the statement waits for the lock; nginx stops; the lock goes
    ok(backend_waits('relation'),
       "$name - the statement waits for the table lock")
        or diag("backends: " . describe_backends(module_backends()));

    stop_nginx();
    unlock_table();

    # the backend sends rows until the socket to the stopped nginx is full
    ok(backend_waits('ClientWrite'),
       "$name - the module's backend is blocked writing rows")
        or diag("backends: " . describe_backends(module_backends()));

    # kill it
    is(terminate_backends(), 1, "$name - its backend is terminated");
    my ($gone) = wait_until(10, 0.05, sub { !@{ module_backends() } });
    ok($gone, "$name - the backend is gone");

    continue_nginx();

    # everything, until the server closes the connection
    my $start = now();
    http_pump([$c], 15);
    close $c->{sock} if !$c->{eof};
    ok($c->{eof} && (!defined $c->{error}
                     || $c->{error} =~ /^Connection reset/),
       "$name - the server closes the connection")
        or diag("reading: " . ($c->{error} // ($c->{eof} ? 'eof' : 'timeout'))
                . sprintf(' after %.1f s', now() - $start));

    my $raw = $c->{buf};
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    $body //= '';
    like($head, qr{\AHTTP/1\.1 200 }, "$name - the status is 200");
    like($head, qr{^Transfer-Encoding:\s*chunked\r?$}mi,
         "$name - the body is chunked");
    ok(length($body) > 4096, "$name - the rows the socket held are sent")
        or diag(length($body) . " bytes of body");

    my $r = parse_http($raw);
    my $data = ($r->{framing} // '') eq 'chunked' ? $r->{body} : '';
    ok(!$r->{bad}, "$name - the chunks are well formed up to the cut")
        or diag($r->{bad});
    ok(!$r->{last_chunk},
       "$name - no last chunk: the client can tell the page was cut")
        or diag("the body ends with: "
                . (substr($body, -40) =~ s/\r/\\r/gr =~ s/\n/\\n/gr));
    ok($body !~ /(?:\A|\r\n)0\r\n\r\n\z/,
       "$name - the body does not end with 0\\r\\n\\r\\n");
    like($data, qr/\A\{"data":\[\{/, "$name - the body is a page's start");
    unlike($data, qr/"pagination":\{[^{}]*\}\}\s*\z/,
           "$name - but not a whole page (no pagination at its end)");

    # the log says why, and the count it gives is short of the page
    my ($cut) = map { /answer cut after (\d+) events/ ? $1 : () }
                    @{ log_since(errlog(), 0) };
    ok(defined $cut && $cut < 1000,
       "$name - the log says the answer was cut short of 1000 events")
        or diag('cut after ' . ($cut // '(no such line)'));
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep, $dry_run) = @_;
    return if $dry_run || $req_idx != 0 || !defined $block->cut_stream;
    eval { cut_stream($block); 1 }
        or fail($block->name . " - the cut stream scenario: $@");
});

run_tests();

__DATA__

=== TEST 1: a 200 cut by a killed backend: no last chunk, the connection closed, the reason logged, the next request served
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
        sophon_events_buffers 1 4k;
    }
--- request eval
["GET /SophonFace/api/events?per_page=2",
 "GET /SophonFace/api/events?per_page=2&page=3"]
--- cut_stream
--- error_code eval
[200, 200]
--- response_body_like eval
[$SophonTest::Page, $SophonTest::Page]
--- timeout: 20
--- error_log
sophon_events: answer cut after
--- no_error_log
[alert]
[crit]
[emerg]
