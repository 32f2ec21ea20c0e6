# vi:filetype=perl

# Clients that go away, a full pool, and nginx reloading or stopping under
# load: the worker never crashes, a database connection whose request went
# away reads its statement to the end, or is closed past sophon_events_drain
# (its backend does not go on waiting), the pool's slots come back, its queue refuses and times out as configured, and old workers
# finish what they started, then exit with their database connections.
#
# Every block runs with a master process (master_on); TEST 5 and 6 with two
# workers.  The scenario of a block runs after the answer to its first
# request (a plain page, checked like any other), inside the response body
# check (SophonClient's use_scenarios): the section
#   --- scenario: NAME     runs main::scenario_NAME($block) there
#   --- workers: N         worker_processes for this block (default 1)
# Its later requests are then the "next request" that must still be
# served.  A scenario talks to nginx over its own sockets (127.0.0.1 only)
# and forks bounded clients (count and time); the database is watched and
# locked through psql as the superuser ($TEST_NGINX_SOPHON_ADMIN_DB):
#   - a slow query is a table lock: a background psql (application_name
#     sophon_009_locker) holds ACCESS EXCLUSIVE on sophon_events, which
#     every query of the module waits for, until unlock_table() commits
#     (its idle_in_transaction_session_timeout, or this script's end,
#     releases it otherwise);
#   - the module's backends are those of application_name
#     'nginx sophon_events' in pg_stat_activity; their client_port tells
#     which nginx process holds them (/proc).
# The script stops the locker and the clients after each scenario and at
# its end; were it killed, the clients stop at their own time bound and the
# lock ends with the locker's input.
#
# TEST 4 makes SOPHON_009_ABORTS requests (default 10000), or as many as
# it can in SOPHON_009_ABORT_SECONDS (default 150): at least 2000 (or all
# of a smaller number) must be made.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
master_on();

our $Aborts = $ENV{SOPHON_009_ABORTS} || 10_000;
our $AbortSeconds = $ENV{SOPHON_009_ABORT_SECONDS} || 150;

$SophonClient::AppName = 'sophon_009_check';
$SophonClient::LockerAppName = 'sophon_009_locker';

# --------------------------------------------------------------------------
# The database (psql_rows, module_backends), the table lock (lock_table,
# unlock_table, lock_held, lock_waiters), nginx's processes (master_pid,
# alive, worker_pids), HTTP over our own sockets and forked clients
# (start_clients, stop_clients): SophonClient, which stops the clients and
# the lock after each scenario and at the end (stop_helpers)

# pid => the number of its backends waiting for the table lock: the
# workers with a request in progress
sub lock_waiters_by_worker {
    my @pids = @_;
    my $ports = ports_of(@pids);
    my %n;

    for my $b (@{ module_backends() }) {
        next if $b->{wait} ne 'Lock';
        my $pid = $ports->{ $b->{port} } or next;
        $n{$pid}++;
    }

    return \%n;
}

# --------------------------------------------------------------------------
# The blocks

add_block_preprocessor(sub {
    my $block = shift;

    SophonTest::default_location($block);
    workers($block->workers // 1);
});

use_scenarios(\&stop_helpers);

# the fixtures are read once, before any client is forked
SophonTest::fixtures();

# --------------------------------------------------------------------------
# Scenarios

# the worker processes do not change (none crashed and was replaced)
sub same_workers {
    my ($name, $before) = @_;
    my @now = worker_pids();
    is("@now", "@$before", "$name - the same worker process(es) serve: no crash");
}

# TEST 1: the client goes away while its query waits for a lock
sub scenario_abort_waiting {
    my ($block) = @_;
    my $name = $block->name;
    my @workers = worker_pids();
    my ($elog, $alog) = ((-s errlog()) // 0, (-s acclog()) // 0);

    lock_table(20);

    my $c = http_send("per_page=2&_=abort-waiting")
        or die "cannot connect: $!\n";

    my ($waits) = wait_until(5, 0.05, sub { lock_waiters() });
    is($waits, 1, "$name - its query waits for the lock in the database");

    http_pump([$c], 0.2);
    is($c->{buf}, '', "$name - no answer while the query waits");

    close $c->{sock};

    # the connection drains for sophon_events_drain's 1 s, then the module
    # closes it: with client_connection_check_interval the backend ends
    # within about a second more, long before the lock goes
    my ($gone, $took) = wait_until(4, 0.05, sub {
        !grep { $_->{user} eq 'sophon_reader' } @{ module_backends() }
    });
    ok($gone, "$name - no sophon_reader backend left, "
              . sprintf('%.2f s after the client left', $took))
        or diag("still there: " . describe_backends(module_backends()));
    ok(lock_held(), "$name - ... while the lock is still held");

    my ($logged) = wait_until(3, 0.05, sub {
        grep { /abort-waiting/ && /" 499 / } @{ log_since(acclog(), $alog) }
    });
    ok($logged, "$name - the access log has the request with 499");

    ok(scalar(grep { /client prematurely closed connection/ && /abort-waiting/ }
                   @{ log_since(errlog(), $elog) }),
       "$name - the error log says the client went away");

    unlock_table();
    same_workers($name, \@workers);
}

# TEST 2: the client goes away in the middle of a 10 MB page
sub scenario_abort_streaming {
    my ($block) = @_;
    my $name = $block->name;
    my @workers = worker_pids();

    # [bytes to read first, seconds to stall (not reading) before closing]
    for my $case ([4096, 0], [4096, 1], [2_000_000, 0], [8_000_000, 0]) {
        my ($want, $stall) = @$case;
        my $what = "after $want bytes" . ($stall ? ", a ${stall} s stall" : '');

        my $c = http_send("per_page=1000&page=0&_=abort-stream-$want-$stall")
            or die "cannot connect: $!\n";
        http_pump([$c], 10, sub { length $c->{buf} >= $want });

        like($c->{buf}, qr{^HTTP/1\.1 200 OK\r\n}, "$name - 200 streaming ($what)");
        ok(length $c->{buf} >= $want && !$c->{eof},
           "$name - $want bytes read of the page, more to come ($what)")
            or diag("read " . length($c->{buf}) . " bytes, eof: "
                    . ($c->{eof} ? 'yes' : 'no'));

        Time::HiRes::sleep($stall) if $stall;
        close $c->{sock};

        my ($idle) = wait_until(4, 0.05, sub {
            !grep { $_->{state} ne 'idle' } @{ module_backends() }
        });
        ok($idle, "$name - no backend is left busy with the page ($what)")
            or diag(describe_backends(module_backends()));

        # connections=1, queue_timeout=2s: a 503 if the slot were not back
        my ($why) = full_request("per_page=3&page=1", 10);
        is($why, '', "$name - the next request is served ($what)");
    }

    same_workers($name, \@workers);
}

# TEST 3: connections=1 queue=2 queue_timeout=1s, a slow query
sub scenario_pool_full {
    my ($block) = @_;
    my $name = $block->name;

    lock_table(20);

    my @c;
    $c[0] = http_send("per_page=2&_=holder") or die "connect: $!\n";
    my ($waits) = wait_until(5, 0.05, sub { lock_waiters() });
    is($waits, 1, "$name - request 1 has the connection, and waits for the lock");

    # one at a time, so that nginx takes them in this order
    for my $i (1 .. 3) {
        Time::HiRes::sleep(0.25);
        $c[$i] = http_send("per_page=2&_=r" . ($i + 1)) or die "connect: $!\n";
    }

    # request 4: the queue (2) is full: a 503 at once
    http_pump([$c[3]], 3);
    my $r4 = parse_http($c[3]{buf});
    my $t4 = ($c[3]{eof} // now()) - $c[3]{sent};
    is($r4->{status}, 503, "$name - request 4 gets 503");
    is($r4->{body}, SophonTest::error_body(503), "$name - ... in the contract's shape");
    is($r4->{headers}{'content-type'}, 'application/json; charset=utf-8',
       "$name - ... as JSON");
    ok($t4 < 0.5, sprintf("$name - ... at once (%.3f s)", $t4));

    # requests 2 and 3 wait 1 s in the queue, then 503
    http_pump([@c[1, 2]], 5);
    for my $i (1, 2) {
        my $r = parse_http($c[$i]{buf});
        my $t = ($c[$i]{eof} // now()) - $c[$i]{sent};
        is($r->{status}, 503, "$name - request " . ($i + 1) . " gets 503");
        is($r->{body}, SophonTest::error_body(503), "$name - ... in the contract's shape");
        ok($t >= 0.9 && $t < 3, sprintf("$name - ... after the queue timeout"
                                        . " of 1 s (%.3f s)", $t));
    }

    http_pump([$c[0]], 0.1);
    is($c[0]{buf}, '', "$name - request 1 still waits");
    ok(lock_held(), "$name - the lock was held all along");

    unlock_table();

    http_pump([$c[0]], 10);
    is(check_page($c[0]{buf}, $c[0]{qs}), '',
       "$name - request 1 gets its page once the lock is gone");

    # the lock released quickly: the queued requests are served
    lock_table(20);

    my @d;
    $d[0] = http_send("per_page=4&page=1&_=holder") or die "connect: $!\n";
    ($waits) = wait_until(5, 0.05, sub { lock_waiters() });
    is($waits, 1, "$name - request 1 has the connection again");

    for my $i (1, 2) {
        Time::HiRes::sleep(0.1);
        $d[$i] = http_send("per_page=3&page=$i&_=q" . ($i + 1))
            or die "connect: $!\n";
    }

    Time::HiRes::sleep(0.1);
    my $released = now();
    unlock_table();

    http_pump(\@d, 10);
    for my $i (0 .. 2) {
        is(check_page($d[$i]{buf}, $d[$i]{qs}), '',
           "$name - request " . ($i + 1) . " is served once the lock is gone");
    }

    my ($idle) = wait_until(3, 0.05, sub {
        my $b = module_backends();
        @$b == 1 && $b->[0]{state} eq 'idle';
    });
    ok($idle, "$name - one connection, idle")
        or diag(describe_backends(module_backends()));
}

# TEST 4: many clients going away at every point, connections=4
sub abort_client {
    my ($id, $stop, $n, $deadline) = @_;
    my (%st, @failures);
    my ($nfail, $hangs) = (0, 0);

    my $failed = sub {
        my ($what, $hang) = @_;
        $nfail++;
        $hangs++ if $hang;
        push @failures, $what if @failures < 10;
    };

    my @modes = (('before') x 5, ('soon') x 4, ('headers') x 4,
                 ('body') x 5, ('full') x 2);

    for my $i (1 .. $n) {
        last if now() > $deadline || -e $stop;

        # nginx does not answer any more: no point in waiting again and again
        if ($hangs >= 3) {
            push @failures, "gave up after 3 requests without an answer";
            last;
        }

        my $mode = $modes[rand @modes];
        my $pp = $mode eq 'body' ? (100, 300, 1000)[rand 3]
               : $mode eq 'full' ? (1, 10, 50)[rand 3]
               : (1, 10, 100, 1000)[rand 4];
        my $qs = "per_page=$pp&page=" . int(rand 3)
                 . (rand() < 0.3 ? '&userType=4' : '') . "&_=a$id-$i";

        if ($mode eq 'full') {
            my ($why) = full_request($qs, 15);
            $st{full}++;
            $failed->("$qs: $why", $why =~ /^no end/) if $why ne '';
            next;
        }

        my $c = http_send($qs);
        if (!$c) {
            $failed->("$qs: connect: $!", 0);
            next;
        }

        if ($mode eq 'soon') {
            Time::HiRes::sleep(rand 0.03);

        } elsif ($mode eq 'headers') {
            http_pump([$c], 10, sub { index($c->{buf}, "\r\n\r\n") >= 0 });
            if (index($c->{buf}, "\r\n\r\n") < 0) {
                $failed->("$qs: no headers (" . length($c->{buf}) . " bytes"
                          . ($c->{eof} ? ', closed' : '') . ")", !$c->{eof});
            } elsif ($c->{buf} !~ m{^HTTP/1\.1 200 }) {
                $failed->("$qs: not a 200: " . substr($c->{buf}, 0, 40), 0);
            }

        } elsif ($mode eq 'body') {
            my $want = 200 + int rand 300_000;
            http_pump([$c], 10, sub { length $c->{buf} >= $want });
            if ($c->{buf} !~ m{^HTTP/1\.1 200 }) {
                $failed->("$qs: not a 200: " . substr($c->{buf}, 0, 40),
                          !$c->{eof});
            } elsif (length $c->{buf} < $want && !$c->{eof}) {
                $failed->("$qs: only " . length($c->{buf}) . " bytes in 10 s",
                          1);
            }
        }

        $st{$mode}++;
        close $c->{sock} if !$c->{eof};
    }

    return { %st, failures => \@failures, nfailures => $nfail };
}

sub scenario_many_aborts {
    my ($block) = @_;
    my $name = $block->name;
    my @workers = worker_pids();
    my $alog = (-s acclog()) // 0;

    my $nclients = 8;
    my $each = int(($Aborts + $nclients - 1) / $nclients);
    my $deadline = now() + $AbortSeconds;

    my $set = start_clients($nclients, sub {
        my ($id, $stop) = @_;
        abort_client($id, $stop, $each, $deadline);
    });

    # what the pool holds while the clients run: the worker's sockets to
    # the database (and, for the record, the backends, which outlive for a
    # moment the connections the module closes)
    my ($max_conn, $max_backends, $samples) = (0, 0, 0);
    my %running = map { $_ => 1 } @{ $set->{pids} };
    while (%running && now() < $deadline + 15) {
        delete @running{ grep { waitpid($_, POSIX::WNOHANG()) != 0 }
                              keys %running };
        my $n = db_sockets(@workers)->{ $workers[0] } // 0;
        $max_conn = $n if $n > $max_conn;
        my $b = @{ module_backends() };
        $max_backends = $b if $b > $max_backends;
        $samples++;
        Time::HiRes::sleep(0.2);
    }

    my $res = stop_clients($set, 10);
    my $done = 0;
    $done += $res->{$_} // 0 for qw(before soon headers body full);
    my $aborted = $done - ($res->{full} // 0);

    diag(sprintf "$name: %d requests (%d closed before the answer, %d soon"
         . " after sending, %d after the headers, %d mid-body, %d read whole)"
         . " from $nclients clients in %.1f s: %.0f aborts/s",
         $done, map({ $res->{$_} // 0 } qw(before soon headers body full)),
         $res->{took}, $aborted / ($res->{took} || 1));

    is($res->{reported} // 0, $nclients, "$name - every client reported");
    ok(!$res->{died}, "$name - no client died") or diag("@{ $res->{died} }");
    is($res->{killed}, 0, "$name - every client ended in time");
    my $least = $Aborts < 2000 ? $Aborts : 2000;
    ok($done >= $least, "$name - at least $least requests were made ($done)");
    diag("$name: the clients stopped at the time bound of $AbortSeconds s")
        if $done < $nclients * $each;
    is($res->{nfailures} // 0, 0,
       "$name - every request answered as it should: a 200, whole when read"
       . " whole (failures; the first of each client below)")
        or diag(join "\n", @{ $res->{failures} });
    ok($max_conn <= 4, "$name - the worker holds at most 4 database"
                       . " connections while loaded (seen: $max_conn,"
                       . " $samples samples)");
    diag("$name: at most $max_backends backends in pg_stat_activity while"
         . " loaded");

    my ($settled, $took) = wait_until(10, 0.1, sub {
        !grep { $_->{state} ne 'idle' } @{ module_backends() }
    });
    my $b = module_backends();
    ok($settled, sprintf("$name - no backend stuck: all idle %.1f s after the"
                         . " load", $took))
        or diag(describe_backends($b));
    ok(@$b <= 4, "$name - at most 4 connections left (" . @$b . ")");

    my $ports = ports_of(@workers);
    is(scalar(grep { !$ports->{ $_->{port} } } @$b), 0,
       "$name - each backend belongs to the worker");
    ok((db_sockets(@workers)->{ $workers[0] } // 0) <= 4,
       "$name - the worker holds at most 4 database connections");

    my $n499 = grep { /" 499 / } @{ log_since(acclog(), $alog) };
    diag("$name: 499 in the access log: $n499");
    ok($n499 > 0, "$name - the aborts are logged with 499");

    same_workers($name, \@workers);
}

sub first10 { return @_ > 10 ? @_[0 .. 9] : @_ }

# TEST 5 and 6: a steady load of whole requests, checked
sub steady_client {
    my ($id, $stop, $deadline) = @_;
    my ($ok, @failures, @served) = (0);

    for my $i (1 .. 100_000) {
        last if now() > $deadline || -e $stop;

        # nginx does not answer any more (not refused: hung)
        last if 3 <= grep { $_->{why} =~ /^no end/ } @failures;

        my $qs = "per_page=" . (1, 5, 20)[$i % 3] . "&page=" . ($i % 4)
                 . "&_=s$id-$i";
        my $t = now();
        my ($why, $bytes, $pid) = full_request($qs, 10);

        if ($why eq '') {
            $ok++;
            push @served, [$t, $pid];
            next;
        }

        push @failures, { t => $t, done => now(), qs => $qs,
                          why => $why, bytes => $bytes };

        # nginx is not there (stopped): no hammering
        Time::HiRes::sleep(0.05) if $why =~ /^connect: /;
    }

    return { ok => $ok, failures => \@failures, served => \@served };
}

# the requests that are in progress on the old workers when nginx is told
# to reload or to stop: $n of ours, and the load's, held by a table lock
sub inflight_requests {
    my ($n) = @_;

    lock_table(20);

    my @c = map { http_send("per_page=5&page=$_&_=inflight-$_")
                  or die "connect: $!\n" } 1 .. $n;

    my ($waits) = wait_until(5, 0.05, sub { lock_waiters() >= $n });
    return \@c;
}

# TEST 5 and 6 begin alike: two workers, the steady load of 4 clients,
# and 4 requests of ours in progress on the WHICH workers; returns the
# master, [the workers], the load, [our requests], {worker => its requests}
sub loaded_workers {
    my ($name, $which) = @_;
    my $master = master_pid();
    my @old = worker_pids();

    is(scalar @old, 2, "$name - two workers");

    my $set = start_clients(4, sub {
        my ($id, $stop) = @_;
        steady_client($id, $stop, now() + 60);
    });

    Time::HiRes::sleep(1);

    my $in = inflight_requests(4);
    my $busy = lock_waiters_by_worker(@old);
    ok(scalar(keys %$busy), "$name - requests in progress on the $which: "
                            . join ', ', map { "$_: $busy->{$_}" }
                                         sort keys %$busy);

    return ($master, \@old, $set, $in, $busy);
}

sub scenario_reload {
    my ($block) = @_;
    my $name = $block->name;
    my ($master, $old, $set, $in, $busy) = loaded_workers($name, 'old workers');
    my @old = @$old;

    my $hup = now();
    kill 'HUP', $master;

    my ($new) = wait_until(10, 0.05, sub {
        my %old = map { $_ => 1 } @old;
        my @new = grep { !$old{$_} } worker_pids();
        @new == 2 ? \@new : undef;
    });
    ok($new, "$name - two new workers after the reload");
    $new //= [];
    my $new1_seen = now();

    # the new workers take requests while the old ones wait for the lock
    Time::HiRes::sleep(0.5);
    my @gone = grep { !alive($_) } sort keys %$busy;
    is("@gone", "", "$name - the old workers with requests in progress"
                    . " still run 0.5 s after the HUP");

    unlock_table();

    http_pump($in, 15);
    my %old = map { $_ => 1 } @old;
    for my $c (@$in) {
        is(check_page($c->{buf}, $c->{qs}), '',
           "$name - the request in progress on an old worker is served ($c->{qs})");
        ok($old{ served_by($c->{buf}) }, "$name - ... by an old worker ("
                                         . served_by($c->{buf}) . ")");
    }

    my ($exited, $took) = wait_until(15, 0.05, sub { !grep { alive($_) } @old });
    ok($exited, sprintf("$name - the old workers exit (%.1f s)", $took))
        or diag("still alive: @{[ grep { alive($_) } @old ]}");

    # again, without a lock: whatever the load is doing at that moment
    Time::HiRes::sleep(1);
    my @gen2 = @$new;
    $hup = now();
    kill 'HUP', $master;

    ($new) = wait_until(10, 0.05, sub {
        my %old = map { $_ => 1 } @gen2;
        my @new = grep { !$old{$_} } worker_pids();
        @new == 2 ? \@new : undef;
    });
    ok($new, "$name - two new workers after the second reload");
    $new //= [];
    my $new2_seen = now();

    ($exited, $took) = wait_until(15, 0.05, sub { !grep { alive($_) } @gen2 });
    ok($exited, sprintf("$name - the workers of the first reload exit"
                        . " (%.1f s)", $took))
        or diag("still alive: @{[ grep { alive($_) } @gen2 ]}");

    Time::HiRes::sleep(1);
    my $res = stop_clients($set, 25);

    diag(sprintf "$name: %d requests of the load served, %d failed",
         $res->{ok} // 0, scalar @{ $res->{failures} });
    is($res->{reported} // 0, 4, "$name - every load client reported");
    ok(($res->{ok} // 0) > 0, "$name - the load was served");
    is(scalar @{ $res->{failures} }, 0, "$name - no request of the load failed")
        or diag(join "\n", map { sprintf "%+.2f s after HUP: %s: %s",
                                         $_->{t} - $hup, $_->{qs}, $_->{why} }
                               first10(@{ $res->{failures} }));
    diag("(times from the second HUP)") if @{ $res->{failures} };

    # new connections go to the new workers: no request made 0.5 s after
    # they appeared is answered by an older one
    my %gen1 = map { $_ => 1 } @old;
    my %gen12 = (%gen1, map { $_ => 1 } @gen2);
    my @stale = grep {
        ($_->[0] >= $new1_seen + 0.5 && $_->[0] < $hup && $gen1{ $_->[1] })
        || ($_->[0] >= $new2_seen + 0.5 && $gen12{ $_->[1] })
    } @{ $res->{served} || [] };
    is(scalar @stale, 0, "$name - new requests are served by the new workers")
        or diag(join "\n", map { "served by $_->[1]" } first10(@stale));
    ok(scalar(grep { !$gen12{ $_->[1] } && $_->[1] } @{ $res->{served} || [] }),
       "$name - the newest workers serve the load");

    # the database connections of the old workers are gone
    my ($clean, $t2) = wait_until(10, 0.1, sub {
        my $b = module_backends();
        my $p = ports_of(@$new);
        !grep { !$p->{ $_->{port} } || $_->{start} < $hup || $_->{state} ne 'idle' } @$b;
    });
    my $after = module_backends();
    ok($clean, sprintf("$name - every backend left belongs to a new worker and"
                       . " is idle (%d, after %.1f s)", scalar @$after, $t2))
        or diag(describe_backends($after));
    ok(@$after <= 8, "$name - at most 2 x 4 connections");
    is(master_pid(), $master, "$name - the same master");
}

sub scenario_quit {
    my ($block) = @_;
    my $name = $block->name;
    my ($master, $old, $set, $in, $busy) = loaded_workers($name, 'workers');
    my @old = @$old;

    my $quit = now();
    kill 'QUIT', $master;

    Time::HiRes::sleep(0.5);
    my @gone = grep { !alive($_) } sort keys %$busy;
    is("@gone", "", "$name - the workers with requests in progress still run"
                    . " 0.5 s after the QUIT");

    unlock_table();

    http_pump($in, 15);
    for my $c (@$in) {
        is(check_page($c->{buf}, $c->{qs}), '',
           "$name - the request in progress is served ($c->{qs})");
    }

    my ($exited, $took) = wait_until(15, 0.05, sub {
        !alive($master) && !grep { alive($_) } @old
    });
    ok($exited, sprintf("$name - nginx exits (%.1f s)", $took));

    my $res = stop_clients($set, 25);

    # a request made once nginx was told to stop may be refused, or reset
    # from the listen queue; any other is served whole
    my @bad = grep {
        $_->{t} < $quit - 0.2
        || $_->{why} !~ /^connect: |^connection closed without a response/
    } @{ $res->{failures} };

    diag(sprintf "$name: %d requests of the load served, %d refused once"
         . " stopping", $res->{ok} // 0,
         scalar(@{ $res->{failures} }) - scalar(@bad));
    is(scalar @bad, 0, "$name - no request of the load failed but those made"
                       . " after the QUIT")
        or diag(join "\n", map { sprintf "%+.2f s after QUIT: %s: %s",
                                         $_->{t} - $quit, $_->{qs}, $_->{why} }
                               first10(@bad));

    my ($gone) = wait_until(5, 0.1, sub { !@{ module_backends() } });
    ok($gone, "$name - no database connection left")
        or diag(describe_backends(module_backends()));
}

run_tests();

__DATA__

=== TEST 1: the client goes away while its query waits: 499, the connection is closed past sophon_events_drain, the backend ends, the slot is free
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=4 queue_timeout=2s;
        sophon_events_drain 16m 1s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=3&page=2"]
--- error_code eval
[200, 200]
--- scenario: abort_waiting
--- timeout: 5
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal



=== TEST 2: the client goes away in the middle of a 10 MB page: no crash, the connection slot comes back
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=4 queue_timeout=2s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=1000&page=1"]
--- error_code eval
[200, 200]
--- scenario: abort_streaming
--- timeout: 5
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal



=== TEST 3: a full pool: one connection, a queue of 2 that times out after 1 s, a 503 at once past it; served when the lock goes quickly
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1 queue=2 queue_timeout=1s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=2&page=7"]
--- error_code eval
[200, 200]
--- scenario: pool_full
--- timeout: 5
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal



=== TEST 4: many clients go away at every point, with 4 connections: no crash, no backend stuck, no more than 4 connections
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
--- scenario: many_aborts
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
no database connection
too many requests wait
cannot connect to the database
the database did not answer in time
the database answered



=== TEST 5: reload (HUP) under load: requests in progress on the old workers are served, the old workers exit with their connections
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- workers: 2
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=4 queue=64 queue_timeout=10s;
        add_header X-Worker-Pid $pid always;
    }
--- log_level: info
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=10&page=5"]
--- error_code eval
[200, 200]
--- scenario: reload
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
no database connection
too many requests wait
cannot connect to the database
the database did not answer in time
the database answered



=== TEST 6: graceful stop (QUIT) under load: requests in progress are served, nginx exits, its connections go
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- workers: 2
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=4 queue=64 queue_timeout=10s;
    }
--- log_level: info
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- scenario: quit
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
no database connection
too many requests wait
cannot connect to the database
the database did not answer in time
the database answered
