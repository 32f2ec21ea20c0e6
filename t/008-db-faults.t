# vi:filetype=perl

# Database faults: PostgreSQL down when nginx starts, restarted under load
# (pg_ctl -m fast and -m immediate), a backend killed with
# pg_terminate_backend() while idle in the pool and while its query runs,
# a query that waits on a lock past sophon_events_query_timeout, and a
# server frozen with SIGSTOP.  Every answer must come quickly, in the
# contract's shape (or as a cut stream once a 200 has started), never
# hang, and the module must serve again as soon as the database is back.
#
# This file manipulates the throwaway cluster of util/run-tests
# ($TEST_NGINX_SOPHON_PGDIR, $TEST_NGINX_SOPHON_PGPORT): whatever happens,
# the END block thaws it, starts it if it is down and waits for SELECT 1,
# because the files after this one need it.
#
# Test::Base runs the filters (eval) of every block up front, so actions
# are not done in eval sections.  Sections of this file:
#   --- before_start eval   a code ref, run when the block starts (before
#                           its nginx starts), from a block preprocessor
#   --- after_response eval [code refs]: element N runs after the response
#                           to request N has been checked, before request
#                           N + 1 is sent (a response body check); it gets
#                           ($block, $body)
# Each request carries a unique "_=TAG" (unknown parameters are ignored):
# its access log line (logs/faults.log: "$request_uri $status
# $request_time") and its error log lines are found by that tag.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);
use FindBin ();
use File::Spec ();
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();

my $MainPid = $$;

our $PgDir   = $ENV{TEST_NGINX_SOPHON_PGDIR}
    or die "TEST_NGINX_SOPHON_PGDIR is not set: run with util/run-tests\n";
$PgDir = File::Spec->rel2abs($PgDir);    # commands run from /
our $PgPort  = $ENV{TEST_NGINX_SOPHON_PGPORT}
    or die "TEST_NGINX_SOPHON_PGPORT is not set: run with util/run-tests\n";
our $SophonPg = "$FindBin::Bin/../util/sophon-pg";
our $PgBin   = $ENV{SOPHON_PG_BIN} || '/usr/lib/postgresql/15/bin';

$SophonClient::AppName = 'sophon_008_check';
$SophonClient::LockerAppName = 'sophon_008_locker';

my $JSON = eval { require JSON::XS; JSON::XS->new->utf8 }
           || do { require JSON::PP; JSON::PP->new->utf8 };

our @Frozen;        # pids stopped with SIGSTOP

# --------------------------------------------------------------------------
# The cluster.  The database through psql (SophonTest::psql), the table
# lock (lock_table, unlock_table), the module's backends (backend_count,
# terminate_backends), processes (run_cmd, children_of) and forked
# clients (start_clients, stop_clients): SophonClient

sub pg_running {
    my ($rc) = run_cmd(20, $SophonPg, 'status', $PgDir);
    return $rc == 0;
}

sub pg_stop {
    my ($rc, $out) = run_cmd(60, $SophonPg, 'stop', $PgDir);
    die "sophon-pg stop: $out\n" if $rc != 0;
}

sub pg_start {
    my ($rc, $out) = run_cmd(90, $SophonPg, 'start', $PgDir, $PgPort);
    die "sophon-pg start: $out\n" if $rc != 0;
}

sub postmaster_pid {
    open my $in, '<', "$PgDir/data/postmaster.pid" or return;
    my $pid = <$in>;
    return unless defined $pid && $pid =~ /^\s*(\d+)/;
    $pid = $1;

    # a stale file may name a process that is not ours any more
    open my $comm, '<', "/proc/$pid/comm" or return;
    return unless (<$comm> // '') =~ /^postgres$/;
    return $pid;
}

# pg_ctl restart -m MODE -w, as the owner of the data directory
sub pg_restart {
    my ($mode) = @_;
    my $data = "$PgDir/data";
    my $owner = (stat $data)[4];
    my @as = $owner == $> ? () : ('runuser', '-u', scalar getpwuid($owner),
                                  '--');
    return run_cmd(90, @as, "$PgBin/pg_ctl", 'restart', '-D', $data,
                   '-m', $mode, '-w', '-t', '60', '-l',
                   "$PgDir/log/postgresql.log");
}

# SIGSTOP the postmaster first (it forks no more), then all its children.
# A watchdog in its own session sends SIGCONT after 15 s whatever happens
# to this script (even a SIGKILL, which no END block sees).
our $Watchdog;

sub pg_freeze {
    my $pm = postmaster_pid() or die "no postmaster pid\n";
    kill 'STOP', $pm or die "kill -STOP $pm: $!\n";
    push @Frozen, $pm;
    for my $pid (children_of($pm)) {
        push @Frozen, $pid if kill 'STOP', $pid;
    }

    my @pids = @Frozen;
    $Watchdog = start_clients(1, sub {
        POSIX::setsid();
        sleep 15;
        kill 'CONT', @pids;
        return {};
    });

    return scalar @Frozen;
}

sub pg_thaw {
    kill 'CONT', @Frozen if @Frozen;
    @Frozen = ();

    if ($Watchdog) {
        stop_clients($Watchdog, 0);
        undef $Watchdog;
    }

    # also whatever a lost list would miss: CONT on a running process is
    # harmless
    if (my $pm = postmaster_pid()) {
        kill 'CONT', $pm, children_of($pm);
    }
}

# whatever happened: no frozen process, a running cluster that answers,
# no table lock
sub pg_ensure_up {
    pg_thaw();
    pg_start() unless pg_running();
    eval { unlock_table() };
    warn "008-db-faults: cannot release the table lock: $@" if $@;

    my ($up) = wait_until(30, 0.2, sub {
        (eval { SophonTest::psql('SELECT 1') } // '') eq '1'
    });
    die "the database does not answer SELECT 1: $@\n" if !$up;
    return 1;
}

# (SophonClient's END stops the clients and the lock after this one)
END {
    if ($$ == $MainPid) {
        local $?;
        pg_thaw();
        stop_all_clients();
        eval { pg_ensure_up() };
        warn "008-db-faults: the database is not healthy at exit: $@" if $@;
    }
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { warn "caught SIG$sig, cleaning up\n"; exit 1 };
}

# --------------------------------------------------------------------------
# HTTP, with a deadline

# http_get(PATH, LIMIT): SophonClient's http_request, the answer within
# LIMIT seconds; status 0 when none came, and complete only when the
# body's own framing (chunks, Content-Length) ends it with nothing after
sub http_get {
    my ($path, $limit) = @_;
    my ($p, $qs) = split /\?/, $path, 2;
    my $r = http_request($qs, path => $p, timeout => $limit, refused => 1);

    $r->{status} //= 0;
    $r->{complete} = $r->{complete} && ($r->{framing} // '') ne 'close'
                     && !$r->{trailing} ? 1 : 0;
    return $r;
}

# --------------------------------------------------------------------------
# Logs

# the access log entry of the request tagged TAG: (status, request_time)
sub access_entry {
    my ($tag) = @_;
    my @entry;
    wait_until(1, 0.02, sub {
        @entry = map { /[?&]_=\Q$tag\E (\d{3}) ([\d.]+)$/ ? ($1, $2) : () }
                     @{ log_since(logfile('faults.log'), 0) };
    });
    return @entry[0, 1];
}

# the error log entries of the request tagged TAG
sub error_entries {
    my ($tag) = @_;
    return grep { /, request: "[A-Z]+ [^"]*[?&]_=\Q$tag\E[ &]/ }
                log_entries(errlog());
}

# the error log says why the request tagged TAG failed, in words: each
# pattern matches one of its entries, and every "sophon_events: " entry of
# it is printable text
sub error_log_has {
    my ($name, $tag, @patterns) = @_;
    my @entries = error_entries($tag);
    for my $pat (@patterns) {
        ok((grep { /$pat/ } @entries),
           "$name - the error log says \"$pat\" for $tag")
            or diag("its entries:\n", join "\n", @entries ? @entries : "(none)");
    }
    my @garbled = grep { /\] \d+#\d+: \*\d+ sophon_events: / && /[^\t\n\x20-\x7e]/ }
                  @entries;
    ok(!@garbled, "$name - the error log's reasons for $tag are text")
        or diag(join "\n", @garbled);
}

# every reason the module logged is printable text
sub error_log_all_text {
    my ($name) = @_;
    my @garbled = grep { /\] \d+#\d+: (?:\*\d+ )?sophon_events: / && /[^\t\n\x20-\x7e]/ }
                  log_entries(errlog());
    ok(!@garbled, "$name - every reason in the error log is text")
        or diag(join "\n", @garbled[0 .. ($#garbled < 4 ? $#garbled : 4)]);
}

# the request tagged TAG answered in MIN .. MAX seconds (nginx's own
# $request_time)
sub took {
    my ($name, $tag, $min, $max) = @_;
    my ($status, $time) = access_entry($tag);
    ok(defined $time, "$name - $tag is in the access log") or return;
    ok($time >= $min && $time <= $max,
       "$name - $tag answered in $min .. $max s")
        or diag("it took $time s (status $status)");
}

# --------------------------------------------------------------------------
# The contract's answers (SophonTest's error bodies and $Page)

sub error_re { my $body = SophonTest::error_body($_[0]); qr/^\Q$body\E$/ }

# a 200 body in full: JSON, data and pagination that agree
sub page_ok {
    my ($body, $per_page) = @_;
    my $doc = eval { $JSON->decode($body) } or return "not JSON: $@";
    return "no data array" unless ref $doc->{data} eq 'ARRAY';
    my $p = $doc->{pagination} or return "no pagination";
    my $want = $p->{total_count} - $p->{page} * $p->{per_page};
    $want = $per_page if $want > $per_page;
    $want = 0 if $want < 0;
    return "@{[ scalar @{ $doc->{data} } ]} events, expected $want"
        if @{ $doc->{data} } != $want;
    return '';
}

# --------------------------------------------------------------------------
# The block actions

# PostgreSQL down: a 503 at once (connection refused, not the 5 s connect
# timeout), then PostgreSQL comes back
sub refused_then_start {
    my ($block) = @_;
    my $name = $block->name;
    took($name, 'b1r0', 0, 1);
    error_log_has($name, 'b1r0', qr/sophon_events: cannot connect to the database/,
                  qr/Connection refused/);
    pg_start();
    is(eval { SophonTest::psql('SELECT 1') }, '1',
       "$name - PostgreSQL is up again");
}

# CLIENTS clients (SophonClient's start_clients) request pages again and
# again, each answer within LIMIT seconds, until they are told to stop (or
# 20 s); each gives a row per request: {start, end, status, complete,
# timedout, error, problem}
sub start_load {
    my ($tag, $clients, $limit) = @_;
    return start_clients($clients, sub {
        my ($i, $stop) = @_;
        my @rows;
        my $end = now() + 20;
        my $n = 0;
        while (!-e $stop && now() < $end) {
            my $per_page = (5, 20, 40)[$n % 3];
            my $page = $n % 7;
            my $r = http_get("/SophonFace/api/events?per_page=$per_page"
                             . "&page=$page&_=$tag-$i-$n", $limit);
            my $problem = '';
            if ($r->{status} == 200 && $r->{complete}) {
                $problem = page_ok($r->{body}, $per_page);
            } elsif ($r->{status} =~ /^50[034]$/ && $r->{complete}) {
                $problem = "body: $r->{body}"
                    if $r->{body} ne SophonTest::error_body($r->{status});
            }
            $problem =~ s/\s+/ /g;
            # nginx gone: do not spin on refused connections
            Time::HiRes::sleep(0.01) if $r->{status} == 0;
            push @rows, { (map { $_ => $r->{$_} }
                               qw(start end status complete timedout)),
                          error => $r->{error} || '-',
                          problem => $problem || '-' };
            $n++;
        }
        return { rows => \@rows };
    });
}

# at most 10 rows, and how many there were
sub rows_text {
    my ($t0, @rows) = @_;
    my @text = map { describe($_, $t0) } @rows[0 .. ($#rows < 9 ? $#rows : 9)];
    push @text, "(" . scalar(@rows) . " in all)" if @rows > 10;
    return join "\n", @text;
}

sub describe {
    my ($r, $t0) = @_;
    return sprintf "start %+.3f s, %.3f s, status %s%s%s%s", $r->{start} - $t0,
        $r->{end} - $r->{start}, $r->{status},
        $r->{complete} ? '' : ' (cut)', $r->{timedout} ? ' TIMED OUT' : '',
        $r->{problem} ne '-' ? " $r->{problem}" : '';
}

# PostgreSQL restarted (MODE) under the load of 4 clients on a pool of 2
# connections: no request hangs; an answer is a whole 200, the 503/504 of
# the contract, or a cut 200; everything started a second after the
# restart is a whole 200.  Then the pool's two connections, idle, die in a
# second restart without load: the block's next requests must not get them.
sub restart_under_load {
    my ($block, $mode, $tag) = @_;
    my $name = $block->name;

    my $load = start_load($tag, 4, 6);
    Time::HiRes::sleep(0.6);

    # requests surely in flight when the server goes: their queries wait on
    # a lock (the restart ends the locker's transaction too)
    lock_table(30);
    Time::HiRes::sleep(0.3);
    my $waiting = backend_count('Lock');

    my $t0 = now();
    my ($rc, $out) = pg_restart($mode);
    my $t1 = now();
    is($rc, 0, "$name - pg_ctl restart -m $mode") or diag($out);
    unlock_table();
    is($waiting, 2, "$name - both pooled connections were waiting on the"
                    . " lock when the restart began");

    Time::HiRes::sleep(1.8);

    my $res = stop_clients($load, 8);
    ok(!$res->{killed}, "$name - every load client ended (none hangs)");

    my @rows = sort { $a->{start} <=> $b->{start} } @{ $res->{rows} || [] };
    my @before = grep { $_->{end} < $t0 } @rows;
    my @during = grep { $_->{end} >= $t0 && $_->{start} < $t1 + 1 } @rows;
    my @after = grep { $_->{start} >= $t1 + 1 } @rows;
    my %count;
    $count{ $_->{status} . ($_->{complete} ? '' : '-cut') }++ for @rows;

    Test::More::note(sprintf "$name - restart %.2f s; %d requests: %s; %d during",
         $t1 - $t0, scalar @rows,
         join(', ', map { "$_ x$count{$_}" } sort keys %count),
         scalar @during);

    ok(@before >= 4 && !grep({ $_->{status} != 200 || !$_->{complete}
                                || $_->{problem} ne '-' } @before),
       "$name - before the restart, whole 200s")
        or diag(rows_text($t0, @before));

    my @bad = grep {
        $_->{timedout}
        || $_->{problem} ne '-'
        || !($_->{status} == 200
             || ($_->{status} =~ /^50[34]$/ && $_->{complete}))
    } @rows;
    ok(!@bad, "$name - no request hangs; each answer is a whole 200, a"
              . " contract 503/504 or a cut 200")
        or diag(rows_text($t0, @bad));

    # in flight when the restart began (waiting on the lock, or queued for
    # a connection): answered within the query timeout (3 s); how is
    # checked with all the others above
    my @inflight = grep { $_->{start} < $t0 && $_->{end} > $t0 } @rows;
    ok(@inflight >= 2, "$name - requests were in flight at the restart")
        or diag(scalar(@inflight) . " were");
    my @slow = grep { $_->{end} > $t0 + 3.5 } @inflight;
    ok(!@slow, "$name - each request in flight at the restart was answered"
               . " within the query timeout")
        or diag(rows_text($t0, @slow));
    my %how;
    $how{ $_->{status} . ($_->{complete} ? '' : '-cut') }++ for @inflight;
    Test::More::note("$name - in flight at the restart: "
         . join(', ', map { "$_ x$how{$_}" } sort keys %how));

    ok(@after >= 4, "$name - requests went on after the restart")
        or diag(scalar(@after) . " requests started a second after it");
    my @late = grep { $_->{status} != 200 || !$_->{complete} } @after;
    ok(!@late, "$name - a second after the restart every request is a"
               . " whole 200")
        or diag(rows_text($t0, @late));

    # the pool is now two connections to the new server, idle
    my $n = 0;
    wait_until(3, 0.05, sub { ($n = backend_count()) == 2 });
    is($n, 2, "$name - the pool holds its 2 connections");

    ($rc, $out) = pg_restart($mode);
    is($rc, 0, "$name - pg_ctl restart -m $mode, the pool idle") or diag($out);
    error_log_all_text($name);
}

# while a query of the module waits on the lock, pg_terminate_backend()
# its backend, within 8 s: the killer, a forked client
our $Killer;

sub lock_and_kill {
    lock_table(15);
    $Killer = start_clients(1, sub {
        my ($done) = wait_until(8, 0.05, sub {
            terminate_backends("wait_event_type = 'Lock'") > 0
        });
        return { terminated => $done ? 1 : 0 };
    });
}

# how a forked client ended, for a diagnostic
sub client_end {
    my ($res) = @_;
    return $res->{killed} ? 'killed' : $res->{died} ? "died: @{ $res->{died} }"
                                                    : 'ended';
}

sub killed_while_waiting {
    my ($block) = @_;
    my $name = $block->name;
    wait_clients($Killer, 3);
    my $res = stop_clients($Killer, 0);
    unlock_table();
    ok($res->{terminated}, "$name - a backend of nginx was killed while it"
                           . " waited on the lock")
        or diag("the killer " . client_end($res));
    took($name, 'b4r1', 0, 3);
    error_log_has($name, 'b4r1',
                  qr/sophon_events: [^\n]*(?:terminating connection|server closed the connection)/);
}

# the prober: once nginx's query waits on the lock, a request to /static
# must be answered at once, while that query still waits
our $Prober;

sub lock_and_probe {
    lock_table(10);
    $Prober = start_clients(1, sub {
        my ($waiting) = wait_until(8, 0.02, sub { backend_count('Lock') });
        my $r = $waiting ? http_get('/static?_=b5probe', 2) : {};
        my $still = $waiting ? backend_count('Lock') : 0;
        return { probe => [ { waiting => $waiting, status => $r->{status},
                              body => $r->{body}, elapsed => $r->{elapsed},
                              still => $still } ] };
    });
}

sub timed_out_while_waiting {
    my ($block) = @_;
    my $name = $block->name;
    my $answered = now();

    took($name, 'b5r1', 0.9, 2);
    error_log_has($name, 'b5r1', qr/the database did not answer in time/);

    wait_clients($Prober, 5);
    my $res = stop_clients($Prober, 0);
    my ($waiting, $status, $body, $elapsed, $still) =
        @{ $res->{probe}[0] || {} }{qw(waiting status body elapsed still)};

    ok($waiting, "$name - the prober saw the query wait on the lock")
        or diag("the prober " . client_end($res));
    ok(($status // 0) == 200 && ($body // '') eq 'ok',
       "$name - /static answered while the query waited")
        or diag("status " . ($status // '?') . ", body " . ($body // '?'));
    ok(defined $elapsed && $elapsed >= 0 && $elapsed < 0.3,
       "$name - /static answered at once")
        or diag("it took " . ($elapsed // '?') . " s");
    ok($still, "$name - the query was still waiting after /static answered");

    # the module closed the connection: the server stops that query within
    # client_connection_check_interval (1 s)
    my $left;
    wait_until($answered + 2.5 - now(), 0.05, sub {
        ($left = SophonTest::psql("SELECT count(*) FROM pg_stat_activity"
                                  . " WHERE usename = 'sophon_reader'"
                                  . " AND wait_event_type = 'Lock'")) == 0
    });
    my $gone = now() - $answered;
    is($left, 0, "$name - no query of sophon_reader waits on the lock"
                 . " 2.5 s after the 504")
        or diag(SophonTest::psql("SELECT pid, state, wait_event_type, query"
                                 . " FROM pg_stat_activity"
                                 . " WHERE usename = 'sophon_reader'"));
    Test::More::note(sprintf "$name - the stuck query was gone %.2f s after the 504",
         $gone);

    unlock_table();
}

sub freeze {
    my ($block) = @_;
    ok(pg_freeze() >= 2, $block->name . " - the postmaster and its children"
                         . " are stopped");
}

sub thaw_after {
    my ($block, $tag, $min, $max, $why) = @_;
    my $name = $block->name;
    pg_thaw();
    took($name, $tag, $min, $max);
    error_log_has($name, $tag, $why);
}

sub terminate_idle {
    my ($block) = @_;
    my $name = $block->name;
    is(backend_count(), 1, "$name - one connection in the pool");
    is(terminate_backends(undef, 5000), 1,
       "$name - its backend is terminated and gone");
}

sub final_health {
    my ($block) = @_;
    my $name = $block->name;
    ok(eval { pg_ensure_up() }, "$name - the cluster is up") or diag($@);
    is(eval { SophonTest::psql('SELECT 1') }, '1',
       "$name - SELECT 1 through the admin conninfo");
    my @stopped;
    if (my $pm = postmaster_pid()) {
        for my $pid ($pm, children_of($pm)) {
            open my $in, '<', "/proc/$pid/stat" or next;
            push @stopped, $pid if (<$in> // '') =~ /^\d+ \(.*\) T /;
        }
    }
    ok(!@stopped, "$name - no process of the cluster is stopped")
        or diag("stopped: @stopped");
}

# --------------------------------------------------------------------------

# Each block starts from a healthy cluster, whatever the one before left
# (an action that died half way): nothing forked still runs, nothing is
# frozen or locked.
add_block_preprocessor(sub {
    my $block = shift;

    pg_thaw();
    stop_all_clients();

    eval { pg_ensure_up() };
    warn "008-db-faults: the database is not healthy: $@" if $@;

    if (my $code = $block->before_start) {
        $code->($block);
    }

    return $block;
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run;
    my $after = $block->after_response;
    return unless ref $after eq 'ARRAY' && $after->[$req_idx];
    eval { $after->[$req_idx]->($block, $body); 1 }
        or fail($block->name . " - the action after request $req_idx: $@");
});

our $HttpConfig = <<'_EOC_';
    log_format faults '$request_uri $status $request_time';
_EOC_

run_tests();

__DATA__

=== TEST 1: PostgreSQL is down when nginx starts: a quick 503, then served as soon as it is up
Connection refused is a 503 at once, well under the 5 s connect timeout.
--- before_start eval: sub { main::pg_stop() }
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["GET /SophonFace/api/events?_=b1r0",
 "GET /SophonFace/api/events?per_page=2&_=b1r1",
 "GET /SophonFace/api/events?per_page=2&page=1&_=b1r2"]
--- after_response eval
[\&main::refused_then_start]
--- error_code eval
[503, 200, 200]
--- response_body_like eval
[main::error_re(503), $SophonTest::Page, $SophonTest::Page]
--- timeout: 3
--- no_error_log
[alert]
[crit]



=== TEST 2: PostgreSQL restarted under load (pg_ctl -m fast): no hang, dead connections are never handed out
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2;
        sophon_events_connect_timeout 1s;
        sophon_events_query_timeout 3s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1&_=b2r0",
 map { "GET /SophonFace/api/events?per_page=3&page=$_&_=b2r" . ($_ + 1) } 0 .. 5]
--- after_response eval
[sub { main::restart_under_load($_[0], 'fast', 'b2load') }]
--- error_code eval
[(200) x 7]
--- response_body_like eval
[($SophonTest::Page) x 7]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 3: PostgreSQL restarted under load (pg_ctl -m immediate): no hang, dead connections are never handed out
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2;
        sophon_events_connect_timeout 1s;
        sophon_events_query_timeout 3s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1&_=b3r0",
 map { "GET /SophonFace/api/events?per_page=3&page=$_&_=b3r" . ($_ + 1) } 0 .. 5]
--- after_response eval
[sub { main::restart_under_load($_[0], 'immediate', 'b3load') }]
--- error_code eval
[(200) x 7]
--- response_body_like eval
[($SophonTest::Page) x 7]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 4: pg_terminate_backend() while the query waits on a lock: a 500/503 at once, not a hang
The query waits on ACCESS EXCLUSIVE held for 15 s by a superuser
transaction; its backend is killed as soon as it waits.
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_query_timeout 20s;
    }
    location = /static {
        return 200 "ok";
    }
--- request eval
["GET /static?_=b4r0",
 "GET /SophonFace/api/events?per_page=1&_=b4r1",
 "GET /SophonFace/api/events?per_page=1&_=b4r2"]
--- after_response eval
[\&main::lock_and_kill, \&main::killed_while_waiting]
--- error_code_like eval
['^200$', '^50[03]$', '^200$']
--- response_body_like eval
['^ok$', '^\{"error":\{"code":50[03]00,"message":"[^"]+","status":"(?:INTERNAL_ERROR|SERVICE_UNAVAILABLE)"\}\}$', $SophonTest::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 5: a query stuck on a lock: 504 after sophon_events_query_timeout, the worker serves meanwhile, the server stops the query
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_query_timeout 1s;
    }
    location = /static {
        return 200 "ok";
    }
--- request eval
["GET /static?_=b5r0",
 "GET /SophonFace/api/events?per_page=1&_=b5r1",
 "GET /SophonFace/api/events?per_page=1&_=b5r2"]
--- after_response eval
[\&main::lock_and_probe, \&main::timed_out_while_waiting]
--- error_code eval
[200, 504, 200]
--- response_body_like eval
['^ok$', main::error_re(504), $SophonTest::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 6: a backend killed while idle in the pool: the next request is served
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["GET /SophonFace/api/events?per_page=1&_=b6r0",
 "GET /SophonFace/api/events?per_page=2&_=b6r1",
 "GET /SophonFace/api/events?per_page=2&page=1&_=b6r2"]
--- after_response eval
[\&main::terminate_idle]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[$SophonTest::Page, $SophonTest::Page, $SophonTest::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 7: PostgreSQL frozen (SIGSTOP), a new connection: 503 after sophon_events_connect_timeout
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_connect_timeout 1s;
        sophon_events_query_timeout 10s;
    }
    location = /static {
        return 200 "ok";
    }
--- request eval
["GET /static?_=b7r0",
 "GET /SophonFace/api/events?per_page=1&_=b7r1",
 "GET /SophonFace/api/events?per_page=1&_=b7r2"]
--- after_response eval
[\&main::freeze,
 sub { main::thaw_after($_[0], 'b7r1', 0.9, 2,
                        qr/cannot connect to the database: timed out/) }]
--- error_code eval
[200, 503, 200]
--- response_body_like eval
['^ok$', main::error_re(503), $SophonTest::Page]
--- timeout: 4
--- no_error_log
[alert]
[crit]



=== TEST 8: PostgreSQL frozen (SIGSTOP), a pooled connection: 504 after sophon_events_query_timeout
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_connect_timeout 1s;
        sophon_events_query_timeout 1s;
    }
--- request eval
["GET /SophonFace/api/events?per_page=1&_=b8r0",
 "GET /SophonFace/api/events?per_page=1&_=b8r1",
 "GET /SophonFace/api/events?per_page=1&_=b8r2"]
--- after_response eval
[\&main::freeze,
 sub { main::thaw_after($_[0], 'b8r1', 0.9, 2,
                        qr/the database did not answer in time/) }]
--- error_code eval
[200, 504, 200]
--- response_body_like eval
[$SophonTest::Page, main::error_re(504), $SophonTest::Page]
--- timeout: 4
--- no_error_log
[alert]
[crit]



=== TEST 9: the cluster is left up and healthy for the files that follow
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/faults.log faults;
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
    location = /static {
        return 200 "ok";
    }
--- request eval
["GET /static?_=b9r0",
 "GET /SophonFace/api/events?per_page=1&_=b9r1"]
--- after_response eval
[\&main::final_health]
--- error_code eval
[200, 200]
--- response_body_like eval
['^ok$', $SophonTest::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]
