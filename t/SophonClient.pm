package SophonClient;

# What the tests that talk to nginx and PostgreSQL over their own sockets
# share (t/009-clients.t, t/015-slow-client.t, t/016-sessions.t, ...): the
# database through psql as the superuser ($TEST_NGINX_SOPHON_ADMIN_DB), the
# module's backends in pg_stat_activity, a table or row lock that makes its
# queries wait, scripts run by a psql in the background, nginx's master and
# workers and their sockets in /proc, nginx's logs, raw HTTP clients
# (blocking, non-blocking, slow), responses parsed and checked against
# SophonTest's oracle, forked clients bounded in count and time, and
# commands bounded in time.  What it started and still runs is stopped at
# the end of the script that loaded it (stop_helpers).
#
#   use lib 't';
#   use SophonClient qw(:all);
#
# The suite's one raw HTTP client: request_text() writes a request,
# http_send() connects and sends it, http_pump() reads, parse_http() parses;
# http_request() is the four at once, ka_open()/ka_request()/ka_close() the
# same requests one after another over a keep-alive connection, and
# sse_open()/sse_read() a client of the live stream.
#
# Every wait is bounded.  Nothing here runs a test (no ok/is): callers do.

use strict;
use warnings;

use Exporter 'import';
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use File::Temp ();
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF SO_LINGER
              inet_aton sockaddr_in);
use Time::HiRes ();

use SophonTest ();

our @EXPORT_OK = qw(
    $Api now wait_until reap run_cmd psql_rows psql_start module_backends
    describe_backends backend_count terminate_backends
    admin_conninfo db_sessions errlog acclog logfile log_since log_entries
    ports_of db_sockets
    request_text http_connect http_send http_pump parse_http http_end
    http_request ka_open ka_request ka_close headers_of
    check_page full_request
    served_by slow_read close_rst start_clients stop_clients
    wait_clients stop_all_clients stop_helpers use_scenarios nginx_accepts
    files_under open_files_under
    lock_table unlock_table lock_held lock_waiters lock_row end_row_lock
    master_pid alive children_of worker_pids listen_ports
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $Api = '/SophonFace/api/events';

# psql's application_name: the module's own is 'nginx sophon_events'
our $AppName = 'sophon_test_check';

# the application_name of lock_table()'s background psql
our $LockerAppName = 'sophon_test_locker';

# the application_name of lock_row()'s background psql
our $RowLockerAppName = 'sophon_test_row_locker';

my $JSON = eval { require JSON::XS; 'JSON::XS' } || 'JSON::PP';
my $json = $JSON->new->utf8;

sub now { Time::HiRes::time() }

# the process that loaded this module: its END stops what it started
my $MainPid = $$;

# the port nginx listens on (Test::Nginx's, the real one's or ours)
sub server_port {
    return $ENV{TEST_NGINX_SERVER_PORT}
        || eval { Test::Nginx::Socket::server_port() }
        || $ENV{TEST_NGINX_PORT} || 1984;
}

sub server_root {
    return $ENV{TEST_NGINX_SERVER_ROOT}
        || eval { Test::Nginx::Socket::server_root() };
}

# --------------------------------------------------------------------------
# The database, through psql (bounded: connect and statement timeouts)

# the superuser's conninfo, to another database of the cluster (so that
# the checks are not sessions of the database they count)
sub admin_conninfo {
    my ($dbname) = @_;
    my $c = $ENV{TEST_NGINX_SOPHON_ADMIN_DB}
        or die "TEST_NGINX_SOPHON_ADMIN_DB is not set: run with util/run-tests\n";
    $c =~ s/\bdbname=\S+/dbname=$dbname/ if defined $dbname;
    return $c;
}

# psql_rows(SQL[, CONNINFO]): [[col, ...], ...], tab-separated; dies on
# an error
sub psql_rows {
    my ($sql, $conninfo) = @_;

    local $ENV{PGCONNECT_TIMEOUT} = 5;
    local $ENV{PGOPTIONS} = '-c statement_timeout=10s';
    local $ENV{PGAPPNAME} = $AppName;

    open my $fh, '-|', 'psql', $conninfo // admin_conninfo(), '-X', '-q',
         '-A', '-t', '-F', "\t", '-v', 'ON_ERROR_STOP=1', '-c', $sql
        or die "psql: $!\n";
    my @rows = map { chomp; [ split /\t/, $_, -1 ] } <$fh>;
    close $fh or die "psql failed ($?): $sql\n";

    return \@rows;
}

# the module's backends: [{pid, user, state, wait, event, port, start},
# ...]: wait is pg_stat_activity's wait_event_type, event its wait_event
sub module_backends {
    my $rows = psql_rows(
        "SELECT pid, usename, state, coalesce(wait_event_type, ''),"
        . " coalesce(client_port, -1), extract(epoch FROM backend_start),"
        . " coalesce(wait_event, '')"
        . " FROM pg_stat_activity"
        . " WHERE application_name = 'nginx sophon_events'",
        # from the "postgres" database: not a session of the one counted
        admin_conninfo('postgres'));

    return [ map { { pid => $_->[0], user => $_->[1], state => $_->[2],
                     wait => $_->[3], port => $_->[4], start => $_->[5],
                     event => $_->[6] } }
             @$rows ];
}

sub describe_backends {
    my ($b) = @_;
    return join ', ', map { "$_->{pid} $_->{user} $_->{state}"
                            . ($_->{wait} ne ''
                               ? " (waits: $_->{wait} $_->{event})" : '')
                            . " port $_->{port}" } @$b;
}

# the number of the module's backends; those waiting for WAIT (a
# wait_event_type) when it is given
sub backend_count {
    my ($wait) = @_;
    return scalar grep { !defined $wait || $_->{wait} eq $wait }
                       @{ module_backends() };
}

# terminate_backends([WHERE[, MS]]): pg_terminate_backend() of the
# module's backends (those WHERE, SQL on pg_stat_activity, also says),
# waiting at most MS milliseconds for each to end when MS is given; the
# number of them terminated (and, with MS, gone)
sub terminate_backends {
    my ($where, $ms) = @_;
    return psql_rows(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid"
        . (defined $ms ? ", $ms" : '') . ") AS done FROM pg_stat_activity"
        . " WHERE application_name = 'nginx sophon_events'"
        . (defined $where ? " AND ($where)" : '') . ") k WHERE done")->[0][0];
}

# psql_start(SQL): a psql in the background that runs the script as the
# superuser, stopping at its first error, its output discarded (its
# errors on stderr); its pid, for reap(), which gives its exit status (0:
# the whole script ran)
sub psql_start {
    my ($sql) = @_;
    my $conninfo = admin_conninfo();

    # UNLINK: gone at this process's end even if the child never ran
    my ($fh, $file) = File::Temp::tempfile('sophon-psql-XXXXXX', TMPDIR => 1,
                                           SUFFIX => '.sql', UNLINK => 1);
    binmode $fh;
    print $fh $sql;
    close $fh or die "$file: $!\n";

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        # psql reads the script from its stdin: the file can go at once
        open STDIN, '<', $file or POSIX::_exit(127);
        unlink $file;
        open STDOUT, '>', '/dev/null';
        $ENV{PGCONNECT_TIMEOUT} = 5;
        exec('psql', $conninfo, '-X', '-q', '-v', 'ON_ERROR_STOP=1',
             '-f', '-')
            or POSIX::_exit(127);
    }

    return $pid;
}

# pg_stat_database.sessions of the test database (the module's), read from
# the "postgres" database: the sessions ever opened to it.  A backend adds
# its own when it reports its statistics (at the latest when it has been
# idle 10 s, or when it ends): wait for them to settle before comparing.
sub db_sessions {
    my ($db) = $ENV{TEST_NGINX_SOPHON_DB} =~ /\bdbname=(\S+)/;
    $db //= 'sophon';
    my $rows = psql_rows("SELECT sessions FROM pg_stat_database"
                         . " WHERE datname = '$db'", admin_conninfo('postgres'));
    return $rows->[0][0];
}

# calls $cond every $step seconds until it returns true or $timeout
# seconds have passed; returns its last value and the time it took
sub wait_until {
    my ($timeout, $step, $cond) = @_;
    my $start = now();
    my $v;

    while (1) {
        $v = $cond->();
        last if $v || now() - $start >= $timeout;
        Time::HiRes::sleep($step);
    }

    return ($v, now() - $start);
}

# waits for a child at most $timeout seconds, then kills it
sub reap {
    my ($pid, $timeout) = @_;
    my $deadline = now() + $timeout;

    while (now() < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid || $r == -1;
        Time::HiRes::sleep(0.02);
    }

    kill 'TERM', $pid;
    Time::HiRes::sleep(0.2);
    kill 'KILL', $pid if waitpid($pid, POSIX::WNOHANG()) == 0;
    waitpid($pid, 0);
    return 'killed';
}

# run_cmd(TIMEOUT, CMD...): runs CMD (no shell) from /, its stdin
# /dev/null, its output and errors captured; kills it past TIMEOUT
# seconds.  Returns (its exit code, or -1 when it was killed, what it
# printed).
sub run_cmd {
    my ($timeout, @cmd) = @_;
    my $out = File::Temp->new(TEMPLATE => 'sophon-cmd-XXXXXX', TMPDIR => 1);

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename;
        open STDERR, '>&', \*STDOUT;
        chdir '/';
        exec @cmd or POSIX::_exit(127);
    }

    my $deadline = now() + $timeout;
    my $status;
    while (1) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $status = $? >> 8;
            last;
        }
        if (now() > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $status = -1;
            last;
        }
        Time::HiRes::sleep(0.02);
    }

    open my $in, '<', $out->filename;
    my $text = do { local $/; <$in> } // '';
    $text .= "\n(killed after $timeout s)" if $status == -1;
    return ($status, $text);
}

# --------------------------------------------------------------------------
# The slow query: a table lock held by a background psql
#
# lock_table(MAX) starts a psql (application_name $LockerAppName) that
# holds ACCESS EXCLUSIVE on sophon_events, which every query of the module
# waits for, until unlock_table() commits; its
# idle_in_transaction_session_timeout of MAX seconds, or the end of its
# input (this script's end), releases it otherwise.  Callers run
# unlock_table() in their cleanup: it does nothing when no lock is held.

my ($Locker, $LockerIn);

# the module's backends (as sophon_reader) waiting for a lock
sub lock_waiters {
    return scalar grep { $_->{user} eq 'sophon_reader' && $_->{wait} eq 'Lock' }
                       @{ module_backends() };
}

# whether the locker's table lock is granted (the count of such locks)
sub lock_held {
    return psql_rows(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        . " JOIN pg_stat_activity a ON a.pid = l.pid"
        . " WHERE c.relname = 'sophon_events'"
        . " AND a.application_name = '$LockerAppName'"
        . " AND l.mode = 'AccessExclusiveLock' AND l.granted")->[0][0];
}

sub lock_table {
    my ($max) = @_;    # seconds: released then at the latest

    die "a lock is already held\n" if $Locker;

    pipe(my $r, my $w) or die "pipe: $!\n";

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        close $w;
        open STDIN, '<&', $r;
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        $ENV{PGAPPNAME} = $LockerAppName;
        $ENV{PGCONNECT_TIMEOUT} = 5;
        exec('psql', admin_conninfo(), '-X', '-q',
             '-v', 'ON_ERROR_STOP=1', '-f', '-')
            or POSIX::_exit(127);
    }

    close $r;
    $w->autoflush(1);
    ($Locker, $LockerIn) = ($pid, $w);

    local $SIG{PIPE} = 'IGNORE';
    print $w "SET idle_in_transaction_session_timeout = '${max}s';\n"
             . "BEGIN;\n"
             . "LOCK TABLE sophon_events IN ACCESS EXCLUSIVE MODE;\n";

    my ($held) = wait_until(5, 0.02, sub { lock_held() > 0 });
    die "the table lock was not taken in 5 s\n" if !$held;
}

# commits: psql executes each statement as it reads it, then ends at the
# end of its input
sub unlock_table {
    return if !$Locker;

    {
        local $SIG{PIPE} = 'IGNORE';
        print $LockerIn "COMMIT;\n";
        close $LockerIn;
    }

    reap($Locker, 5);
    ($Locker, $LockerIn) = ();

    my ($free) = wait_until(5, 0.02, sub { lock_held() == 0 });
    die "the table lock is still held\n" if !$free;
}

# A row lock: lock_row(ID, SECONDS) starts a psql (application_name
# $RowLockerAppName) that locks the row of sophon_events with this id FOR
# UPDATE (what a DELETE of it waits for; a query that only reads does
# not), holds it SECONDS, then commits and ends.  It returns once the
# psql sleeps with the lock (dies if that takes more than 5 s); an id
# that no row has locks nothing.  end_row_lock(TIMEOUT) waits at most
# TIMEOUT seconds for the psql to end on its own, then kills it; it
# returns reap()'s status ('killed' when it had to), or undef when no row
# lock was taken.  Callers run it in their cleanup.

my $RowLocker;

sub lock_row {
    my ($id, $seconds) = @_;

    die "a row lock is already held\n" if $RowLocker;

    utf8::encode($id) if utf8::is_utf8($id);
    (my $literal = $id) =~ s/'/''/g;

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        local $ENV{PGAPPNAME} = $RowLockerAppName;
        SophonTest::psql_script("BEGIN;\nSELECT 1 FROM sophon_events WHERE id"
                                . " = '$literal' FOR UPDATE;\nSELECT pg_sleep("
                                . "$seconds);\nCOMMIT;\n");
        POSIX::_exit(0);
    }

    $RowLocker = $pid;

    my ($held) = wait_until(5, 0.05, sub {
        psql_rows("SELECT count(*) FROM pg_stat_activity"
                  . " WHERE application_name = '$RowLockerAppName'"
                  . " AND query LIKE '%pg_sleep%' AND state = 'active'")->[0][0];
    });
    die "the row lock was not taken in 5 s\n" if !$held;
}

sub end_row_lock {
    my ($timeout) = @_;
    return undef if !$RowLocker;

    my $status = reap($RowLocker, $timeout);
    undef $RowLocker;
    return $status;
}

# --------------------------------------------------------------------------
# nginx's logs and sockets

# the path of one of nginx's logs (a log_format's own file, ...)
sub logfile { server_root() . "/logs/$_[0]" }

sub errlog { logfile('error.log') }
sub acclog { logfile('access.log') }

# the lines of a log from a byte offset on
sub log_since {
    my ($file, $pos) = @_;
    open my $fh, '<', $file or return [];
    seek $fh, $pos, 0;
    return [ <$fh> ];
}

# the entries of an error log from a byte offset (default 0) on: each
# starts with its time stamp, and may span lines (libpq's messages hold
# newlines)
sub log_entries {
    my ($file, $pos) = @_;
    return split /\n(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/,
                 join '', @{ log_since($file, $pos // 0) };
}

# socket inode => pid, for the open sockets of these processes
sub socket_inodes {
    my %inode;

    for my $pid (@_) {
        for my $fd (glob "/proc/$pid/fd/*") {
            my $link = readlink($fd) // next;
            $inode{$1} = $pid if $link =~ /^socket:\[(\d+)\]/;
        }
    }

    return %inode;
}

# local TCP port => pid, for the sockets of these processes
sub ports_of {
    my %inode = socket_inodes(@_);
    my %port;

    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            next if @f < 10 || $f[1] !~ /:([0-9A-Fa-f]{4})$/;
            $port{ hex $1 } = $inode{ $f[9] } if $inode{ $f[9] };
        }
    }

    return \%port;
}

# pid => the number of its TCP sockets to the database (what the module
# holds: a connection it closed is gone from here at once, while its
# backend may still be in pg_stat_activity for a moment)
# Counted by socket inode: /proc/net/tcp is a walk of the kernel's hash
# tables, not a snapshot, and a socket that moves while it is read (a
# connection being opened or closed) can be listed twice; it is one socket.
sub db_sockets {
    my @pids = @_;
    my %inode = socket_inodes(@pids);
    my %n = map { $_ => 0 } @pids;
    my %seen;
    my $pgport = sprintf '%04X', $ENV{TEST_NGINX_SOPHON_PGPORT};

    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            next if @f < 10 || $f[2] !~ /:\Q$pgport\E$/;
            next if !$inode{ $f[9] } || $seen{ $f[9] }++;
            $n{ $inode{ $f[9] } }++;
        }
    }

    return \%n;
}

# --------------------------------------------------------------------------
# HTTP over our own sockets

# the request of a client: GET (or $method) of the API with this query:
# "$Api?QS" (no "?" when QS is undef).  Options: path => PATH, the
# request's path instead of $Api (then "PATH?QS", or PATH alone when QS is
# undef); headers => ["Name: value", ...], more header lines; keepalive =>
# 1, no "Connection: close".
sub request_text {
    my ($qs, $method, %opt) = @_;
    $method //= 'GET';
    my $target = ($opt{path} // $Api) . (defined $qs ? "?$qs" : '');
    return "$method $target HTTP/1.1\r\nHost: localhost\r\n"
           . join('', map { "$_\r\n" } @{ $opt{headers} || [] })
           . ($opt{keepalive} ? '' : "Connection: close\r\n") . "\r\n";
}

# a blocking socket connected to nginx, or undef and $!.  Options:
# rcvbuf => BYTES, the client's SO_RCVBUF, set before connect so that the
# TCP window is small from the start (a slow client then holds back the
# server after a few KB, not megabytes); port => PORT, another port of
# nginx's (default: the server's).
sub http_connect {
    my (%opt) = @_;
    my $sock;
    my $port = $opt{port} || server_port();

    if ($opt{rcvbuf}) {
        socket($sock, AF_INET, SOCK_STREAM, 0) or return undef;
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $opt{rcvbuf}) or return undef;
        connect($sock, sockaddr_in($port, inet_aton('127.0.0.1')))
            or return undef;
        binmode $sock;

    } else {
        $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port,
                                      Proto => 'tcp', Timeout => 5)
            or return undef;
        binmode $sock;
    }

    return $sock;
}

# connects and sends the request; undef and $! when the connection fails.
# The client: {sock, qs, sent, buf, method, request}, its socket
# non-blocking (http_pump() reads it).  Options: method => 'HEAD' (or
# 'DELETE', ...); path, headers and keepalive as in request_text(); rcvbuf
# and port as in http_connect().
sub http_send {
    my ($qs, %opt) = @_;
    my $sock = http_connect(%opt) or return undef;

    local $SIG{PIPE} = 'IGNORE';
    my $req = request_text($qs, $opt{method}, %opt);
    my $n = syswrite $sock, $req;
    return undef if !defined $n || $n != length $req;

    $sock->blocking(0);

    return { sock => $sock, qs => $qs, sent => now(), buf => '',
             method => $opt{method} // 'GET', request => $req };
}

# http_request(QS, %opt): one request over a connection of its own, read
# until the server closes it or timeout => SECONDS (30) have passed since
# it began: parse_http()'s hash; raw, the bytes received; start, end and
# elapsed, its times; timedout, true when the server had not closed the
# connection by then; error, why reading failed ('' if it did not).
# http_send()'s options; it dies when it cannot connect, unless option
# refused => 1: then error says why, and raw is ''.
sub http_request {
    my ($qs, %opt) = @_;
    my $start = now();
    my $timeout = $opt{timeout} // 30;

    my $c = http_send($qs, %opt);
    if (!$c) {
        die "connect: $!\n" if !$opt{refused};
        $c = { buf => '', error => "connect: $!", eof => now() };

    } else {
        http_pump([$c], $timeout - (now() - $start));
        close $c->{sock} if !$c->{eof};
    }

    my $r = parse_http($c->{buf});
    $r->{raw} = $c->{buf};
    $r->{start} = $start;
    $r->{end} = now();
    $r->{elapsed} = $r->{end} - $start;
    $r->{timedout} = $c->{eof} ? 0 : 1;
    $r->{error} = $c->{error} // '';
    return $r;
}

# reads one client at about $rate bytes a second (at most $rate / 10 at a
# time, every 0.1 s) until end of file, $seconds, or $done->() is true;
# $tick->() runs between reads (at most every 0.1 s).  Returns 'eof',
# 'done' or 'timeout'.
sub slow_read {
    my ($c, $rate, $seconds, $done, $tick) = @_;
    my $start = now();
    my $deadline = $start + $seconds;
    my $got = 0;
    my $sel = IO::Select->new($c->{sock});

    while (1) {
        return 'eof' if $c->{eof};
        return 'done' if $done && $done->();
        return 'timeout' if now() >= $deadline;

        $tick->() if $tick;

        my $may = int($rate * (now() - $start)) - $got;
        if ($may < 1 || !$sel->can_read(0.1)) {
            Time::HiRes::sleep(0.1) if $may < 1;
            next;
        }

        my $want = $may < $rate / 10 ? $may : int($rate / 10) || 1;
        my $buf;
        my $n = sysread $c->{sock}, $buf, $want;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            $c->{error} = "$!";
            $n = 0;
        }
        if ($n == 0) {
            $c->{eof} = now();
            close $c->{sock};
            return 'eof';
        }
        $c->{first} //= now();
        $c->{buf} .= $buf;
        $got += $n;
    }
}

# closes a client's socket with a reset (SO_LINGER 0) instead of a FIN
sub close_rst {
    my ($c) = @_;
    setsockopt($c->{sock}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $c->{sock};
    $c->{eof} //= now();
}

# listen_ports(WORD): the ports of the nginx.conf "listen 127.0.0.1:PORT"
# lines with WORD after them (sndbuf=, reuseport: how a block's own
# --- http_config marks its servers, whose ports the harness picks), in
# their order; dies if there is none
sub listen_ports {
    my ($word) = @_;
    my $conf = server_root() . '/conf/nginx.conf';
    open my $fh, '<', $conf or die "$conf: $!\n";
    my @ports = map { /listen\s+127\.0\.0\.1:(\d+)\s+\Q$word\E/ ? $1 : () }
                <$fh>;
    die "no listen with $word in $conf\n" if !@ports;
    return @ports;
}

# reads what the sockets of these clients have until each has reached
# end of file or is $ended->($c) (default: never), or $done->() is true, at
# most $timeout seconds; $fed->($c) runs after each read and at end of file
sub http_pump {
    my ($clients, $timeout, $done, $fed, $ended) = @_;
    my $deadline = now() + $timeout;

    while (1) {
        my @open = grep { !$_->{eof} && !($ended && $ended->($_)) }
                        @$clients;
        my $left = $deadline - now();
        last if !@open || ($done && $done->()) || $left <= 0;

        my $sel = IO::Select->new(map { $_->{sock} } @open);
        my @ready = $sel->can_read($left < 0.05 ? $left : 0.05);

        for my $c (@open) {
            next if !grep { $_ == $c->{sock} } @ready;

            while (1) {
                my $n = sysread $c->{sock}, my $buf, 65536;
                if (!defined $n) {
                    last if $!{EAGAIN} || $!{EWOULDBLOCK};
                    $c->{error} = "$!";
                    $n = 0;
                }
                if ($n == 0) {
                    $c->{eof} = now();
                    close $c->{sock};
                    $fed->($c) if $fed;
                    last;
                }
                $c->{first} //= now();
                $c->{buf} .= $buf;
                $fed->($c) if $fed;

                # a server as fast as the reader never runs the socket dry:
                # stop where the caller wants to, not at the end
                last if $done && $done->();
            }
        }
    }
}

# {status, headers, body, complete, bytes, framing, trailing, last_chunk,
# bad} of a raw response: framing is how its body ends ('chunked',
# 'length', or 'close': with the connection); trailing the bytes after
# its end, once complete; last_chunk true once the last chunk's size line
# (0) came; bad why the chunks are not HTTP/1.1 chunked framing (undef
# while they are, up to where they stop)
sub parse_http {
    my ($raw) = @_;
    my %r = (bytes => length $raw, complete => 0, body => '', trailing => 0);

    my $i = index $raw, "\r\n\r\n";
    return \%r if $i < 0;

    my $head = substr $raw, 0, $i;
    my $rest = substr $raw, $i + 4;

    ($r{status}) = $head =~ m{^HTTP/1\.[01] (\d{3}) };
    my %h;
    for my $line (split /\r\n/, $head) {
        $h{ lc $1 } = $2 if $line =~ /^([^:\s]+):\s*(.*)$/;
    }
    $r{headers} = \%h;

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $r{framing} = 'chunked';
        my ($pos, @parts) = (0);
        while (1) {
            my $eol = index $rest, "\r\n", $pos;
            last if $eol < 0;
            my $size = substr $rest, $pos, $eol - $pos;
            if ($size !~ /^([0-9A-Fa-f]+)[ \t]*$/) {
                $r{bad} = "a bad chunk size at $pos: " . substr($size, 0, 20);
                last;
            }
            $size = hex $1;
            if ($size == 0) {
                $r{last_chunk} = 1;
                $r{complete} = substr($rest, $eol + 2, 2) eq "\r\n";
                $r{trailing} = length($rest) - ($eol + 4) if $r{complete};
                last;
            }
            last if length($rest) < $eol + 2 + $size + 2;
            if (substr($rest, $eol + 2 + $size, 2) ne "\r\n") {
                $r{bad} = "a chunk without its CRLF at $pos";
                last;
            }
            push @parts, substr $rest, $eol + 2, $size;
            $pos = $eol + 2 + $size + 2;
        }
        $r{body} = join '', @parts;

    } elsif (defined $h{'content-length'}) {
        $r{framing} = 'length';
        $r{complete} = length($rest) >= $h{'content-length'};
        $r{trailing} = length($rest) - $h{'content-length'} if $r{complete};
        $r{body} = substr $rest, 0, $h{'content-length'};

    } else {
        $r{framing} = 'close';
        $r{body} = $rest;
        $r{complete} = 1;    # ends with the connection
    }

    return \%r;
}

# where the response at the start of RAW ends (the offset of the byte
# after it), or undef if it has not ended yet: after its last chunk, its
# Content-Length bytes, or its head when it has neither, or when it
# answers a HEAD (option head => 1).  Dies on a chunk size that is not
# one.
sub http_end {
    my ($raw, %opt) = @_;
    my $i = index $raw, "\r\n\r\n";
    return undef if $i < 0;

    my $head = substr $raw, 0, $i;
    my $pos = $i + 4;

    return $pos if $opt{head};

    if ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while (1) {
            my $eol = index $raw, "\r\n", $pos;
            return undef if $eol < 0;
            my ($size) = substr($raw, $pos, $eol - $pos) =~ /^([0-9A-Fa-f]+)/
                or die "a bad chunk size in: " . substr($raw, $pos, 40) . "\n";
            $size = hex $size;
            if ($size == 0) {
                return length $raw >= $eol + 4 ? $eol + 4 : undef;
            }
            $pos = $eol + 2 + $size + 2;
            return undef if $pos > length $raw;
        }
    }

    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
        return length $raw >= $pos + $1 ? $pos + $1 : undef;
    }

    return $pos;    # no body
}

# A keep-alive client, for thousands of requests in a few seconds:
# ka_open(%opt) connects (http_connect()'s options; dies when it cannot),
# ka_request(CLIENT, QS, %opt) sends request_text(QS, ...) without
# "Connection: close" and reads its answer to its end (http_end()), and
# ka_close(CLIENT) closes the connection.  ka_request's options: method,
# path and headers as in request_text(); timeout => SECONDS (20) for the
# answer.  It returns parse_http()'s hash, and raw, the answer's bytes.  A
# connection the server closed (after keepalive_requests, or "Connection:
# close") is opened again for the next request, and a request that it
# closed before any byte of the answer is sent once more; it dies when
# there is no answer in time, or the connection ends in the middle of it.

sub ka_open {
    my (%opt) = @_;
    my $sock = http_connect(%opt) or die "connect: $!\n";
    $sock->blocking(0);
    return { sock => $sock, buf => '', opt => \%opt };
}

sub ka_close {
    my ($c) = @_;
    close $c->{sock} if $c->{sock};
    undef $c->{sock};
}

sub ka_request {
    my ($c, $qs, %opt) = @_;
    my $method = $opt{method} // 'GET';
    my $timeout = $opt{timeout} // 20;
    my $req = request_text($qs, $method, %opt, keepalive => 1);
    my ($what) = $req =~ /^(\S+ \S+)/;

    for my $try (1, 2) {
        %$c = %{ ka_open(%{ $c->{opt} || {} }) } if !$c->{sock};

        local $SIG{PIPE} = 'IGNORE';
        my $n = syswrite $c->{sock}, $req;

        if (!defined $n || $n != length $req) {
            ka_close($c);
            next;
        }

        my $end;
        http_pump([$c], $timeout, sub {
            defined($end = http_end($c->{buf}, head => $method eq 'HEAD'));
        });

        if (!defined $end) {
            die "no answer in $timeout s to $what\n" if !$c->{eof};

            # closed: before any byte of the answer, try once more
            my $empty = $c->{buf} eq '';
            undef $c->{sock};
            $c->{buf} = '';
            next if $empty && $try == 1;
            die "the connection closed in the answer to $what\n";
        }

        my $raw = substr $c->{buf}, 0, $end, '';
        my $r = parse_http($raw);
        $r->{raw} = $raw;

        ka_close($c) if ($r->{headers}{connection} // '') =~ /close/i;

        return $r;
    }

    die "cannot send $what\n";
}

# a parsed response's headers as one string, "name: value; ..." in the
# order of their (lower-case) names, but those named in EXCEPT
sub headers_of {
    my ($r, @except) = @_;
    my %skip = map { lc $_ => 1 } @except;
    my $h = $r->{headers} || {};
    return join '; ', map { "$_: $h->{$_}" }
                      grep { !$skip{$_} } sort keys %$h;
}

# '' when the raw response is the 200 the fixtures give for $qs, else why
sub check_page {
    my ($raw, $qs) = @_;
    my $r = parse_http($raw);

    return "no response (" . length($raw) . " bytes)" if !defined $r->{status};
    return "status $r->{status}: " . substr($r->{body}, 0, 120)
        if $r->{status} != 200;
    return "incomplete 200 ($r->{bytes} bytes)" if !$r->{complete};

    my $data = eval { $json->decode($r->{body}) };
    return "invalid JSON: $@" if !$data;

    (my $clean = $qs) =~ s/&_=[^&]*//;
    my $want = SophonTest::expected($clean);

    my $got = join ',', map { $data->{pagination}{$_} // '-' }
                        qw(num_pages page per_page total_count);
    my $exp = join ',', map { $want->{pagination}{$_} }
                        qw(num_pages page per_page total_count);
    return "pagination $got, expected $exp" if $got ne $exp;

    my @ids = map { $_->{_id} } @{ $data->{data} };
    my @exp = map { $_->{_id} } @{ $want->{events} };
    return "events differ from the fixtures" if "@ids" ne "@exp";

    return '';
}

# one blocking request, read whole: ('' or why it failed, bytes received)
sub full_request {
    my ($qs, $timeout) = @_;

    my $c = http_send($qs) or return ("connect: $!", 0);
    http_pump([$c], $timeout);

    if (!$c->{eof}) {
        close $c->{sock};
        return ("no end in $timeout s", length $c->{buf});
    }

    return ($c->{buf} eq '' ? "connection closed without a response"
                                . ($c->{error} ? " ($c->{error})" : '')
                            : check_page($c->{buf}, $qs),
            length $c->{buf}, served_by($c->{buf}));
}

# the worker that answered (X-Worker-Pid: $pid, where configured)
sub served_by {
    my ($raw) = @_;
    my $h = parse_http($raw)->{headers} || {};
    return $h->{'x-worker-pid'} // 0;
}

# --------------------------------------------------------------------------
# Forked clients (and any other helper process of a test written in
# Perl): each runs $code->($id, $stopfile) and returns a hash that it
# hands back as JSON in a file; it never runs the END blocks

my @Clients;

sub start_clients {
    my ($n, $code) = @_;

    my $dir = File::Temp::tempdir('sophon-clients-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    my $set = { dir => $dir, stop => "$dir/stop", pids => [],
                started => now() };

    for my $id (1 .. $n) {
        my $pid = fork;
        die "fork: $!\n" if !defined $pid;

        if ($pid == 0) {
            $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
            srand($id * 7919 + $$);
            my $res = eval { $code->($id, $set->{stop}) }
                      || { died => "$@" };
            if (open my $out, '>', "$dir/$id.json") {
                print $out JSON::PP->new->encode($res);
                close $out;
            }
            POSIX::_exit(0);
        }

        push @{ $set->{pids} }, $pid;
    }

    push @Clients, $set;
    return $set;
}

# waits at most $timeout s (0: looks once) for the clients of a set to
# end; the pids of those still running
sub clients_left {
    my ($set, $timeout) = @_;
    my $deadline = now() + $timeout;
    my %left = map { $_ => 1 } @{ $set->{pids} };

    while (1) {
        for my $pid (keys %left) {
            my $r = waitpid($pid, POSIX::WNOHANG());
            delete $left{$pid} if $r == $pid || $r == -1;
        }
        last if !%left || now() >= $deadline;
        Time::HiRes::sleep(0.05);
    }

    return keys %left;
}

# tells them to stop, waits at most $timeout s; the results, merged
sub stop_clients {
    my ($set, $timeout) = @_;

    if (open my $fh, ">", $set->{stop}) { close $fh }

    my @left = clients_left($set, $timeout);
    my $killed = @left;
    reap($_, 0) for @left;
    @Clients = grep { $_ != $set } @Clients;

    my %all = (killed => $killed, failures => [], took => now() - $set->{started});
    for my $file (glob "$set->{dir}/*.json") {
        open my $in, '<', $file or next;
        my $res = eval { JSON::PP->new->decode(join '', <$in>) } or next;
        for my $k (keys %$res) {
            if (ref $res->{$k} eq 'ARRAY') {
                push @{ $all{$k} }, @{ $res->{$k} };
            } elsif ($k eq 'died') {
                push @{ $all{died} }, $res->{$k};
            } else {
                $all{$k} += $res->{$k};
            }
        }
        $all{reported}++;
    }

    return \%all;
}

# waits at most $timeout s for the clients to end on their own (without
# telling them to stop); true when they all have.  stop_clients() then
# collects their results.
sub wait_clients {
    my ($set, $timeout) = @_;
    return !clients_left($set, $timeout);
}

# stops every client set still running (a cleanup handler, an END block)
sub stop_all_clients {
    for my $set (@Clients) {
        if (open my $fh, ">", $set->{stop}) { close $fh }
        reap($_, 3) for @{ $set->{pids} };
    }
    @Clients = ();
}

# stops whatever this module started that still runs: the forked
# clients, the table lock (after a scenario, in a cleanup handler, and at
# the end of the process that loaded it, however the script ends)
sub stop_helpers {
    stop_all_clients();
    eval { unlock_table() };
}

END {
    if ($$ == $MainPid) {
        local $?;
        stop_helpers();
    }
}

# --------------------------------------------------------------------------
# Scenarios: a block's actions run after the answer to its first request
# (a plain page, checked by SophonTest like any other), inside the response
# body check, because Test::Base runs every eval section up front:
#   --- scenario: NAME     runs main::scenario_NAME($block) there
# Its later requests are then the "next request" that must still be served.
# $after->() runs after every scenario, however it ended (stop_helpers),
# and is the test's cleanup handler.  Every body is checked with
# SophonTest::check_body.

sub use_scenarios {
    my ($after) = @_;

    Test::Nginx::Socket::add_cleanup_handler($after) if $after;

    Test::Nginx::Socket::add_response_body_check(sub {
        my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
        return if $dry_run;

        local $_;    # the harness's loop over the checks aliases it

        SophonTest::check_body(@_);

        return if $req_idx != 0 || !defined $block->scenario;

        (my $name = $block->scenario) =~ s/^\s+|\s+$//g;
        my $code = main->can("scenario_$name")
            or die "no scenario $name\n";

        my $ok = eval { $code->($block); 1 };
        my $err = $@;
        $after->() if $after;
        Test::More::fail($block->name . " - the scenario ran to its end: $err")
            if !$ok;
    });
}

# --------------------------------------------------------------------------
# nginx and its files

# the master's pid (with master_on; else nginx's), from its pid file
sub master_pid {
    open my $fh, '<', server_root() . '/logs/nginx.pid' or return undef;
    my $pid = <$fh>;
    return defined $pid && $pid =~ /(\d+)/ ? $1 : undef;
}

# whether a process runs (a zombie does not)
sub alive {
    my ($pid) = @_;
    return 0 if !kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    return $stat !~ /^\d+ \(.*\) [ZX]/s;
}

# Under valgrind (TEST_NGINX_USE_VALGRIND) every nginx process is a
# valgrind process: its /proc/PID/cmdline is valgrind's command line, the
# same for the master and its workers, since nginx writes its process
# titles over the guest's copy of argv, which the kernel never shows.  The
# master names each worker it spawns in the error log instead (a notice:
# "start worker process PID").

# the pids the master logged as the workers it spawned
sub logged_workers {
    my ($master) = @_;
    return map { /\[notice\] $master#\d+: start worker process (\d+)$/
                 ? ($1 => 1) : () }
               @{ log_since(errlog(), 0) };
}

# the live children of a process (zombies are not), oldest first
sub children_of {
    my ($ppid) = @_;
    my @pids;

    for my $dir (glob '/proc/[0-9]*') {
        my ($pid) = $dir =~ m{(\d+)$};
        open my $fh, '<', "$dir/stat" or next;
        my $stat = <$fh> // '';
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        next if $stat !~ /^\d+ \(.*\) (\S) (\d+)/s || $2 != $ppid
                || $1 eq 'Z';
        push @pids, $pid;
    }

    return sort { $a <=> $b } @pids;
}

# the worker processes of the master, oldest first: its live children
# whose title is a worker's (under valgrind: that it logged as its workers)
sub worker_pids {
    my $master = master_pid() // return ();
    my $valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
    my %logged = $valgrind ? logged_workers($master) : ();

    return grep {
        my $cmd;
        $valgrind ? $logged{$_}
                  : open($cmd, '<', "/proc/$_/cmdline")
                    && (<$cmd> // '') =~ /worker process/
    } children_of($master);
}

# (1 or 0, what nginx said): whether nginx -t accepts this http{} content
# with the module loaded; for a test that must not start a server whose
# configuration the module under test does not know yet
sub nginx_accepts {
    my ($http) = @_;
    my $dir = File::Temp::tempdir('sophon-conf-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    mkdir "$dir/logs";
    my $modules = join '', map { "load_module $_;\n" }
                           grep { length } split /\s+/,
                           $ENV{TEST_NGINX_LOAD_MODULES} // '';
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!\n";
    print $fh "${modules}error_log $dir/logs/error.log;\npid $dir/nginx.pid;\n"
              . "events {}\nhttp {\n$http\n}\n";
    close $fh;

    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $out = `$bin -t -e $dir/logs/error.log -p $dir/ -c $dir/nginx.conf 2>&1`;
    return ($? == 0 ? 1 : 0, $out);
}

# the regular files under a directory (recursively)
sub files_under {
    my ($dir) = @_;
    my @files;
    my @todo = ($dir);
    while (defined(my $d = shift @todo)) {
        opendir my $dh, $d or next;
        for my $e (grep { !/^\.\.?$/ } readdir $dh) {
            my $path = "$d/$e";
            if (-d $path && !-l $path) { push @todo, $path }
            elsif (-f $path) { push @files, $path }
        }
    }
    return @files;
}

# the files under a directory that a process holds open (also those
# already unlinked): "PID: PATH" for each
sub open_files_under {
    my ($dir) = @_;
    my @open;
    for my $fd (glob '/proc/[0-9]*/fd/*') {
        my $link = readlink($fd) // next;
        next if index($link, "$dir/") != 0;
        my ($pid) = $fd =~ m{^/proc/(\d+)/};
        push @open, "$pid: $link";
    }
    return @open;
}

# --------------------------------------------------------------------------
# Server-Sent Events: clients of the live stream ($Api/stream)
#
# A stream client is a hash like http_send()'s: sse_open() connects and
# sends the request, sse_read() reads what comes and parses it as it comes:
# the HTTP head, the chunks, then the events the way a browser's
# EventSource does (WHATWG HTML, "Server-sent events"): lines end with CRLF,
# LF or CR; "field: value" (the one space after the colon is not part of
# the value); a line that starts with ":" is a comment; an empty line ends
# a block, which is an event when it had a "data" line.  The client holds:
#
#   status, headers   the response's (headers by lower-case name), once its
#                     head is in; body: the body so far, de-chunked
#   complete          the time the last chunk (0 CRLF CRLF) came, or undef
#   eof               the time the connection ended (as http_pump)
#   events            [{ id, last_id, event, data, raw, at }, ...]: each
#                     event: id its own "id" field (undef if none), last_id
#                     the stream's last event ID then (EventSource's, kept
#                     from one event to the next), event its type
#                     ("message" if none), data its data lines joined with
#                     "\n", raw its block's bytes as sent, from its first
#                     line to its empty line, at the time it was parsed
#   blocks            [raw, ...]: every block in order, events or not
#                     (the "retry" block, heartbeat comments, ...)
#   comments          [{ text, at }, ...]: the comment lines
#   retry             the last "retry" field's value
#   last_id           the stream's last event ID (what a reconnect sends:
#                     an "id" field counts once its block's empty line came)
#   bad               [why, ...]: what is not HTTP/1.1 chunked framing
#
# Every wait is bounded; nothing here runs a test.

our $StreamPath = "$Api/stream";

# sse_open(QS, %opt): GET (method => 'HEAD', ...) $StreamPath?QS; options:
# last_event_id => ID sends the Last-Event-ID header; headers => ["Name:
# value", ...] more header lines; path => another path; close => 1 sends
# Connection: close; rcvbuf and port as in http_connect().  undef and $! when
# the connection fails.
sub sse_open {
    my ($qs, %opt) = @_;
    my $sock = http_connect(%opt) or return undef;

    my $method = $opt{method} // 'GET';
    my @headers = ('Accept: text/event-stream');
    push @headers, "Last-Event-ID: $opt{last_event_id}"
        if defined $opt{last_event_id};
    push @headers, @{ $opt{headers} || [] };

    my $req = request_text(defined $qs && $qs ne '' ? $qs : undef, $method,
                           path => $opt{path} // $StreamPath,
                           headers => \@headers, keepalive => !$opt{close});

    local $SIG{PIPE} = 'IGNORE';
    my $n = syswrite $sock, $req;
    return undef if !defined $n || $n != length $req;

    $sock->blocking(0);

    return { sock => $sock, qs => $qs, sent => now(), buf => '',
             method => $method, request => $req, body => '', events => [],
             blocks => [], comments => [], bad => [], last_id => '',
             # the parsers' positions: in buf (chunks), in body (lines)
             cpos => undef, lpos => 0, block => '', data => undef,
             type => undef, id => undef };
}

# sse_read(CLIENT or [CLIENTS], TIMEOUT[, DONE]): reads and parses what the
# clients' sockets have until each has ended (end of file, or its last
# chunk), DONE->() is true, or TIMEOUT seconds have passed; returns 'done',
# 'eof' (every client ended) or 'timeout'
sub sse_read {
    my ($clients, $timeout, $done) = @_;
    $clients = [ $clients ] if ref $clients eq 'HASH';
    my $ended = sub { $_[0]{complete} };

    http_pump($clients, $timeout, $done, \&sse_feed, $ended);

    return 'done' if $done && $done->();
    return 'eof' if !grep { !$_->{eof} && !$ended->($_) } @$clients;
    return 'timeout';
}

# reads until the client has N events (true), or TIMEOUT seconds, or its
# end (false)
sub sse_wait {
    my ($c, $n, $timeout) = @_;
    sse_read($c, $timeout, sub { @{ $c->{events} } >= $n });
    return @{ $c->{events} } >= $n;
}

# reads until no event has come for QUIET seconds (comments do not
# count), at most MAX seconds, or the end; returns the events that came
sub sse_quiet {
    my ($c, $quiet, $max) = @_;
    my $start = now();
    my $had = @{ $c->{events} };
    my ($n, $last) = ($had, now());

    sse_read($c, $max, sub {
        if (@{ $c->{events} } != $n) {
            ($n, $last) = (scalar @{ $c->{events} }, now());
        }
        now() - $last >= $quiet;
    });

    return @{ $c->{events} }[$had .. $#{ $c->{events} }];
}

# closes a stream client's socket (rst => 1: with a reset, as close_rst)
sub sse_close {
    my ($c, %opt) = @_;
    return if !$c->{sock} || $c->{closed}++;
    if ($opt{rst}) {
        close_rst($c);
    } else {
        close $c->{sock};
        $c->{eof} //= now();
    }
}

# parses what has come: the head, the chunks, the lines (sse_read calls it)
sub sse_feed {
    my ($c) = @_;

    if (!defined $c->{cpos}) {
        my $i = index $c->{buf}, "\r\n\r\n";
        return if $i < 0;

        my $head = substr $c->{buf}, 0, $i;
        ($c->{status}) = $head =~ m{^HTTP/1\.[01] (\d{3}) };
        my %h;
        for my $line (split /\r\n/, $head) {
            $h{ lc $1 } = $2 if $line =~ /^([^:\s]+):\s*(.*)$/;
        }
        $c->{headers} = \%h;
        $c->{head} = $head;
        $c->{cpos} = $i + 4;
        $c->{chunked} = ($h{'transfer-encoding'} // '') =~ /chunked/i;
        $c->{sse} = ($h{'content-type'} // '') =~ m{^text/event-stream};
        $c->{complete} = now() if $c->{method} eq 'HEAD';
    }

    if (!$c->{chunked}) {
        $c->{body} = substr $c->{buf}, $c->{cpos} if !$c->{complete};
        my $len = $c->{headers}{'content-length'};
        $c->{complete} //= now()
            if defined $len && length $c->{body} >= $len;

    } else {
        while (!$c->{complete}) {
            my $pos = $c->{cpos};
            my $eol = index $c->{buf}, "\r\n", $pos;
            last if $eol < 0;
            my $size = substr $c->{buf}, $pos, $eol - $pos;
            if ($size !~ /^([0-9A-Fa-f]+)(?:;[^\r\n]*)?$/) {
                push @{ $c->{bad} }, "a bad chunk size at $pos: "
                                     . substr($size, 0, 20);
                $c->{chunked} = 0;
                last;
            }
            $size = hex $1;
            if ($size == 0) {
                last if length $c->{buf} < $eol + 4;
                if (substr($c->{buf}, $eol + 2, 2) ne "\r\n") {
                    push @{ $c->{bad} }, "trailers after the last chunk";
                }
                $c->{complete} = now();
                $c->{cpos} = $eol + 4;
                $c->{after} = substr $c->{buf}, $eol + 4;
                last;
            }
            last if length $c->{buf} < $eol + 2 + $size + 2;
            if (substr($c->{buf}, $eol + 2 + $size, 2) ne "\r\n") {
                push @{ $c->{bad} }, "a chunk without its CRLF at $pos";
                $c->{chunked} = 0;
                last;
            }
            $c->{body} .= substr $c->{buf}, $eol + 2, $size;
            $c->{cpos} = $eol + 2 + $size + 2;
        }
    }

    return if !$c->{sse};

    my $end = $c->{eof} || $c->{complete};
    pos($c->{body}) = $c->{lpos};

    # a CR at the end may be the first half of a CRLF: it waits, unless
    # nothing more comes
    while ($c->{body} =~ /\G([^\r\n]*)(\r\n|\n|\r(?!\z))/gc
           || ($end && $c->{body} =~ /\G([^\r\n]*)(\r)/gc))
    {
        my ($line, $eol) = ($1, $2);
        $c->{lpos} = pos $c->{body};
        $c->{block} .= $line . $eol;
        sse_line($c, $line);
        pos($c->{body}) = $c->{lpos};
    }
}

sub sse_line {
    my ($c, $line) = @_;

    if ($line eq '') {
        # a blank line commits the id (a block cut before it does not)
        $c->{last_id} = $c->{id_buffer} // $c->{last_id};
        my $raw = $c->{block};
        push @{ $c->{blocks} }, $raw;
        push @{ $c->{block_at} }, now();
        if (defined $c->{data}) {
            push @{ $c->{events} }, {
                id => $c->{id}, last_id => $c->{last_id},
                event => $c->{type} // 'message',
                data => join("\n", @{ $c->{data} }),
                raw => $raw, at => now() };
        }
        @$c{qw(block data type id)} = ('', undef, undef, undef);
        return;
    }

    if ($line =~ /^:(.*)/s) {
        push @{ $c->{comments} }, { text => $1, at => now() };
        return;
    }

    my ($field, $value) = $line =~ /^([^:]*)(?::(.*))?$/s;
    $value //= '';
    $value =~ s/^ //;

    if ($field eq 'data') {
        push @{ $c->{data} }, $value;
    } elsif ($field eq 'event') {
        $c->{type} = $value;
    } elsif ($field eq 'id') {
        if (index($value, "\0") < 0) {
            $c->{id} = $value;
            $c->{id_buffer} = $value;
        }
    } elsif ($field eq 'retry') {
        $c->{retry} = $value if $value =~ /^\d+$/;
    }
}

push @EXPORT_OK, qw($StreamPath sse_open sse_read sse_wait sse_quiet
                    sse_close sse_feed);

# --------------------------------------------------------------------------
# HTTP/2 and TLS, through curl (t/030-h2-tls.t): curl runs in the
# background with its output in files, so that a test can stop it (a
# client that does not read), wait for it, and read what it has received
# so far, whole answers and live streams alike.

my @Curls;

# tls_cert(DIR): a self-signed certificate for 127.0.0.1 and localhost,
# valid for two days, made by openssl in DIR: (certificate file, key
# file); dies when openssl fails
sub tls_cert {
    my ($dir) = @_;
    my ($crt, $key) = ("$dir/cert.pem", "$dir/key.pem");

    my $pid = open my $fh, '-|';
    die "fork: $!\n" if !defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
             '-days', '2', '-subj', '/CN=localhost',
             '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
             '-keyout', $key, '-out', $crt)
            or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    die "openssl: $out\n" if $? != 0 || !-s $crt || !-s $key;

    return ($crt, $key);
}

# curl_start(URL, ARGS...): curl -sS -i -N ARGS URL in the background
# (-i: the status line and headers before the body, as nginx sent them;
# -N: each piece written as it comes).  The client: {pid, out, err,
# started, cmd}; dies when it cannot fork.
sub curl_start {
    my ($url, @args) = @_;
    my $dir = File::Temp::tempdir('sophon-curl-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    my @cmd = ('curl', '-sS', '-i', '-N', @args, $url);
    my $c = { out => "$dir/out", err => "$dir/err", started => now(),
              cmd => "@cmd" };

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $c->{out} or POSIX::_exit(127);
        open STDERR, '>', $c->{err} or POSIX::_exit(127);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }

    $c->{pid} = $pid;
    push @Curls, $c;
    return $c;
}

sub file_bytes {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    local $/;
    return scalar(<$fh>) // '';
}

# what curl has written on its standard output so far (bytes), and its
# standard error
sub curl_output { file_bytes($_[0]{out}) }
sub curl_stderr { file_bytes($_[0]{err}) }

# curl_wait(CLIENT, TIMEOUT): waits at most TIMEOUT seconds for curl to
# end (then kills it, and the exit is 'killed'); returns its exit code,
# also in exit ("signal N" when a signal ended it, 'lost' when it was
# reaped elsewhere)
sub curl_wait {
    my ($c, $timeout) = @_;
    return $c->{exit} if defined $c->{exit};

    kill 'CONT', $c->{pid};
    my $status = reap($c->{pid}, $timeout);
    curl_ended($c, $status);
    return $c->{exit};
}

# whether curl still runs (once it has ended, its exit is kept)
sub curl_running {
    my ($c) = @_;
    return 0 if defined $c->{exit};
    return 1 if waitpid($c->{pid}, POSIX::WNOHANG()) == 0;
    curl_ended($c, $?);
    return 0;
}

sub curl_ended {
    my ($c, $status) = @_;
    $c->{exit} = $status eq 'killed' ? 'killed'
               : $status == -1       ? 'lost'
               : $status & 127       ? 'signal ' . ($status & 127)
               :                       $status >> 8;
    $c->{ended} = now();
    @Curls = grep { $_ != $c } @Curls;
}

# stops curl: it reads nothing more until curl_cont(); curl_end() ends it
# (SIGTERM) and reaps it
sub curl_stop { kill 'STOP', $_[0]{pid} }
sub curl_cont { kill 'CONT', $_[0]{pid} }

sub curl_end {
    my ($c) = @_;
    return if defined $c->{exit};
    kill 'CONT', $c->{pid};
    kill 'TERM', $c->{pid};
    curl_wait($c, 3);
}

# ends every curl still running (a cleanup handler, an END block)
sub curl_end_all { curl_end($_) for @Curls }

# curl_response(CLIENT): {status, version, headers (by lower-case name),
# body} of what curl has received so far; status undef until the whole
# head is in
sub curl_response {
    my ($c) = @_;
    my $raw = curl_output($c);
    my %r = (body => '', headers => {});

    my $i = index $raw, "\r\n\r\n";
    return \%r if $i < 0;

    my ($line, @lines) = split /\r\n/, substr($raw, 0, $i);
    @r{qw(version status)} = $line =~ m{^HTTP/(\S+) (\d{3})};
    for (@lines) {
        $r{headers}{ lc $1 } = $2 if /^([^:\s]+):\s*(.*)$/;
    }
    $r{body} = substr $raw, $i + 4;

    return \%r;
}

# curl_sse(CLIENT): a live stream's client as sse_open() makes one (events,
# blocks, comments, last_id ...), of what curl has received so far; status
# and headers from curl's head (HTTP/2 has no chunks: the body is the
# stream's bytes); eof once curl has ended
sub curl_sse {
    my ($c) = @_;
    my $s = $c->{sse} //= {
        method => 'GET', buf => '', body => '', events => [], blocks => [],
        comments => [], bad => [], last_id => '', cpos => undef, lpos => 0,
        block => '', data => undef, type => undef, id => undef };

    $s->{buf} = curl_output($c);
    $s->{eof} = $c->{ended} if defined $c->{exit};
    sse_feed($s);

    my $r = curl_response($c);
    @$s{qw(status version)} = @$r{qw(status version)};

    return $s;
}

# curl_sse_wait(CLIENT, TIMEOUT, DONE): reads curl_sse(CLIENT) every 50
# ms until DONE->(stream) is true (returns true), TIMEOUT seconds have
# passed or curl has ended (false)
sub curl_sse_wait {
    my ($c, $timeout, $done) = @_;
    wait_until($timeout, 0.05, sub {
        my $running = curl_running($c);
        $done->(curl_sse($c)) || !$running;
    });
    return $done->(curl_sse($c));
}

# the module's only backend: its pid ('' when there is not exactly one)
sub sole_backend {
    my $b = module_backends();
    return @$b == 1 ? $b->[0]{pid} : '';
}

# the resident set of nginx's process of the pid file, in kB (with
# master_off, the one worker)
sub worker_rss {
    my $pid = master_pid() or return undef;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return undef;
}

push @EXPORT_OK, qw(tls_cert curl_start curl_output curl_stderr curl_wait
                    curl_running curl_stop curl_cont curl_end curl_end_all
                    curl_response curl_sse curl_sse_wait sole_backend
                    worker_rss);

1;
