# vi:filetype=perl

# A 200 cut by a database error once it has started to stream
# (shared/spec/events-api.md): the status cannot change any more, so the
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
use IO::Select ();
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton
              sockaddr_in);
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();
check_accum_error_log();

our $AppName = 'nginx sophon_events';
our $AdminDb = $ENV{TEST_NGINX_SOPHON_ADMIN_DB}
    or die "TEST_NGINX_SOPHON_ADMIN_DB is not set: run with util/run-tests\n";

sub now { Time::HiRes::time() }

# psql_admin(SQL): its output (-A -t), run as the superuser, bounded in time
sub psql_admin {
    my ($sql) = @_;
    local $ENV{PGCONNECT_TIMEOUT} = 5;
    local $ENV{PGOPTIONS} = '-c statement_timeout=10s';
    local $ENV{PGAPPNAME} = 'sophon_012_check';
    open my $fh, '-|', 'psql', $AdminDb, '-X', '-q', '-A', '-t',
         '-v', 'ON_ERROR_STOP=1', '-c', $sql
        or die "psql: $!\n";
    local $/;
    my $out = <$fh> // '';
    close $fh or die "psql failed ($?): $sql\n";
    $out =~ s/\s+\z//;
    return $out;
}

# the module's backends: "pid state wait_event" lines
sub backends {
    return psql_admin("SELECT pid || ' ' || coalesce(state, '') || ' '"
                      . " || coalesce(wait_event, '')"
                      . " FROM pg_stat_activity"
                      . " WHERE application_name = '$AppName'");
}

sub wait_until {
    my ($timeout, $cond) = @_;
    my $deadline = now() + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v || now() >= $deadline;
        Time::HiRes::sleep(0.05);
    }
}

# reads from $sock into $$raw until $done->() or EOF / error / deadline;
# returns 'done', 'eof', 'timeout' or 'error: ...'
sub read_until {
    my ($sock, $raw, $deadline, $done) = @_;
    my $sel = IO::Select->new($sock);
    while (1) {
        return 'done' if $done && $done->();
        my $left = $deadline - now();
        return 'timeout' if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            return "error: $!";
        }
        return 'eof' if $n == 0;
        $$raw .= $buf;
    }
}

# the chunked body: (data, last_chunk_seen, well_formed_up_to_the_end)
sub dechunk {
    my ($body) = @_;
    my ($data, $last) = ('', 0);
    pos($body) = 0;
    while ($body =~ /\G([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
        my $size = hex $1;
        if ($size == 0) {
            $last = 1;
            last;
        }
        my $at = pos $body;
        return ($data, 0, 1) if length($body) < $at + $size + 2;   # cut
        return ($data, 0, 0) if substr($body, $at + $size, 2) ne "\r\n";
        $data .= substr $body, $at, $size;
        pos($body) = $at + $size + 2;
    }
    return ($data, $last, 1);
}

# the nginx process (no master: it is its own worker)
sub nginx_pid {
    open my $fh, '<', server_root() . '/logs/nginx.pid' or return undef;
    my $pid = <$fh>;
    return defined $pid && $pid =~ /(\d+)/ ? $1 : undef;
}

my ($Locker, $Stopped);

# a background psql holds ACCESS EXCLUSIVE on sophon_events for at most 20 s
sub lock_table {
    $Locker = fork;
    die "fork: $!\n" if !defined $Locker;

    if ($Locker == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        $ENV{PGAPPNAME} = 'sophon_012_locker';
        $ENV{PGCONNECT_TIMEOUT} = 5;
        exec('psql', $AdminDb, '-X', '-q', '-c',
             'BEGIN; LOCK TABLE sophon_events IN ACCESS EXCLUSIVE MODE;'
             . ' SELECT pg_sleep(20); COMMIT;')
            or POSIX::_exit(127);
    }

    wait_until(10, sub {
        psql_admin("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                   . " ON c.oid = l.relation WHERE c.relname = 'sophon_events'"
                   . " AND l.mode = 'AccessExclusiveLock' AND l.granted") > 0
    }) or die "the table lock is not taken\n";
}

sub unlock_table {
    return if !$Locker;
    psql_admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
               . " WHERE application_name = 'sophon_012_locker'");
    waitpid $Locker, 0;
    $Locker = undef;
}

sub stop_nginx {
    my $pid = nginx_pid() or die "no nginx pid\n";
    kill 'STOP', $pid or die "SIGSTOP $pid: $!\n";
    $Stopped = $pid;
}

sub continue_nginx {
    return if !$Stopped;
    kill 'CONT', $Stopped;
    $Stopped = undef;
}

my $MainPid = $$;
END {
    if ($$ == $MainPid) {
        local $?;
        continue_nginx();
        eval { unlock_table() };
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
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || server_port() || 1984;

    lock_table();

    # a small receive buffer, set before connect so that the window is
    # small from the start
    socket(my $sock, AF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096)
        or die "setsockopt SO_RCVBUF: $!\n";
    connect($sock, sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "connect 127.0.0.1:$port: $!\n";
    binmode $sock;
    $sock->blocking(0);

    # keepalive (HTTP/1.1, no Connection: close): only the cut closes it
    my $req = "GET /SophonFace/api/events?per_page=1000 HTTP/1.1\r\n"
              . "Host: localhost\r\n\r\n";
    my $deadline = now() + 5;
    my $sel = IO::Select->new($sock);
    while (length $req) {
        die "cannot send the request in 5 s\n" if now() > $deadline;
        next unless $sel->can_write(0.5);
        my $n = syswrite $sock, $req;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            die "write: $!\n";
        }
        substr($req, 0, $n) = '';
    }

    # the statement waits for the lock; nginx stops; the lock goes
    ok(wait_until(10, sub { backends() =~ /^\d+ active relation$/m }),
       "$name - the statement waits for the table lock")
        or diag("backends: " . backends());

    stop_nginx();
    unlock_table();

    # the backend sends rows until the socket to the stopped nginx is full
    my $blocked = wait_until(10, sub {
        backends() =~ /^\d+ active ClientWrite$/m });
    ok($blocked, "$name - the module's backend is blocked writing rows")
        or diag("backends: " . backends());

    # kill it
    is(psql_admin("SELECT count(*) FROM (SELECT pg_terminate_backend(pid)"
                  . " FROM pg_stat_activity WHERE application_name"
                  . " = '$AppName') k WHERE pg_terminate_backend"),
       1, "$name - its backend is terminated");
    ok(wait_until(10, sub { backends() eq '' }),
       "$name - the backend is gone");

    continue_nginx();

    # everything, until the server closes the connection
    my $raw = '';
    my $start = now();
    my $got = read_until($sock, \$raw, now() + 15, undef);
    close $sock;
    ok($got eq 'eof' || $got =~ /^error: Connection reset/,
       "$name - the server closes the connection")
        or diag("reading: $got after " . sprintf('%.1f s', now() - $start));

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    $body //= '';
    like($head, qr{\AHTTP/1\.1 200 }, "$name - the status is 200");
    like($head, qr{^Transfer-Encoding:\s*chunked\r?$}mi,
         "$name - the body is chunked");
    ok(length($body) > 4096, "$name - the rows the socket held are sent")
        or diag(length($body) . " bytes of body");

    my ($data, $last, $sane) = dechunk($body);
    ok($sane, "$name - the chunks are well formed up to the cut");
    ok(!$last, "$name - no last chunk: the client can tell the page was cut")
        or diag("the body ends with: "
                . (substr($body, -40) =~ s/\r/\\r/gr =~ s/\n/\\n/gr));
    ok($body !~ /(?:\A|\r\n)0\r\n\r\n\z/,
       "$name - the body does not end with 0\\r\\n\\r\\n");
    like($data, qr/\A\{"data":\[\{/, "$name - the body is a page's start");
    unlike($data, qr/"pagination":\{[^{}]*\}\}\s*\z/,
           "$name - but not a whole page (no pagination at its end)");

    # the log says why, and the count it gives is short of the page
    open my $log, '<', server_root() . '/logs/error.log'
        or die "error.log: $!\n";
    my ($cut) = map { /answer cut after (\d+) events/ ? $1 : () } <$log>;
    close $log;
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

our $Page = qr/^\{"data":\[\{.*\}\],"pagination":\{"num_pages":\d+,"page":\d+,"per_page":\d+,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$/s;

run_tests();

__DATA__

=== TEST 1: a 200 cut by a killed backend: no last chunk, the connection closed, the reason logged, the next request served
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
[$main::Page, $main::Page]
--- timeout: 20
--- error_log
sophon_events: answer cut after
--- no_error_log
[alert]
[crit]
[emerg]
