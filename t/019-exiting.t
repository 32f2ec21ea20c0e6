# vi:filetype=perl

# A worker that is exiting (graceful stop, SIGQUIT to the master) with a
# request in progress: it ends that request as it would otherwise, closes
# its database connection, and exits; nothing is freed under its feet.
#
#   TEST 1: the answer is cut while the worker exits.  The statement waits
#   for a table lock (SophonClient's lock_table) while nginx is told to
#   stop; the lock is released, the worker reads the rows of a 1000-event
#   page for a client that reads nothing (SO_RCVBUF 4096), its two 4 KB
#   buffers fill and sophon_events_max_temp_file_size 0 cuts the answer.
#   The request lets go of its query from inside the query's own read loop,
#   with ngx_exiting set: before c74f23e the query was freed there and the
#   loop went on with it (a heap-use-after-free, which `make test-asan`
#   reports and the worker may crash on).
#
#   TEST 2: a slow client (8 KB/s) is reading its page, partly from the
#   temporary file, when nginx is told to stop: the worker sends the whole
#   page, then exits.  It talks to a server of its own whose listen socket
#   has a small send buffer (sndbuf=4k): a loopback socket autotunes its
#   buffer to hold the whole page otherwise, and the worker would have
#   nothing left to send.
#
# Each block has one worker (master_on) and one request, after which its
# scenario runs (SophonClient's use_scenarios) and stops nginx itself; the
# harness then finds nginx gone (its pid file is removed by the master), as
# after t/009's graceful stop, and starts the next block afresh.  Every wait
# is bounded; the lock is released however a scenario ends.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);

repeat_each(1);
no_shuffle();
no_long_string();
master_on();
workers(1);
log_level('info');

$SophonClient::AppName = 'sophon_019_check';
$SophonClient::LockerAppName = 'sophon_019_locker';

# SophonClient's stop_helpers: after each scenario, and at the end
use_scenarios(\&stop_helpers);

SophonTest::fixtures();

# the worker has taken the QUIT: it logs so at notice level
sub wait_shutting_down {
    my ($worker, $pos) = @_;
    my ($seen) = wait_until(5, 0.05, sub {
        grep { /\[notice\] $worker#\d+: gracefully shutting down/ }
             @{ log_since(errlog(), $pos) }
    });
    return $seen;
}

# the master and its worker are gone, within $timeout seconds: (gone, took)
sub wait_exit {
    my ($master, $worker, $timeout) = @_;
    return wait_until($timeout, 0.05, sub { !alive($worker) && !alive($master) });
}

sub no_backend_left {
    my ($name) = @_;
    my ($gone, $took) = wait_until(5, 0.1, sub { !@{ module_backends() } });
    ok($gone, sprintf("$name - no module backend left in pg_stat_activity"
                      . " (%.1f s)", $took))
        or diag(describe_backends(module_backends()));
}

# TEST 1
sub scenario_cut_exiting {
    my ($block) = @_;
    my $name = $block->name;
    my $master = master_pid() or die "no master pid\n";
    my @workers = worker_pids();
    is(scalar @workers, 1, "$name - one worker");
    my $worker = $workers[0] or die "no worker\n";
    my $pos = (-s errlog()) // 0;

    lock_table(30);

    my $c = http_send("per_page=1000&_=cut-exiting", rcvbuf => 4096)
        or die "cannot connect: $!\n";

    my ($waits) = wait_until(5, 0.05, sub { lock_waiters() });
    is($waits, 1, "$name - its statement waits for the table lock");

    kill 'QUIT', $master;
    ok(wait_shutting_down($worker, $pos),
       "$name - the worker is shutting down gracefully");
    ok(alive($worker), "$name - ... and still runs, with the request");

    unlock_table();

    # the client reads nothing until the worker is gone
    my ($gone, $took) = wait_exit($master, $worker, 15);
    ok($gone, sprintf("$name - the worker and the master exit (%.1f s)",
                      $took))
        or diag("still alive: " . join ' ', grep { alive($_) }
                                            $worker, $master);

    my @lines = @{ log_since(errlog(), $pos) };
    is(scalar(grep { /exited on signal|exited with code [1-9]/ } @lines), 0,
       "$name - the worker did not die");
    ok(scalar(grep { /\[warn\].*sophon_events_max_temp_file_size/ } @lines),
       "$name - the cut is logged, naming sophon_events_max_temp_file_size");

    http_pump([$c], 10);
    ok($c->{eof}, "$name - the client reads to the end of the connection");
    my $r = parse_http($c->{buf});
    is($r->{status}, 200, "$name - the answer started as a 200");
    ok(!$r->{complete}, "$name - ... and is cut: no last chunk ("
                        . length($c->{buf}) . " bytes)");
    unlike($c->{buf}, qr/\r\n0\r\n\r\n\z/, "$name - ... not at its end either");

    no_backend_left($name);
}

# TEST 2
sub scenario_slow_exiting {
    my ($block) = @_;
    my $name = $block->name;
    my $master = master_pid() or die "no master pid\n";
    my @workers = worker_pids();
    is(scalar @workers, 1, "$name - one worker");
    my $worker = $workers[0] or die "no worker\n";
    my $pos = (-s errlog()) // 0;

    # 56 KB, 7 s at 8 KB/s; the kernel's buffers (sndbuf=4k, SO_RCVBUF
    # 4096, doubled by Linux, not autotuned) hold 16 KB of it: the rest
    # waits in the worker, in its buffers and its temporary file
    my $qs = "per_page=5&page=100&_=slow-exiting";
    my ($slow) = listen_ports('sndbuf=');
    my $c = http_send($qs, rcvbuf => 4096, port => $slow)
        or die "cannot connect: $!\n";

    # a few KB read: the page is under way
    my $how = slow_read($c, 8192, 10, sub { length $c->{buf} >= 8192 });
    is($how, 'done', "$name - the slow client reads its first 8 KB");

    my $quit = now();
    kill 'QUIT', $master;
    ok(wait_shutting_down($worker, $pos),
       "$name - the worker is shutting down gracefully");

    # alive a second after the QUIT, while the client is still reading
    my $alive;
    $how = slow_read($c, 8192, 30, undef, sub {
        $alive //= alive($worker) && !$c->{eof} if now() > $quit + 1;
    });
    is($how, 'eof', "$name - the client reads to the end");
    ok($alive, "$name - the worker waits for the slow client a second after"
               . " the QUIT");
    diag(sprintf "$name: %d bytes in %.1f s", length $c->{buf},
         ($c->{eof} // now()) - $c->{sent});

    is(check_page($c->{buf}, $qs), '', "$name - the client has its whole,"
                                       . " valid page");

    my ($gone, $took) = wait_exit($master, $worker, 15);
    ok($gone, sprintf("$name - then the worker and the master exit"
                      . " (%.1f s after the end of the page)", $took))
        or diag("still alive: " . join ' ', grep { alive($_) }
                                            $worker, $master);

    my @lines = @{ log_since(errlog(), $pos) };
    ok(scalar(grep { /a sophon_events answer is buffered to a temporary file/ }
                   @lines),
       "$name - part of the page went through the temporary file");
    is(scalar(grep { /exited on signal|exited with code [1-9]/ } @lines), 0,
       "$name - the worker did not die");

    no_backend_left($name);
}

run_tests();

__DATA__

=== TEST 1: nginx stops while a statement waits; the worker, exiting, reads the page for a client that reads nothing and cuts it at sophon_events_max_temp_file_size 0: it exits, no crash, no use after free, no backend left
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
        sophon_events_buffers 2 4k;
        sophon_events_max_temp_file_size 0;
    }
--- request
GET /SophonFace/api/events?per_page=1&with_feature=0
--- error_code: 200
--- scenario: cut_exiting
--- timeout: 10
--- error_log
sophon_events_max_temp_file_size
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal



=== TEST 2: nginx stops while a slow client reads its page (partly from the temporary file): the worker sends it whole, then exits
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 sndbuf=4k;

        location = /SophonFace/api/events {
            sophon_events;
            sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
            sophon_events_buffers 2 4k;
        }
    }
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
    }
--- request
GET /SophonFace/api/events?per_page=1&with_feature=0
--- error_code: 200
--- scenario: slow_exiting
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
sophon_events_max_temp_file_size
