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
use FindBin ();
use IO::Select ();
use IO::Socket::INET ();
use File::Spec ();
use File::Temp ();
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
our $AdminDb = $ENV{TEST_NGINX_SOPHON_ADMIN_DB}
    or die "TEST_NGINX_SOPHON_ADMIN_DB is not set: run with util/run-tests\n";
our $SophonPg = "$FindBin::Bin/../util/sophon-pg";
our $PgBin   = $ENV{SOPHON_PG_BIN} || '/usr/lib/postgresql/15/bin';
our $AppName = 'nginx sophon_events';
our $LockerApp = 'sophon_008_locker';

my $JSON = eval { require JSON::XS; JSON::XS->new->utf8 }
           || do { require JSON::PP; JSON::PP->new->utf8 };

our %Children;      # pid => what, for every process this file forks
our @Frozen;        # pids stopped with SIGSTOP
our $Locker;        # pid of the psql that holds the lock

# --------------------------------------------------------------------------
# Processes

# run_cmd(TIMEOUT, CMD...): runs CMD (no shell) with stdin from /dev/null,
# its output captured; kills it past TIMEOUT seconds.  Returns
# (exit status or -1 on timeout, output).
sub run_cmd {
    my ($timeout, @cmd) = @_;
    my $out = File::Temp->new(TEMPLATE => 'sophon-008-cmd-XXXXXX',
                              TMPDIR => 1);
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename;
        open STDERR, '>&', \*STDOUT;
        chdir '/';
        exec @cmd or POSIX::_exit(127);
    }

    my $deadline = Time::HiRes::time() + $timeout;
    my $status;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) { $status = $? >> 8; last }
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $status = -1;
            last;
        }
        Time::HiRes::sleep(0.02);
    }

    open my $in, '<', $out->filename;
    local $/;
    my $text = <$in> // '';
    $text .= "\n(killed after $timeout s)" if $status == -1;
    return ($status, $text);
}

# fork_child(WHAT, CODE): CODE runs in a child that never runs END blocks
sub fork_child {
    my ($what, $code) = @_;
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        my $rc = eval { $code->(); 1 } ? 0 : 1;
        warn "$what: $@" if $rc;
        POSIX::_exit($rc);
    }

    $Children{$pid} = $what;
    return $pid;
}

# reap(PID, TIMEOUT): waits for a child; kills it past TIMEOUT.  Returns
# its exit status, or undef when it had to be killed.
sub reap {
    my ($pid, $timeout) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid || $r == -1) {
            delete $Children{$pid};
            return $r == -1 ? 0 : $? >> 8;
        }
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    delete $Children{$pid};
    return undef;
}

# --------------------------------------------------------------------------
# The database

# psql_admin(SQL): the single value (or rows joined by newlines) of SQL run
# as the superuser; dies on error.  Never waits more than 10 s.
sub psql_admin {
    my ($sql) = @_;
    local $ENV{PGCONNECT_TIMEOUT} = 3;
    my ($rc, $out) = run_cmd(10, 'psql', $AdminDb, '-X', '-q', '-A', '-t',
                             '-v', 'ON_ERROR_STOP=1', '-c', $sql);
    chomp $out;
    die "psql: $sql: $out\n" if $rc != 0;
    return $out;
}

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

sub children_of {
    my ($ppid) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $in, '<', $stat or next;
        my $line = <$in> // next;
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return @pids;
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
    $Watchdog = fork_child('watchdog', sub {
        POSIX::setsid();
        sleep 15;
        kill 'CONT', @pids;
    });

    return scalar @Frozen;
}

sub pg_thaw {
    kill 'CONT', @Frozen if @Frozen;
    @Frozen = ();

    if ($Watchdog) {
        kill 'KILL', $Watchdog;
        reap($Watchdog, 2);
        undef $Watchdog;
    }

    # also whatever a lost list would miss: CONT on a running process is
    # harmless
    if (my $pm = postmaster_pid()) {
        kill 'CONT', $pm, children_of($pm);
    }
}

# the locker: a superuser transaction that holds ACCESS EXCLUSIVE on
# sophon_events for SECS seconds; returns once the lock is held
sub locker_start {
    my ($secs) = @_;
    locker_stop() if $Locker;

    $Locker = fork_child('locker', sub {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'psql', "$AdminDb application_name=$LockerApp", '-X', '-q',
             '-c', "BEGIN; LOCK TABLE sophon_events IN ACCESS EXCLUSIVE MODE;"
                   . " SELECT pg_sleep($secs); COMMIT;";
    });

    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        return 1 if psql_admin(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a"
            . " USING (pid) WHERE a.application_name = '$LockerApp'"
            . " AND l.mode = 'AccessExclusiveLock' AND l.granted"
            . " AND l.relation = 'sophon_events'::regclass") eq '1';
        Time::HiRes::sleep(0.05);
    }
    die "the locker did not get its lock in 10 s\n";
}

# ends the locker's transaction (a superuser's pg_sleep does not notice
# that its client went away: terminate its backend)
sub locker_stop {
    eval {
        psql_admin("SELECT pg_terminate_backend(pid, 5000)"
                   . " FROM pg_stat_activity"
                   . " WHERE application_name = '$LockerApp'");
    };
    warn "008-db-faults: cannot end the locker's backend: $@" if $@;
    reap($Locker, 5) if $Locker;
    undef $Locker;
}

# count of nginx's backends, with an extra condition
sub nginx_backends {
    my ($where) = @_;
    return psql_admin("SELECT count(*) FROM pg_stat_activity"
                      . " WHERE application_name = '$AppName'"
                      . ($where ? " AND ($where)" : ''));
}

# whatever happened: no frozen process, a running cluster that answers
sub pg_ensure_up {
    pg_thaw();
    pg_start() unless pg_running();
    locker_stop() if $Locker;

    my $deadline = Time::HiRes::time() + 30;
    while (1) {
        my $one = eval { psql_admin('SELECT 1') } // '';
        return 1 if $one eq '1';
        die "the database does not answer SELECT 1: $@\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.2);
    }
}

END {
    if ($$ == $MainPid) {
        local $?;
        for my $pid (keys %Children) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
        }
        %Children = ();
        undef $Locker;
        undef $Watchdog;
        eval { pg_ensure_up(); locker_stop() };
        warn "008-db-faults: the database is not healthy at exit: $@" if $@;
    }
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { warn "caught SIG$sig, cleaning up\n"; exit 1 };
}

# --------------------------------------------------------------------------
# HTTP, with a deadline

# http_get(PATH, LIMIT): { status (0: none), body (de-chunked), complete
# (the whole body arrived), timedout, error, start, end, elapsed }
sub http_get {
    my ($path, $limit) = @_;
    my %r = (status => 0, body => '', complete => 0, timedout => 0,
             error => '', start => Time::HiRes::time());
    my $deadline = $r{start} + $limit;
    my $raw = '';

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => server_port(),
                                     Proto => 'tcp', Timeout => $limit);
    if (!$sock) {
        $r{error} = "connect: $!";

    } else {
        $sock->blocking(0);
        my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n"
                  . "Connection: close\r\n\r\n";
        my $sel = IO::Select->new($sock);

        while (length $req) {
            my $left = $deadline - Time::HiRes::time();
            if ($left <= 0) { $r{timedout} = 1; last }
            next unless $sel->can_write($left);
            my $n = syswrite $sock, $req;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EINTR};
                $r{error} = "write: $!";
                last;
            }
            substr($req, 0, $n) = '';
        }

        while (!$r{timedout} && !$r{error}) {
            my $left = $deadline - Time::HiRes::time();
            if ($left <= 0) { $r{timedout} = 1; last }
            next unless $sel->can_read($left);
            my $n = sysread $sock, my $buf, 65536;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EINTR};
                $r{error} = "read: $!";
                last;
            }
            last if $n == 0;
            $raw .= $buf;
        }

        close $sock;
    }

    $r{end} = Time::HiRes::time();
    $r{elapsed} = $r{end} - $r{start};

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%r unless defined $head && $head =~ m{^HTTP/1\.[01] (\d{3})};
    $r{status} = $1;
    $body //= '';

    if ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        my $plain = '';
        while ($body =~ /\G([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
            my $size = hex $1;
            if ($size == 0) {
                $r{complete} = 1;
                last;
            }
            my $pos = pos $body;
            last if length($body) < $pos + $size + 2;
            $plain .= substr $body, $pos, $size;
            pos($body) = $pos + $size + 2;
        }
        $r{body} = $plain;

    } elsif ($head =~ /^Content-Length:\s*(\d+)/mi) {
        $r{complete} = length($body) == $1;
        $r{body} = $body;

    } else {
        $r{body} = $body;
    }

    return \%r;
}

# --------------------------------------------------------------------------
# Logs

sub log_text {
    my ($file) = @_;
    open my $in, '<', server_root() . "/logs/$file" or return '';
    local $/;
    return <$in> // '';
}

# the access log entry of the request tagged TAG: (status, request_time)
sub access_entry {
    my ($tag) = @_;
    for (1 .. 50) {
        for my $line (split /\n/, log_text('faults.log')) {
            return ($1, $2) if $line =~ /[?&]_=\Q$tag\E (\d{3}) ([\d.]+)$/;
        }
        Time::HiRes::sleep(0.02);
    }
    return;
}

# the error log entries of the request tagged TAG (an entry may span lines:
# libpq's messages hold newlines)
sub error_entries {
    my ($tag) = @_;
    return grep { /, request: "[A-Z]+ [^"]*[?&]_=\Q$tag\E[ &]/ }
           split /\n(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/,
                 log_text('error.log');
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
                  split /\n(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/,
                        log_text('error.log');
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
# The contract's error bodies

our %Error = (
    500 => '{"error":{"code":50000,"message":"the database answered with an unexpected error","status":"INTERNAL_ERROR"}}',
    503 => '{"error":{"code":50300,"message":"the database is unavailable","status":"SERVICE_UNAVAILABLE"}}',
    504 => '{"error":{"code":50400,"message":"the database did not answer in time","status":"GATEWAY_TIMEOUT"}}',
);

sub error_re { my $body = $Error{ $_[0] }; return qr/^\Q$body\E$/ }

our $Page = qr/^\{"data":\[\{.*\}\],"pagination":\{"num_pages":\d+,"page":\d+,"per_page":\d+,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$/s;

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
    is(eval { psql_admin('SELECT 1') }, '1', "$name - PostgreSQL is up again");
}

# LOAD_CLIENTS clients request pages again and again, each answer within
# LIMIT seconds, until STOP exists (or 20 s); each writes one line per
# request: start end status complete timedout problem
sub start_load {
    my ($dir, $tag, $clients, $limit) = @_;
    my @pids;
    for my $i (1 .. $clients) {
        push @pids, fork_child("load client $i", sub {
            open my $out, '>', "$dir/client-$i" or die "$dir/client-$i: $!\n";
            $out->autoflush(1);
            my $end = Time::HiRes::time() + 20;
            my $n = 0;
            while (!-e "$dir/STOP" && Time::HiRes::time() < $end) {
                my $per_page = (5, 20, 40)[$n % 3];
                my $page = $n % 7;
                my $r = http_get("/SophonFace/api/events?per_page=$per_page"
                                 . "&page=$page&_=$tag-$i-$n", $limit);
                my $problem = '';
                if ($r->{status} == 200 && $r->{complete}) {
                    $problem = page_ok($r->{body}, $per_page);
                } elsif ($r->{status} =~ /^50[034]$/ && $r->{complete}) {
                    $problem = "body: $r->{body}"
                        if $r->{body} ne $Error{ $r->{status} };
                }
                $problem =~ s/\s+/ /g;
                # nginx gone: do not spin on refused connections
                Time::HiRes::sleep(0.01) if $r->{status} == 0;
                print $out join("\t", $r->{start}, $r->{end}, $r->{status},
                                $r->{complete}, $r->{timedout},
                                $r->{error} || '-', $problem || '-'), "\n";
                $n++;
            }
        });
    }
    return @pids;
}

sub read_load {
    my ($dir) = @_;
    my @rows;
    for my $f (glob "$dir/client-*") {
        open my $in, '<', $f or next;
        while (my $line = <$in>) {
            chomp $line;
            my %r;
            @r{qw(start end status complete timedout error problem)} =
                split /\t/, $line;
            push @rows, \%r;
        }
    }
    return sort { $a->{start} <=> $b->{start} } @rows;
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
    my $dir = File::Temp->newdir('sophon-008-load-XXXXXX', TMPDIR => 1);

    my @pids = start_load("$dir", $tag, 4, 6);
    Time::HiRes::sleep(0.6);

    # requests surely in flight when the server goes: their queries wait on
    # a lock (the restart ends the locker too)
    locker_start(30);
    Time::HiRes::sleep(0.3);
    my $waiting = nginx_backends("wait_event_type = 'Lock'");

    my $t0 = Time::HiRes::time();
    my ($rc, $out) = pg_restart($mode);
    my $t1 = Time::HiRes::time();
    is($rc, 0, "$name - pg_ctl restart -m $mode") or diag($out);
    reap($Locker, 5);
    undef $Locker;
    is($waiting, 2, "$name - both pooled connections were waiting on the"
                    . " lock when the restart began");

    Time::HiRes::sleep(1.8);
    open my $stop, '>', "$dir/STOP";
    close $stop;

    my @hung = grep { !defined reap($_, 8) } @pids;
    ok(!@hung, "$name - every load client ended (none hangs)");

    my @rows = read_load("$dir");
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
    for (1 .. 40) {
        $n = nginx_backends();
        last if $n == 2;
        Time::HiRes::sleep(0.05);
    }
    is($n, 2, "$name - the pool holds its 2 connections");

    ($rc, $out) = pg_restart($mode);
    is($rc, 0, "$name - pg_ctl restart -m $mode, the pool idle") or diag($out);
    error_log_all_text($name);
}

# while a query of the module waits on the lock, pg_terminate_backend()
# its backend; returns the killer's pid
sub kill_waiting_backend {
    my ($tag) = @_;
    my $file = File::Temp->new(TEMPLATE => 'sophon-008-killer-XXXXXX',
                               TMPDIR => 1, UNLINK => 0)->filename;
    my $pid = fork_child('killer', sub {
        my $deadline = Time::HiRes::time() + 8;
        while (Time::HiRes::time() < $deadline) {
            my $killed = psql_admin(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid)"
                . " FROM pg_stat_activity WHERE application_name = '$AppName'"
                . " AND wait_event_type = 'Lock') k");
            if ($killed > 0) {
                open my $out, '>', $file or die "$file: $!\n";
                print $out Time::HiRes::time(), "\n";
                close $out;
                return;
            }
            Time::HiRes::sleep(0.05);
        }
    });
    return ($pid, $file);
}

our ($KillerPid, $KillerFile);

sub lock_and_kill {
    locker_start(15);
    ($KillerPid, $KillerFile) = kill_waiting_backend();
}

sub killed_while_waiting {
    my ($block) = @_;
    my $name = $block->name;
    my $rc = reap($KillerPid, 3);
    my $killed = -s $KillerFile;
    unlink $KillerFile;
    locker_stop();
    ok($killed, "$name - a backend of nginx was killed while it waited on"
                . " the lock") or diag("killer exit: " . ($rc // 'killed'));
    took($name, 'b4r1', 0, 3);
    error_log_has($name, 'b4r1',
                  qr/sophon_events: [^\n]*(?:terminating connection|server closed the connection)/);
}

# the prober: once nginx's query waits on the lock, a request to /static
# must be answered at once, while that query still waits
our ($ProberPid, $ProberFile);

sub lock_and_probe {
    locker_start(10);
    $ProberFile = File::Temp->new(TEMPLATE => 'sophon-008-probe-XXXXXX',
                                  TMPDIR => 1, UNLINK => 0)->filename;
    $ProberPid = fork_child('prober', sub {
        my $deadline = Time::HiRes::time() + 8;
        my $waiting = 0;
        while (Time::HiRes::time() < $deadline) {
            last if ($waiting = nginx_backends("wait_event_type = 'Lock'")) > 0;
            Time::HiRes::sleep(0.02);
        }
        my $r = $waiting ? http_get('/static?_=b5probe', 2) : {};
        my $still = $waiting ? nginx_backends("wait_event_type = 'Lock'") : 0;
        open my $out, '>', $ProberFile or die "$ProberFile: $!\n";
        print $out join("\t", $waiting, $r->{status} // 0,
                        $r->{body} // '', $r->{elapsed} // -1, $still), "\n";
        close $out;
    });
}

sub timed_out_while_waiting {
    my ($block) = @_;
    my $name = $block->name;
    my $answered = Time::HiRes::time();

    took($name, 'b5r1', 0.9, 2);
    error_log_has($name, 'b5r1', qr/the database did not answer in time/);

    my $rc = reap($ProberPid, 5);
    open my $in, '<', $ProberFile;
    my $line = $in ? <$in> // '' : '';
    unlink $ProberFile;
    chomp $line;
    my ($waiting, $status, $body, $elapsed, $still) = split /\t/, $line;

    ok($waiting, "$name - the prober saw the query wait on the lock")
        or diag("prober exit: " . ($rc // 'killed') . ", line: $line");
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
    while (1) {
        $left = psql_admin("SELECT count(*) FROM pg_stat_activity"
                           . " WHERE usename = 'sophon_reader'"
                           . " AND wait_event_type = 'Lock'");
        last if $left == 0 || Time::HiRes::time() > $answered + 2.5;
        Time::HiRes::sleep(0.05);
    }
    my $gone = Time::HiRes::time() - $answered;
    is($left, 0, "$name - no query of sophon_reader waits on the lock"
                 . " 2.5 s after the 504")
        or diag(psql_admin("SELECT pid, state, wait_event_type, query"
                           . " FROM pg_stat_activity"
                           . " WHERE usename = 'sophon_reader'"));
    Test::More::note(sprintf "$name - the stuck query was gone %.2f s after the 504",
         $gone);

    locker_stop();
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
    is(nginx_backends(), 1, "$name - one connection in the pool");
    is(psql_admin("SELECT count(*) FROM (SELECT pg_terminate_backend(pid,"
                  . " 5000) FROM pg_stat_activity WHERE application_name"
                  . " = '$AppName') k WHERE pg_terminate_backend"),
       1, "$name - its backend is terminated and gone");
}

sub final_health {
    my ($block) = @_;
    my $name = $block->name;
    ok(eval { pg_ensure_up() }, "$name - the cluster is up") or diag($@);
    is(eval { psql_admin('SELECT 1') }, '1',
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
    locker_stop();
    for my $pid (keys %Children) {
        kill 'KILL', $pid;
        reap($pid, 2);
    }

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
[main::error_re(503), $main::Page, $main::Page]
--- timeout: 3
--- no_error_log
[alert]
[crit]



=== TEST 2: PostgreSQL restarted under load (pg_ctl -m fast): no hang, dead connections are never handed out
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
[($main::Page) x 7]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 3: PostgreSQL restarted under load (pg_ctl -m immediate): no hang, dead connections are never handed out
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
[($main::Page) x 7]
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
['^ok$', '^\{"error":\{"code":50[03]00,"message":"[^"]+","status":"(?:INTERNAL_ERROR|SERVICE_UNAVAILABLE)"\}\}$', $main::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]



=== TEST 5: a query stuck on a lock: 504 after sophon_events_query_timeout, the worker serves meanwhile, the server stops the query
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
['^ok$', main::error_re(504), $main::Page]
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
[$main::Page, $main::Page, $main::Page]
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
['^ok$', main::error_re(503), $main::Page]
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
[$main::Page, main::error_re(504), $main::Page]
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
['^ok$', $main::Page]
--- timeout: 5
--- no_error_log
[alert]
[crit]
