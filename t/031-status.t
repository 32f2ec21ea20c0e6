# vi:filetype=perl

# The status page (sophon_events_status) and its counters in the zone
# (sophon_events_zone), with two workers: after a known mix of requests,
# each counter of the sum is exact, the workers' add up to it, the JSON and
# the Prometheus text agree, and the text is read by Prometheus's own
# parser (python3-prometheus-client), not by a pattern.  A reload keeps
# the counts.  The failures each have their counter: a connection refused,
# a statement past the query timeout, a request past the queue's.
#
# Each block's first request is the status page itself, which is not
# counted; its scenario then makes the mix (SophonClient's use_scenarios).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);
use JSON::PP ();

repeat_each(1);
no_shuffle();
no_long_string();
master_on();
workers(2);

$SophonClient::AppName = 'sophon_031_check';
$SophonClient::LockerAppName = 'sophon_031_locker';

# SophonClient's stop_helpers: after each scenario, and at the end
use_scenarios(\&stop_helpers);

our $Status = '/sophon_status';

our $HttpConfig = <<'_EOC_';
    sophon_events_zone sophon_031 1m;
_EOC_

# the events (and a location inside theirs, which is not theirs) and the
# status page: the mix's
our $MixConfig = <<'_EOC_';
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";

        location /SophonFace/api/events/static/ {
            return 204;
        }
    }
    location = /sophon_status {
        sophon_events_status;
    }
_EOC_

# the page, parsed: JSON, or Prometheus's parser's samples as
# [name, {labels}, value]
sub status_json {
    my $r = http_request('format=json', path => $Status);
    die "status page: $r->{status}\n" if ($r->{status} // 0) != 200;
    return JSON::PP->new->utf8->decode($r->{body});
}

sub status_samples {
    my (%opt) = @_;
    my $r = http_request($opt{accept} ? undef : 'format=prometheus',
                         path => $Status,
                         headers => $opt{accept} ? ["Accept: $opt{accept}"]
                                                 : []);
    die "status page: $r->{status}\n" if ($r->{status} // 0) != 200;
    my $type = $r->{headers}{'content-type'} // '';
    die "status page: Content-Type $type\n" if $type !~ m{^text/plain};

    my $dir = File::Temp::tempdir('sophon-031-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    open my $fh, '>', "$dir/scrape" or die "$dir/scrape: $!\n";
    print $fh $r->{body};
    close $fh;

    # Prometheus's client library's parser, which refuses what Prometheus
    # would; JSON out, one sample a line
    my $json = `/usr/bin/python3 - '$dir/scrape' <<'_PY_'
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
out = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
_PY_`;
    die "the parser refused the page\n" if $? != 0;
    return JSON::PP->new->decode($json);
}

# the value of one sample whose labels are exactly these, or undef
sub sample {
    my ($samples, $name, %labels) = @_;
    for my $s (@$samples) {
        next if $s->[0] ne $name;
        next if join(',', map { "$_=$s->[1]{$_}" } sort keys %{ $s->[1] })
                ne join(',', map { "$_=$labels{$_}" } sort keys %labels);
        return $s->[2];
    }
    return undef;
}

# the sum of a family's per-worker samples with these other labels
sub workers_sum {
    my ($samples, $name, %labels) = @_;
    my $sum = 0;
    for my $s (@$samples) {
        next if $s->[0] ne $name || !defined $s->[1]{worker};
        next if grep { ($s->[1]{$_} // '') ne $labels{$_} } keys %labels;
        next if keys(%{ $s->[1] }) != keys(%labels) + 1;
        $sum += $s->[2];
    }
    return $sum;
}

# the known mix: (statuses, rows, bytes the clients received, timed, db)
sub make_mix {
    my ($tag) = @_;
    my (%status, $bytes);
    my @mix = (
        [ "per_page=3&_=$tag-1" ], [ "per_page=3&page=1&_=$tag-2" ],
        [ "per_page=3&page=2&_=$tag-3" ], [ "per_page=3&page=3&_=$tag-4" ],
        [ "per_page=5&_=$tag-5", method => 'HEAD' ],
        [ "per_page=abc&_=$tag-6" ], [ "page=-1&_=$tag-7" ],
        [ undef, path => "/SophonFace/api/events/no-such-event" ],
        [ "_=$tag-9", method => 'POST' ],
    );
    for my $m (@mix) {
        my ($qs, %opt) = @$m;
        my $r = http_request($qs, %opt);
        $status{ $r->{status} }++;
        $bytes += length $r->{raw};
    }

    # a location inside the module's is not the module's: not counted
    my $r = http_request(undef, path => '/SophonFace/api/events/static/x');
    die "the static location: $r->{status}\n" if $r->{status} != 204;

    return (\%status, 12, $bytes, scalar @mix, 6);
}

sub check_counts {
    my ($name, $what, $got, $status, $rows, $bytes, $timed, $db) = @_;
    my $sum = $got->{sum};
    is_deeply($sum->{requests}, $status,
              "$name - $what: requests by status, exactly");
    is($sum->{rows_sent}, $rows, "$name - $what: the events sent");
    is($sum->{bytes_sent}, $bytes,
       "$name - $what: the bytes sent are those the clients received");
    is($sum->{request_duration_seconds}{count}, $timed,
       "$name - $what: every request timed");
    is($sum->{request_duration_seconds}{buckets}{'+Inf'}, $timed,
       "$name - $what: ... and in the +Inf bucket");
    is($sum->{db_duration_seconds}{count}, $db,
       "$name - $what: the requests that went to the database");
}

# TEST 1
sub scenario_mix {
    my ($block) = @_;
    my $name = $block->name;

    my ($status, $rows, $bytes, $timed, $db) = make_mix('mix');
    is_deeply($status, { 200 => 5, 400 => 2, 404 => 1, 405 => 1 },
              "$name - the mix was answered as planned");

    my $json = status_json();
    is($json->{zone}, 'sophon_031', "$name - the zone's name");
    check_counts($name, 'JSON', $json, $status, $rows, $bytes, $timed, $db);

    my @workers = @{ $json->{workers} };
    is(scalar @workers, 2, "$name - both workers are shown");
    my %add;
    for my $w (@workers) {
        $add{$_} += $w->{requests}{$_} for keys %{ $w->{requests} };
        $add{rows} += $w->{rows_sent};
        $add{bytes} += $w->{bytes_sent};
    }
    is_deeply(\%add, { %$status, rows => $rows, bytes => $bytes },
              "$name - the workers' counts add up to the sum");

    my ($server) = keys %{ $json->{sum}{servers} };
    my $s = $json->{sum}{servers}{$server};
    like($server, qr/^127\.0\.0\.1:\d+$/, "$name - the server, by host:port");
    ok($s->{up} && $s->{role} eq 'primary' && $s->{fails} == 0,
       "$name - the server is up, the primary, without failures")
        or diag(JSON::PP->new->canonical->encode($s));
    my $backends = scalar @{ module_backends() };
    is_deeply([ @$s{qw(open idle busy queue_length)} ],
              [ $backends, $backends, 0, 0 ],
              "$name - its pools: as many open as PostgreSQL has backends of"
              . " the module, all idle, nobody waiting")
        or diag(JSON::PP->new->canonical->encode($s));

    # the same counts in the text format, parsed by Prometheus's parser
    my $samples = status_samples();
    for my $code (sort keys %$status) {
        is(sample($samples, 'sophon_events_requests_total',
                  status => $code), $status->{$code},
           "$name - prometheus: requests_total{status=\"$code\"}");
        is(workers_sum($samples, 'sophon_events_worker_requests_total',
                       status => $code), $status->{$code},
           "$name - prometheus: ... the workers' add up to it");
    }
    is(sample($samples, 'sophon_events_rows_sent_total'), $rows,
       "$name - prometheus: rows_sent_total");
    is(sample($samples, 'sophon_events_bytes_sent_total'), $bytes,
       "$name - prometheus: bytes_sent_total");
    is(sample($samples, 'sophon_events_request_duration_seconds_count'),
       $timed, "$name - prometheus: the request histogram's count");
    is(sample($samples, 'sophon_events_request_duration_seconds_bucket',
              le => '+Inf'), $timed,
       "$name - prometheus: ... its +Inf bucket");
    is(sample($samples, 'sophon_events_db_duration_seconds_count'), $db,
       "$name - prometheus: the database histogram's count");
    is(sample($samples, 'sophon_events_pool_open_connections',
              server => $server), $s->{open},
       "$name - prometheus: the pool's open connections, as in the JSON");
    is(sample($samples, 'sophon_events_server_up', server => $server), 1,
       "$name - prometheus: server_up");
    is(sample($samples, 'sophon_events_server_primary', server => $server),
       1, "$name - prometheus: server_primary");
    is(sample($samples, 'sophon_events_live_streams'), 0,
       "$name - prometheus: no live stream");

    my @le = map { $_->[1]{le} }
             grep { $_->[0] eq 'sophon_events_request_duration_seconds_bucket'
                    && !defined $_->[1]{worker} } @$samples;
    is(join(' ', @le), '0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf',
       "$name - prometheus: the fixed buckets");
    my @counts = map { $_->[2] }
                 grep { $_->[0] eq 'sophon_events_request_duration_seconds_bucket'
                        && !defined $_->[1]{worker} } @$samples;
    ok(!grep({ $counts[$_] < $counts[$_ - 1] } 1 .. $#counts),
       "$name - prometheus: the buckets are cumulative");

    # what Prometheus's scraper sends gets the text format
    my $scraped = status_samples(accept => 'application/openmetrics-text;'
        . 'version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,'
        . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    is(sample($scraped, 'sophon_events_requests_total', status => 200), 5,
       "$name - Prometheus's Accept header gets the text format");

    # the status page counts nothing of its own
    is_deeply(status_json()->{sum}{requests}, $status,
              "$name - scrapes are not counted");
}

# TEST 2
sub scenario_reload {
    my ($block) = @_;
    my $name = $block->name;

    my ($status, $rows, $bytes, $timed, $db) = make_mix('reload');
    my $before = status_json();
    check_counts($name, 'before the reload', $before, $status, $rows,
                 $bytes, $timed, $db);

    my @old = worker_pids();
    kill 'HUP', master_pid();
    my ($new) = wait_until(10, 0.1, sub {
        my @now = worker_pids();
        @now == 2 && !grep { my $o = $_; grep { $_ == $o } @now } @old;
    });
    ok($new, "$name - two new workers after the reload");

    my $after = status_json();
    check_counts($name, 'after the reload', $after, $status, $rows, $bytes,
                 $timed, $db);
    is_deeply([ sort map { $_->{pid} } @{ $after->{workers} } ],
              [ sort { $a <=> $b } worker_pids() ],
              "$name - the slots are the new workers'");

    my $r = http_request('per_page=1&_=after-reload');
    is($r->{status}, 200, "$name - a request after the reload");
    is(status_json()->{sum}{requests}{200}, $status->{200} + 1,
       "$name - ... is counted on top");
}

# TEST 3
sub scenario_failures {
    my ($block) = @_;
    my $name = $block->name;

    # a server nobody listens on: connection refused
    my $r = http_request('_=refused', path => '/refused');
    is($r->{status}, 503, "$name - a refused connection is a 503");

    # a statement that waits for a lock past the query timeout (3 s)
    lock_table(30);
    $r = http_request('per_page=1&_=locked', path => '/one');
    is($r->{status}, 504, "$name - a statement past the query timeout: 504");

    # six at once on one connection a worker: in each worker the first
    # waits for the lock past the query timeout (504), the others past the
    # queue's (1 s: 503); with two workers, some wait in a queue
    my @c = map { http_send("per_page=1&_=queued-$_", path => '/one') } 1 .. 6;
    http_pump(\@c, 15);
    my %got;
    $got{ parse_http($_->{buf})->{status} // 'none' }++ for @c;
    unlock_table();
    ok($got{503} && $got{504} && $got{503} + $got{504} == 6,
       "$name - six at once: 504s and 503s, nothing else")
        or diag(join ', ', map { "$_ x$got{$_}" } sort keys %got);

    my $sum = status_json()->{sum};
    is($sum->{connect_failures}, 1, "$name - connect_failures");
    is($sum->{query_timeouts}, 1 + ($got{504} // 0),
       "$name - query_timeouts: one a 504");
    is($sum->{queue_timeouts}, $got{503},
       "$name - queue_timeouts: one a 503");
    is($sum->{queue_full}, 0, "$name - queue_full");
    my $db = $sum->{db_duration_seconds};
    is($db->{count}, 1 + ($got{504} // 0),
       "$name - the database histogram: the statements that went out, not"
       . " the requests that never had a connection");
    ok($db->{sum} >= 3 * $db->{count} && $db->{buckets}{'2.5'} == 0,
       "$name - ... each with the 3 s it waited")
        or diag(JSON::PP->new->canonical->encode($db));

    my $samples = status_samples();
    is(sample($samples, 'sophon_events_connect_failures_total'), 1,
       "$name - prometheus: connect_failures_total");
    is(sample($samples, 'sophon_events_queue_timeouts_total'), $got{503},
       "$name - prometheus: queue_timeouts_total");
}

# TEST 4
sub scenario_stream {
    my ($block) = @_;
    my $name = $block->name;

    my $c = sse_open('streams=status-031-cam')
        or die "cannot open a stream: $!\n";
    my ($open) = wait_until(5, 0.05, sub {
        status_json()->{sum}{live_streams} == 1
    });
    ok($open, "$name - live_streams is 1 while a stream is open");
    is(sample(status_samples(), 'sophon_events_streams_total'), 1,
       "$name - streams_total");

    # its events are counted as they go, not when it ends
    SophonTest::insert_events(map {
        '{"_id":"status-031-' . $_ . '","timestamp":' . (1500000000 + $_)
        . ',"common":{"ep_info":{"device_id":"status-031-cam"}}}'
    } 1 .. 3);
    ok(sse_wait($c, 3, 10), "$name - the stream sends the 3 new events");
    my ($rows) = wait_until(5, 0.05, sub {
        status_json()->{sum}{rows_sent} == 3
    });
    ok($rows, "$name - rows_sent counts them while the stream is open");
    SophonTest::psql(
        "DELETE FROM sophon_events WHERE id LIKE 'status-031-%';"
        . " DELETE FROM sophon_event_deletions WHERE id LIKE 'status-031-%'");

    sse_close($c);
    my ($closed) = wait_until(5, 0.05, sub {
        status_json()->{sum}{live_streams} == 0
    });
    ok($closed, "$name - and 0 once it is closed");
}

# TEST 5
sub scenario_cut {
    my ($block) = @_;
    my $name = $block->name;

    # a page of 1000 events for a client that reads nothing: two 4 KB
    # buffers, no temporary file, and the 200 that began is cut
    my $c = http_send('per_page=1000&_=cut', path => '/small',
                      rcvbuf => 4096) or die "cannot connect: $!\n";
    my ($cut) = wait_until(10, 0.1, sub {
        status_json()->{sum}{cut_streams} == 1
    });
    ok($cut, "$name - cut_streams is 1");
    close $c->{sock};

    my $requests;
    my ($logged) = wait_until(5, 0.1, sub {
        $requests = status_json()->{sum}{requests};
        keys %$requests
    });
    is_deeply($requests, { 500 => 1 },
              "$name - the cut answer is counted with the status its access"
              . " log line shows (500)");
}

# TEST 9
sub scenario_too_small {
    my ($block) = @_;
    my $name = $block->name;
    my $dir = File::Temp::tempdir('sophon-031-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    mkdir "$dir/logs";

    # worker_processes after the http block: the check waits for it
    my $conf = sub {
        my ($workers) = @_;
        open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!\n";
        print $fh join '', map { "load_module $_;\n" }
                           split ' ', $ENV{TEST_NGINX_LOAD_MODULES};
        print $fh "error_log $dir/logs/error.log;\npid $dir/nginx.pid;\n"
                  . "events {}\nhttp {\n    sophon_events_zone small 32k;\n"
                  . "}\nworker_processes $workers;\n";
        close $fh;
        my $out = `$ENV{TEST_NGINX_BINARY} -t -p $dir -c $dir/nginx.conf 2>&1`;
        return ($? == 0, $out);
    };

    my ($ok, $out) = $conf->(2);
    ok($ok, "$name - 32k holds 2 workers") or diag($out);
    ($ok, $out) = $conf->(4);
    ok(!$ok && $out =~ /sophon_events_zone "small" has 2 slots for 4 workers:/
       && $out =~ /give it \d+k at least/,
       "$name - but not 4: nginx -t says how large it must be") or diag($out);
}

run_tests();

__DATA__

=== TEST 1: a known mix, counted exactly: JSON and Prometheus text (parsed by Prometheus's parser) agree, the workers add up to the sum
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config eval: $main::MixConfig
--- request
GET /sophon_status
--- error_code: 200
--- response_headers
Content-Type: application/json
Vary: Accept
Cache-Control: no-store
--- scenario: mix
--- timeout: 30
--- no_error_log
[alert]
[crit]



=== TEST 2: a reload keeps the counts
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config eval: $main::MixConfig
--- request
GET /sophon_status
--- error_code: 200
--- scenario: reload
--- timeout: 40
--- no_error_log
[alert]
[crit]



=== TEST 3: a connection refused, a query timeout and a queue timeout are each counted
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    location = /refused {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=9 dbname=x user=x";
    }
    location = /one {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1
                         queue_timeout=1s;
        sophon_events_query_timeout 3s;
    }
    location = /sophon_status {
        sophon_events_status;
    }
--- request
GET /sophon_status
--- error_code: 200
--- scenario: failures
--- timeout: 40
--- no_error_log
[alert]
[crit]



=== TEST 4: a live stream is counted while it is open
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    location /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
    location = /sophon_status {
        sophon_events_status;
    }
--- request
GET /sophon_status
--- error_code: 200
--- scenario: stream
--- timeout: 30
--- no_error_log
[alert]
[crit]



=== TEST 5: an answer cut after its 200 began is counted
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config eval: $main::HttpConfig
--- config
    location = /small {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 2 4k;
        sophon_events_max_temp_file_size 0;
    }
    location = /sophon_status {
        sophon_events_status;
    }
--- request
GET /sophon_status
--- error_code: 200
--- scenario: cut
--- timeout: 30
--- no_error_log
[alert]
[crit]



=== TEST 6: a bad format names the parameter; only GET and HEAD
--- http_config eval: $main::HttpConfig
--- config
    location = /sophon_status {
        sophon_events_status;
    }
--- request eval
["GET /sophon_status?format=xml", "POST /sophon_status", "HEAD /sophon_status?format=prometheus"]
--- error_code eval
[400, 405, 200]
--- response_body_like eval
[qr/"message":"format: must be json or prometheus"/, qr/"message":"method: only GET and HEAD are allowed"/, qr/^$/]
--- response_headers eval
[{}, { Allow => 'GET, HEAD' }, { 'Content-Type' => 'text/plain; version=0.0.4; charset=utf-8' }]



=== TEST 7: sophon_events_status needs sophon_events_zone
--- config
    location = /sophon_status {
        sophon_events_status;
    }
--- must_die
--- error_log
sophon_events_status needs sophon_events_zone



=== TEST 8: a location serves the status page or an endpoint, not both
--- http_config eval: $main::HttpConfig
--- config
    location = /sophon_status {
        sophon_events_status;
        sophon_events;
    }
--- must_die
--- error_log
"sophon_events" directive is duplicate: the location has a content handler already



=== TEST 9: a zone too small for worker_processes stops nginx -t, wherever worker_processes is
--- http_config eval: $main::HttpConfig
--- config
    location = /sophon_status {
        sophon_events_status;
    }
--- request
GET /sophon_status
--- error_code: 200
--- scenario: too_small
