#!/usr/bin/env bash
# bench/rss.sh: does a worker's memory stay flat under load?
#
#   bench/rss.sh [-p PORT] [-n REQUESTS] [-c CLIENTS] [-w WARMUP] CONNINFO
#
# Starts nginx (one worker, its own prefix in a temporary directory, on
# 127.0.0.1:PORT, default 19884) with the built module against the database
# CONNINFO (a libpq conninfo, e.g. "host=127.0.0.1 port=25460 dbname=sophon
# user=postgres", holding events: util/sophon-events-gen | sophon-events-load),
# sends WARMUP requests (default 2,000) so that the pool's connections, the
# prepared statements and the buffers exist, reads the worker's VmRSS from
# /proc/PID/status, sends REQUESTS more (default 100,000) from CLIENTS
# processes (default 4; a bounded Perl client, keep-alive), sampling VmRSS
# every 50 ms, reads it again after the run and after 2 s idle, and prints
# the figures: RSS at start, before, after, after idle, peak (sampled and the
# kernel's VmHWM), requests by kind and by status, seconds, requests/s.
#
# The mix, per 1,000 requests: 300 page 0, 100 deep pages, 250 filtered
# (every filter, every list form), 5 per_page=1000 (about 10 MB each), 150
# errors (400s, a 405 with a body), 100 HEAD, 45 gzip, and 50 aborted: 25
# closed right after the request is sent, 25 closed after the first 64 KB
# of a page of 100 or 1000 events.
#
# Environment: SOPHON_MODULE (build/ngx_http_sophon_events_module.so),
# NGINX (/usr/sbin/nginx).  Exits 1 if a response was a 5xx, if the error
# log has [alert], [crit] or [emerg] lines, or if the worker changed (a
# crash); the growth itself is for the reader to judge.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." &&
       pwd -P)
PROG=${0##*/}
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${SOPHON_MODULE:-$ROOT/build/ngx_http_sophon_events_module.so}

port=19884
requests=100000
clients=4
warmup=2000

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }
die() { echo "$PROG: $*" >&2; exit 1; }

while getopts 'p:n:c:w:h' opt; do
    case $opt in
    p) port=$OPTARG ;;
    n) requests=$OPTARG ;;
    c) clients=$OPTARG ;;
    w) warmup=$OPTARG ;;
    h) usage 0 ;;
    *) usage 2 >&2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage 2 >&2
conninfo=$1

for n in "$port" "$requests" "$clients" "$warmup"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
done
[ "$clients" -ge 1 ] && [ "$clients" -le 64 ] || die "-c: 1 to 64 clients"
[ -f "$MODULE" ] || die "$MODULE is missing: run make first"
case $conninfo in *'"'*|*'\'*) die "CONNINFO must not hold \" or \\" ;; esac

psql -X -q -At -d "$conninfo" -c 'SELECT count(*) FROM sophon_events' \
    >/dev/null || die "cannot query sophon_events through: $conninfo"

dir=$(mktemp -d /tmp/sophon-rss.XXXXXX)
master=
worker=

cleanup() {
    if [ -n "$master" ] && kill -0 "$master" 2>/dev/null; then
        kill -QUIT "$master" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$master" 2>/dev/null || true
        wait "$master" 2>/dev/null || true
    fi
    # a worker whose master was killed outlives it
    if [ -n "$worker" ] && kill -0 "$worker" 2>/dev/null; then
        kill -KILL "$worker" 2>/dev/null || true
    fi
    rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$dir/logs" "$dir/tmp"
# as root, the worker runs as nobody: it needs TCP, and the way to the
# temporary files of answers to slow clients (tmp/client_body, which
# nginx makes its own)
chmod 755 "$dir"
user='#'
if [ "$(id -u)" = 0 ]; then
    if id nobody >/dev/null 2>&1; then
        user="user nobody $(id -gn nobody);"
    else
        user='user root;'
    fi
fi

cat > "$dir/nginx.conf" <<EOF
load_module $MODULE;
$user
daemon off;
master_process on;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    server {
        listen 127.0.0.1:$port;

        location = /SophonFace/api/events {
            sophon_events;
            sophon_events_db "$conninfo";
            gzip on;
            gzip_types application/json;
        }
    }
}
EOF

"$NGINX" -p "$dir/" -c nginx.conf -e logs/error.log &
master=$!

for _ in $(seq 100); do
    kill -0 "$master" 2>/dev/null || die "nginx exited: $(cat "$dir/logs/error.log")"
    worker=$(ps -o pid= --ppid "$master" | tr -d ' ' | head -n 1 || true)
    [ -n "$worker" ] && break
    sleep 0.1
done
[ -n "$worker" ] || die "no worker process"

# the values the filters use, from the database itself
values=$(psql -X -q -At -F $'\t' -d "$conninfo" -c "
    SELECT (SELECT string_agg(g, E'\x1f') FROM (SELECT DISTINCT group_id g
              FROM sophon_events WHERE group_id <> '' LIMIT 8) s),
           (SELECT string_agg(d, E'\x1f') FROM (SELECT DISTINCT device_id d
              FROM sophon_events WHERE device_id <> '' LIMIT 8) s),
           (SELECT string_agg(r, E'\x1f') FROM (SELECT DISTINCT room r
              FROM sophon_events WHERE room <> '' LIMIT 8) s),
           (SELECT string_agg(i, E'\x1f') FROM (SELECT DISTINCT identity_id i
              FROM sophon_events WHERE identity_id <> '' LIMIT 8) s),
           min(ts), max(ts), count(*)
      FROM sophon_events")

export SOPHON_RSS_VALUES=$values

rc=0
perl - "$port" "$worker" "$requests" "$clients" "$warmup" <<'PERL' || rc=$?
use strict;
use warnings;

use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(time sleep);

my ($port, $worker, $requests, $clients, $warmup) = @ARGV;
my ($groups, $devices, $rooms, $ids, $tmin, $tmax, $count) =
    split /\t/, $ENV{SOPHON_RSS_VALUES};
my @groups  = split /\x1f/, $groups // '';
my @devices = split /\x1f/, $devices // '';
my @rooms   = split /\x1f/, $rooms // '';
my @ids     = split /\x1f/, $ids // '';
@$_ or push @$_, 'none' for \@groups, \@devices, \@rooms, \@ids;

my $Api = '/SophonFace/api/events';
my $Timeout = 30;

sub enc {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-_.~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub pick { $_[int rand @_] }

sub rss {
    open my $in, '<', "/proc/$worker/status" or return (undef, undef);
    my ($rss, $hwm);
    while (<$in>) {
        $rss = $1 if /^VmRSS:\s+(\d+) kB/;
        $hwm = $1 if /^VmHWM:\s+(\d+) kB/;
    }
    return ($rss, $hwm);
}

sub filtered {
    my $t = $tmin + rand($tmax - $tmin);
    my @f = (
        sub { 'userType=' . (1 + int rand 5) },
        sub { 'userType=' . enc('[1,4]') },
        sub { 'userType[]=2&userType[]=5' },
        sub { sprintf 'datetime_gte=%.3f', $t },
        sub { sprintf 'datetime_gte=%.3f&datetime_lte=%.3f', $t, $t + 3600 },
        sub { 'name=' . pick(qw(a an li Chen %25 _ %5C)) },
        sub { 'identity_id=' . enc(pick(@ids)) },
        sub { 'score_min=' . (60 + int rand 40) . '&score_max=99.5' },
        sub { 'room=' . enc(pick(@rooms)) },
        sub { 'groups=' . enc('["' . pick(@groups) . '","x"]') },
        sub { 'groups=' . enc(pick(@groups)) . ',' . enc(pick(@groups)) },
        sub { 'streams=' . enc(pick(@devices)) . '&streams[]=' . enc(pick(@devices)) },
        sub { 'top_k=' . (1 + int rand 500) . '&page=' . int rand 5 },
    );
    my $n = 1 + int rand 3;
    return join '&', map { pick(@f)->() } 1 .. $n;
}

my @bad = ('per_page=0', 'page=-1', 'top_k=abc', 'name=%FF', 'groups=%5B%22a',
           'userType=9', 'datetime_gte=1e400', 'name=a&name=b', 'page=1&page[]=1',
           'groups=' . enc('["\ud800x"]') . '&per_page=0', 'score_min=nan',
           'streams=a,,b', 'identity_id=' . ('x' x 300));

# one request: [kind, method, target, extra headers, body, abort]
# abort: 0 none, 1 close once sent, 2 close after 64 KB of the answer
sub next_request {
    my $r = rand 1000;
    return ['page0', 'GET', "$Api?per_page=10&page=0"]              if $r < 300;
    return ['deep', 'GET', "$Api?per_page=" . (10 + int rand 41)
                         . '&page=' . int rand 150]                 if $r < 400;
    return ['filtered', 'GET', "$Api?" . filtered()]                if $r < 650;
    return ['per_page_1000', 'GET', "$Api?per_page=1000&page=" . int rand 5]
                                                                    if $r < 655;
    return ['error', 'POST', "$Api?per_page=1", '', '{"x":1}']      if $r < 665;
    return ['error', 'GET', "$Api?" . pick(@bad)]                   if $r < 805;
    return ['head', 'HEAD', "$Api?" . (rand > .5 ? filtered() : 'per_page=100')]
                                                                    if $r < 905;
    return ['gzip', 'GET', "$Api?per_page=" . (1 + int rand 100),
            "Accept-Encoding: gzip\r\n"]                            if $r < 950;
    return ['abort_sent', 'GET', "$Api?" . filtered(), '', '', 1]   if $r < 975;
    return ['abort_read', 'GET', "$Api?per_page=" . pick(100, 1000), '', '', 2];
}

sub connect_server {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp', Timeout => $Timeout);
}

sub read_more {
    my ($s, $buf) = @_;
    my $n = sysread $s, $$buf, 262144, length $$buf;
    return $n;
}

# reads one answer; returns (status, keep-alive?) or () when the server
# closed the connection before its end
sub read_response {
    my ($s, $head) = @_;
    my $buf = '';
    my $end;

    until (($end = index $buf, "\r\n\r\n") >= 0) {
        read_more($s, \$buf) or return;
    }

    my $hdr = substr $buf, 0, $end + 4, '';
    my ($status) = $hdr =~ m{^HTTP/1\.[01] (\d{3})} or return;
    my $keep = $hdr !~ /^Connection:\s*close/mi;

    return ($status, $keep) if $head;

    if ($hdr =~ /^Content-Length:\s*(\d+)/mi) {
        my $need = $1;
        while (length $buf < $need) {
            read_more($s, \$buf) or return;
        }
        return ($status, $keep);
    }

    if ($hdr =~ /^Transfer-Encoding:\s*chunked/mi) {
        for (;;) {
            my $eol;
            until (($eol = index $buf, "\r\n") >= 0) {
                read_more($s, \$buf) or return;
            }
            my $size = hex substr $buf, 0, $eol;
            if ($size == 0) {
                until (index($buf, "\r\n\r\n") >= 0) {
                    read_more($s, \$buf) or return;
                }
                return ($status, $keep);
            }
            while (length $buf < $eol + 2 + $size + 2) {
                read_more($s, \$buf) or return;
            }
            substr $buf, 0, $eol + 2 + $size + 2, '';
        }
    }

    1 while read_more($s, \$buf);
    return ($status, 0);
}

# a client process: $n requests, counts written to $out as "kind status n"
sub client {
    my ($n, $out, $seed) = @_;
    srand $seed;
    my (%count, $s);
    local $SIG{PIPE} = 'IGNORE';
    local $SIG{ALRM} = sub { die "timeout\n" };

    for (1 .. $n) {
        my ($kind, $method, $target, $extra, $body, $abort) = @{ next_request() };
        $extra //= '';
        $body //= '';
        my $status = eval {
            alarm $Timeout;
            $s //= connect_server() or die "connect: $!\n";
            my $conn = $abort ? 'close' : 'keep-alive';
            my $req = "$method $target HTTP/1.1\r\nHost: localhost\r\n"
                    . "Connection: $conn\r\n$extra"
                    . (length $body ? 'Content-Length: ' . length($body)
                                      . "\r\n" : '')
                    . "\r\n$body";
            defined syswrite $s, $req or die "write: $!\n";

            if ($abort) {
                if ($abort == 2) {
                    my $buf = '';
                    while (length $buf < 65536) {
                        read_more($s, \$buf) or last;
                    }
                }
                close $s;
                undef $s;
                alarm 0;
                return 'aborted';
            }

            my ($st, $keep) = read_response($s, $method eq 'HEAD');
            if (!defined $st) {
                close $s;
                undef $s;
                alarm 0;
                return 'cut';
            }
            if (!$keep) {
                close $s;
                undef $s;
            }
            alarm 0;
            return $st;
        };
        alarm 0;
        if (!defined $status) {
            chomp(my $e = $@ || 'error');
            $e =~ s/\s+/_/g;
            $status = "failed($e)";
            close $s if $s;
            undef $s;
        }
        $count{"$kind $status"}++;
    }

    open my $fh, '>', $out or die "$out: $!\n";
    print $fh "$_ $count{$_}\n" for sort keys %count;
    close $fh;
}

sub run {
    my ($total, $tag) = @_;
    my (@pids, %sum);
    my $peak = 0;
    my $t0 = time;

    for my $i (0 .. $clients - 1) {
        my $n = int($total / $clients) + ($i < $total % $clients ? 1 : 0);
        my $out = "/tmp/sophon-rss.$$.$tag.$i";
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            client($n, $out, $i * 7919 + length $tag);
            POSIX::_exit(0);
        }
        push @pids, [$pid, $out];
    }

    my %pending = map { $_->[0] => 1 } @pids;
    while (%pending) {
        my ($rss) = rss();
        $peak = $rss if defined $rss && $rss > $peak;
        for my $pid (keys %pending) {
            delete $pending{$pid} if waitpid($pid, POSIX::WNOHANG()) != 0;
        }
        sleep 0.05 if %pending;
    }

    my $secs = time - $t0;
    for my $p (@pids) {
        open my $in, '<', $p->[1] or die "client $p->[0] wrote nothing\n";
        while (<$in>) {
            my ($k, $st, $c) = split;
            $sum{"$k $st"} += $c;
        }
        close $in;
        unlink $p->[1];
    }

    return (\%sum, $secs, $peak);
}

my ($start) = rss();
die "no worker $worker\n" unless defined $start;

my (undef, $wsecs) = run($warmup, 'warmup');
my ($before) = rss();

my ($sum, $secs, $peak) = run($requests, 'run');
my ($after, $hwm) = rss();
sleep 2;
my ($idle) = rss();

my (%kind, %status, $n, $bad5xx, $failed);
for my $k (sort keys %$sum) {
    my ($kind, $st) = split / /, $k, 2;
    $kind{$kind} += $sum->{$k};
    $status{$st} += $sum->{$k};
    $n += $sum->{$k};
    $bad5xx += $sum->{$k} if $st =~ /^5/;
    $failed += $sum->{$k} if $st =~ /^(?:failed|cut)/;
}

$peak = $after if $after > $peak;

printf "worker pid          %d (%d events in the database)\n", $worker, $count;
printf "RSS at start        %7d kB\n", $start;
printf "RSS before          %7d kB  (after %d warm-up requests, %.1f s)\n",
       $before, $warmup, $wsecs;
printf "RSS after           %7d kB  (%+d kB, %+.1f%%)\n", $after,
       $after - $before, 100 * ($after - $before) / $before;
printf "RSS after 2 s idle  %7d kB  (%+d kB)\n", $idle, $idle - $before;
printf "RSS peak            %7d kB  sampled every 50 ms; VmHWM %d kB\n",
       $peak, $hwm;
printf "requests            %d in %.1f s, %.0f/s, %d clients\n", $n, $secs,
       $n / $secs, $clients;
printf "  by kind           %s\n",
       join ', ', map { "$_ $kind{$_}" } sort keys %kind;
printf "  by status         %s\n",
       join ', ', map { "$_ $status{$_}" } sort keys %status;

exit(($bad5xx || $failed) ? 3 : 0);
PERL

if [ "$(ps -o pid= --ppid "$master" | tr -d ' ' | head -n 1 || true)" != "$worker" ]
then
    echo "$PROG: the worker $worker is gone (crash?): see the error log" >&2
    rc=1
fi

serious=$(grep -cE '\[(alert|crit|emerg)\]' "$dir/logs/error.log" || true)
errors=$(grep -cE '\[error\]' "$dir/logs/error.log" || true)
echo "error log           $serious alert/crit/emerg, $errors error lines"
# the kinds of lines, numbers and the request left out
grep -E '\[(alert|crit|emerg|error)\]' "$dir/logs/error.log" |
    sed -E 's/^[0-9/: ]+//; s/[0-9]+#[0-9]+: \*?[0-9]* ?//; s/, client: .*//;
            s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 10 >&2 || true
[ "$serious" = 0 ] || rc=1

exit "$rc"
