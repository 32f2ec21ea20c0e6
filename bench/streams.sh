#!/usr/bin/env bash
# bench/streams.sh: what open live streams cost a worker, and how soon an
# event reaches them.
#
#   bench/streams.sh [-p PORT] [-s STREAMS] [-r RATE] [-d SECONDS] CONNINFO
#
# Starts nginx (one worker, its own prefix in a temporary directory, on
# 127.0.0.1:PORT, default 19886) with the built module and a stream
# location against the database CONNINFO (a superuser's libpq conninfo of
# a database with sql/schema.sql applied), reads the worker's VmRSS, opens
# STREAMS streams (default 1,000) from one Perl client (poll(), so past
# FD_SETSIZE), reads VmRSS again, measures the worker's CPU time over 10 s
# with every stream idle, then inserts RATE events a second (default 100)
# for SECONDS (default 10), each carrying the time it was written, from one
# psql session (each INSERT its own transaction), while the client reads
# every stream.  Prints RSS before and with the streams, idle CPU, the
# delay from insert to delivery over every (stream, event) pair (p50, p99,
# max), deliveries missing, the worker's CPU while events flow and the
# database backends of the module.  The events go in [1800000000,
# 1800001000] on camera "bench-stream" and are deleted at the end.
#
# Environment: SOPHON_MODULE (build/ngx_http_sophon_events_module.so),
# NGINX (/usr/sbin/nginx).  Exits 1 if a delivery is missing or an event
# comes twice.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." &&
       pwd -P)
PROG=${0##*/}
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${SOPHON_MODULE:-$ROOT/build/ngx_http_sophon_events_module.so}

port=19886
streams=1000
rate=100
seconds=10

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }
die() { echo "$PROG: $*" >&2; exit 1; }

while getopts 'p:s:r:d:h' opt; do
    case $opt in
    p) port=$OPTARG ;;
    s) streams=$OPTARG ;;
    r) rate=$OPTARG ;;
    d) seconds=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage 2 >&2
conninfo=$1

for n in "$port" "$streams" "$rate" "$seconds"; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "not a positive number: $n"
done
[ -f "$MODULE" ] || die "$MODULE is missing: run make first"
case $conninfo in *'"'*|*'\'*) die "CONNINFO must not hold \" or \\" ;; esac

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$conninfo" "$@"; }

q -c 'SELECT count(*) FROM sophon_event_deletions' >/dev/null ||
    die "no stream tables through: $conninfo (apply sql/schema.sql)"

range='ts BETWEEN 1800000000 AND 1800001000'
q -c "DELETE FROM sophon_events WHERE $range"

dir=$(mktemp -d /tmp/sophon-streams.XXXXXX)
master=
worker=

cleanup() {
    if [ -n "$master" ] && kill -0 "$master" 2>/dev/null; then
        kill -TERM "$master" 2>/dev/null || true
        wait "$master" 2>/dev/null || true
    fi
    if [ -n "$worker" ] && kill -0 "$worker" 2>/dev/null; then
        kill -KILL "$worker" 2>/dev/null || true
    fi
    q -c "DELETE FROM sophon_events WHERE $range" >/dev/null 2>&1 || true
    rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$dir/logs" "$dir/tmp"
chmod 755 "$dir"
user='#'
if [ "$(id -u)" = 0 ]; then
    user="user root;"
fi

cat > "$dir/nginx.conf" <<EOF
load_module $MODULE;
$user
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((streams * 2 + 1024));
pid logs/nginx.pid;
error_log logs/error.log info;

events {
    worker_connections $((streams + 1024));
}

http {
    access_log off;
    client_body_temp_path tmp/client_body;

    server {
        listen 127.0.0.1:$port backlog=4096;

        location = /SophonFace/api/events/stream {
            sophon_events_stream;
            sophon_events_db "$conninfo" connections=8;
            sophon_events_max_streams $streams;
        }
    }
}
EOF

ulimit -n $((streams * 2 + 1024)) 2>/dev/null ||
    die "cannot open $((streams * 2 + 1024)) files (ulimit -n)"

"$NGINX" -p "$dir/" -c nginx.conf -e logs/error.log &
master=$!

for _ in $(seq 100); do
    kill -0 "$master" 2>/dev/null || die "nginx exited: $(cat "$dir/logs/error.log")"
    worker=$(ps -o pid= --ppid "$master" | tr -d ' ' | head -n 1 || true)
    [ -n "$worker" ] && break
    sleep 0.1
done
[ -n "$worker" ] || die "no worker process"

# the writer: RATE inserts a second, each its own transaction, paced by the
# clock, each document with the time it was written
writer="$dir/writer.sql"
total=$((rate * seconds))
cat > "$writer" <<EOF
SELECT clock_timestamp() AS t0 \\gset
EOF
for i in $(seq 1 "$total"); do
    cat >> "$writer" <<EOF
INSERT INTO sophon_events (doc) SELECT json_build_object(
    '_id', 'bench-stream-$i', 'timestamp', 1800000000 + $i * 0.001,
    'written', extract(epoch FROM clock_timestamp()),
    'common', json_build_object('person_type', 1,
        'ep_info', json_build_object('device_id', 'bench-stream')));
SELECT pg_sleep(greatest(0, extract(epoch FROM :'t0'::timestamptz
    + interval '$i seconds' / $rate - clock_timestamp())));
EOF
done

export SOPHON_CONNINFO=$conninfo SOPHON_WRITER=$writer

rc=0
perl - "$port" "$worker" "$streams" "$total" <<'PERL' || rc=$?
use strict;
use warnings;

use IO::Poll qw(POLLIN);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(time sleep);

my ($port, $worker, $nstreams, $total) = @ARGV;
my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub rss {
    open my $in, '<', "/proc/$worker/status" or return 0;
    while (<$in>) { return $1 if /^VmRSS:\s+(\d+) kB/ }
    return 0;
}

sub cpu {
    open my $in, '<', "/proc/$worker/stat" or return 0;
    my @f = split ' ', (split /\) /, scalar <$in>)[1];
    return ($f[11] + $f[12]) / $hz;
}

sub backends {
    my $n = `psql -X -q -At -d "$ENV{SOPHON_CONNINFO}" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nginx sophon_events'"`;
    chomp $n;
    return $n;
}

my $rss0 = rss();
my $poll = IO::Poll->new;
my @s;

for my $i (1 .. $nstreams) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 5)
        or die "stream $i: connect: $!\n";
    print $sock "GET /SophonFace/api/events/stream?streams=bench-stream"
                . "&with_feature=0 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    $sock->blocking(0);
    $poll->mask($sock => POLLIN);
    push @s, { sock => $sock, buf => '', seen => {}, started => 0 };
}

my %by_fd = map { fileno($_->{sock}) => $_ } @s;
my (@delays, $dup, $events);

# reads what every stream has; an event's delay is now - its "written"
sub pump {
    my ($until, $cond) = @_;
    while (time < $until) {
        last if $cond && $cond->();
        $poll->poll(0.05);
        for my $sock ($poll->handles(POLLIN)) {
            my $st = $by_fd{ fileno $sock };
            my $n = sysread $sock, my $buf, 1 << 20;
            next if !defined $n;
            die "a stream ended\n" if $n == 0;
            my $now = time;
            $st->{buf} .= $buf;
            $st->{started} = 1 if $st->{buf} =~ /retry: 1000/;
            while ($st->{buf} =~ s/^.*?"_id"\s*:\s*"(bench-stream-\d+)"[^\n]*?"written"\s*:\s*([0-9.]+)//s) {
                $dup++ if $st->{seen}{$1}++;
                push @delays, $now - $2;
                $events++;
            }
            # keep what may be the start of an event
            $st->{buf} = substr $st->{buf}, -4096 if length $st->{buf} > 8192;
        }
    }
}

pump(time + 60, sub { !grep { !$_->{started} } @s });
my $open = grep { $_->{started} } @s;
die "only $open of $nstreams streams started\n" if $open < $nstreams;

sleep 2;
pump(time + 1);
my $rss1 = rss();
my $b1 = backends();

my $c0 = cpu();
my $t0 = time;
pump(time + 10);
my $idle = (cpu() - $c0) / (time - $t0);

my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    exec 'psql', '-X', '-q', '-d', $ENV{SOPHON_CONNINFO}, '-v',
         'ON_ERROR_STOP=1', '-f', $ENV{SOPHON_WRITER}, '-o', '/dev/null'
        or POSIX::_exit(127);
}

$c0 = cpu();
$t0 = time;
my $want = $nstreams * $total;
my $b2 = 0;
pump(time + 600, sub {
    $b2 = backends() if !$b2 && time - $t0 > 2;
    ($events // 0) >= $want && waitpid($pid, POSIX::WNOHANG()) == $pid
});
my $busy = (cpu() - $c0) / (time - $t0);
waitpid $pid, 0 if kill 0, $pid;
pump(time + 3, sub { ($events // 0) >= $want });

my @d = sort { $a <=> $b } @delays;
my $p = sub { @d ? $d[int($_[0] * $#d)] * 1000 : 0 };

printf "streams                %d\n", $nstreams;
printf "worker RSS             %d kB before, %d kB with the streams"
       . " (%.1f kB a stream)\n", $rss0, $rss1, ($rss1 - $rss0) / $nstreams;
printf "module backends        %s idle, %s while events flow\n", $b1, $b2;
printf "worker CPU idle        %.2f%%\n", 100 * $idle;


printf "deliveries             %d of %d, %d twice\n", $events // 0, $want,
       $dup // 0;
printf "delay insert->client   p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
       $p->(0.5), $p->(0.99), $p->(1);
printf "worker CPU with events %.1f%%\n", 100 * $busy;

exit(($events // 0) == $want && !$dup ? 0 : 1);
PERL

grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" && rc=1
exit $rc
