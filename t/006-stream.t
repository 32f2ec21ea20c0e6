# vi:filetype=perl

# Streaming: large pages (about 10 MB) arrive whole and byte-faithful
# through the bounded set of recycled output buffers, whatever their size
# (rows larger than a buffer span several), chunked on HTTP/1.1,
# close-delimited on HTTP/1.0, through gzip, many on one keepalive
# connection, and through a pool of one database connection.
#
# Every 200 is checked by SophonTest::check_body (the exact page the
# fixtures give); blocks with these sections get more checks:
#   --- gzipped             the body is gunzipped before every check
#   --- feature_digits      each event's recognize_face_attr.feature is,
#                           number by number, the digit strings of its
#                           fixture line
#   --- min_body_length: N  the (decoded) body is at least N bytes
#   --- one_db_connection   the whole block was served by one database
#                           connection (error log, pg_stat_activity)

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(backend_count wait_until);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);

repeat_each(2);
no_shuffle();

# the query string of request $idx of a block, whatever section holds it
sub request_of {
    my ($block, $idx) = @_;

    for my $sec (qw(request pipelined_requests)) {
        my $r = $block->$sec;
        next if !defined $r;
        return ref $r ? $r->[$idx] : $r;
    }

    return undef;
}

# what SophonTest::check_body needs of a block: its name and this request
{
    package StreamTest::Request;
    sub new { my ($class, %a) = @_; bless {%a}, $class }
    sub name { $_[0]{name} }
    sub request { $_[0]{request} }
}

# fixture _id => [the digit strings of its feature] (undef without one),
# from the fixture lines as written
my %features;

sub fixture_features {
    return \%features if %features;

    for my $ev (@{ SophonTest::fixtures() }) {
        my ($f) = $ev->{line} =~ /"feature":\[([^\]]*)\]/;
        $features{ $ev->{doc}{_id} } = defined $f ? [ split /,/, $f ] : undef;
    }

    return \%features;
}

# the events of the page, in order, each with the digit strings of its
# feature as the body writes them (a writer may put spaces between
# elements)
sub page_features {
    my ($body) = @_;
    my @events;

    while ($body =~ /"_id"\s*:\s*"([^"]*)"|"feature"\s*:\s*\[([^\]]*)\]/g) {
        if (defined $1) {
            push @events, { id => $1 };
        } elsif (@events) {
            $events[-1]{feature} = [ split /\s*,\s*/, $2 ];
        }
    }

    return \@events;
}

sub check_feature_digits {
    my ($name, $body, $qs) = @_;
    my $fixtures = fixture_features();
    my $events = page_features($body);
    my $want = @{ SophonTest::expected($qs)->{events} };

    is(scalar @$events, $want, "$name - $want events with their features");

    my @bad;
    for my $ev (@$events) {
        my ($id, $got) = @$ev{qw(id feature)};

        if (!exists $fixtures->{$id}) {
            push @bad, "event $id: not a fixture";
            next;
        }

        my $exp = $fixtures->{$id};

        if (!$exp || !$got) {
            push @bad, "event $id: feature " . ($got ? "" : "not ")
                       . "in the body, " . ($exp ? "" : "not ")
                       . "in the fixture" if $exp || $got;
            next;
        }

        if (@$got != @$exp) {
            push @bad, "event $id: " . @$got . " numbers, the fixture has "
                       . @$exp;
            next;
        }

        for my $i (0 .. $#$exp) {
            next if $got->[$i] eq $exp->[$i];
            push @bad, "event $id: feature[$i] is $got->[$i], "
                       . "the fixture has $exp->[$i]";
            last;
        }
    }

    ok(!@bad, "$name - every feature number keeps the fixture's digits")
        or diag(join "\n", grep { defined } @bad[0 .. 4]);
}

# JSON as the fixtures write it (the documents are their bytes,
# SophonTest::check_bytes): UTF-8 as UTF-8, only control characters
# escaped; no raw control character anywhere
sub check_json_text {
    my ($name, $body) = @_;

    ok($body !~ /[\x00-\x1f]/,
       "$name - no raw control character in the body")
        or diag("at byte $-[0]");

    my @escapes;
    while ($body =~ /(\\+)u([0-9A-Fa-f]{4})/g) {
        next if length($1) % 2 == 0;    # an escaped backslash, then "u"
        push @escapes, "\\u$2" if hex($2) >= 0x20;
    }

    ok(!@escapes, "$name - non-control characters are not \\u-escaped")
        or diag("@escapes[0 .. ($#escapes < 4 ? $#escapes : 4)]");
}

sub check_one_db_connection {
    my ($name) = @_;

    my $log = server_root() . '/logs/error.log';
    if (open my $fh, '<', $log) {
        my ($debug, $connects) = (0, 0);
        while (my $line = <$fh>) {
            $debug = 1 if $line =~ /\[debug\]/;
            $connects++ if $line =~ /sophon_events pool: connection \S+ connected, backend/;
        }
        close $fh;

        SKIP: {
            skip "$name - the error log has no debug lines", 1 if !$debug;
            is($connects, 1, "$name - one database connection was opened");
        }
    }

    # the previous nginx's backends may take a moment to go
    my $n;
    wait_until(3, 0.05, sub { ($n = backend_count()) <= 1 });
    is($n, 1, "$name - one backend serves nginx");
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run;

    my $name = $block->name;

    if (defined $block->gzipped && defined $body && $body ne '') {
        my $plain;
        ok(gunzip(\$body => \$plain, Transparent => 0),
           "$name - the body gunzips")
            or diag($GunzipError);
        $body = $plain;
    }

    SophonTest::check_body(
        StreamTest::Request->new(name => $name,
                                 request => request_of($block, $req_idx)),
        $body, $req_idx, $repeated_req_idx, $dry_run);

    return if !defined $body;

    check_json_text($name, $body) if $body ne '';

    if (defined(my $n = $block->min_body_length)) {
        ok(length $body >= $n, "$name - the body is at least $n bytes")
            or diag("got " . length($body) . " bytes");
    }

    if (defined $block->feature_digits) {
        my $req = request_of($block, $req_idx) // '';
        check_feature_digits($name, $body, $1 // '')
            if $req =~ m{^GET /SophonFace/api/events(?:\?(\S*))?};
    }

    check_one_db_connection($name) if defined $block->one_db_connection;
});

add_block_preprocessor(\&SophonTest::default_location);

run_tests();

__DATA__

=== TEST 1: a page of 1000 events (about 10 MB) arrives whole, chunked
--- no_http2: it checks HTTP/1.1's chunked framing
--- request
GET /SophonFace/api/events?per_page=1000&page=0
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
Transfer-Encoding: chunked
!Content-Length
--- min_body_length: 9000000
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: the last, partial page of 1000
--- request
GET /SophonFace/api/events?per_page=1000&page=1
--- error_code: 200
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: buffers of 4k: every row spans several buffers
--- no_http2: it checks HTTP/1.1's chunked framing
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 2 4k;
    }
--- request
GET /SophonFace/api/events?per_page=1000&page=0
--- error_code: 200
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- min_body_length: 9000000
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 4: one buffer of 1k
--- no_http2: it checks HTTP/1.1's chunked framing
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 1 1k;
    }
--- request
GET /SophonFace/api/events?per_page=1000&page=0
--- error_code: 200
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- min_body_length: 9000000
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 5: one buffer of 1k, a small page and the partial last page
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 1 1k;
    }
--- request eval
["GET /SophonFace/api/events?per_page=3&page=5",
 "GET /SophonFace/api/events?per_page=1000&page=1",
 "GET /SophonFace/api/events?per_page=10&page=9999"]
--- error_code eval
[200, 200, 200]
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: HTTP/1.0: no chunked encoding, the body ends with the connection
--- request
GET /SophonFace/api/events?per_page=1000&page=0 HTTP/1.0
--- error_code: 200
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_headers
Content-Type: application/json; charset=utf-8
Connection: close
!Transfer-Encoding
!Content-Length
--- min_body_length: 9000000
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 7: HTTP/1.0 with one buffer of 1k
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 1 1k;
    }
--- request
GET /SophonFace/api/events?per_page=700&page=1 HTTP/1.0
--- error_code: 200
--- response_headers
Connection: close
!Transfer-Encoding
!Content-Length
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 8: gzip: compressed, and it inflates to the exact page
--- no_http2: it checks HTTP/1.1's chunked framing
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        gzip on;
        gzip_types application/json;
    }
--- more_headers
Accept-Encoding: gzip
--- request
GET /SophonFace/api/events?per_page=1000&page=0
--- error_code: 200
--- response_headers
Content-Encoding: gzip
Content-Type: application/json; charset=utf-8
Transfer-Encoding: chunked
--- gzipped
--- min_body_length: 9000000
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 9: gzip with buffers of 4k, on HTTP/1.0
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 2 4k;
        gzip on;
        gzip_http_version 1.0;
        gzip_types application/json;
    }
--- more_headers
Accept-Encoding: gzip
--- request
GET /SophonFace/api/events?per_page=600&page=1 HTTP/1.0
--- error_code: 200
--- response_headers
Content-Encoding: gzip
!Transfer-Encoding
--- gzipped
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 10: gzip is not used for a client that does not ask for it
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        gzip on;
        gzip_types application/json;
    }
--- request
GET /SophonFace/api/events?per_page=20&page=3
--- error_code: 200
--- response_headers
!Content-Encoding
--- feature_digits
--- no_error_log
[error]



=== TEST 11: values come back byte-faithful: UTF-8, escapes, every digit
--- request eval
["GET /SophonFace/api/events?identity_id=9000005",
 "GET /SophonFace/api/events?identity_id=9000012",
 "GET /SophonFace/api/events?identity_id=9000011",
 "GET /SophonFace/api/events?identity_id=9000013",
 "GET /SophonFace/api/events?identity_id=9000004",
 "GET /SophonFace/api/events?identity_id=9000003"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body_like eval
[qr/"identity_name"\s*:\s*"王小明"\s*[,}]/,
 qr/"identity_name"\s*:\s*"Emoji 😀 Ünïcödé"\s*[,}]/,
 qr/"identity_name"\s*:\s*"Ctrl\\tTab\\nLine\\u0001"\s*[,}]/,
 qr/^(?=[\s\S]*"precise"\s*:\s*0\.123456789012345678901234567890\s*[,}])(?=[\s\S]*"big"\s*:\s*123456789012345678901234567890\s*[,}])/,
 qr/"identity_name"\s*:\s*"O'Brien \\"Bob\\""\s*[,}]/,
 qr/"identity_name"\s*:\s*"back\\\\slash"\s*[,}]/]
--- feature_digits
--- no_error_log
[error]



=== TEST 12: the edge events' numbers keep the digits the box wrote
--- request
GET /SophonFace/api/events?streams=dev-edge-1,dev-edge-2&per_page=20
--- error_code: 200
--- response_body_like: "box"\s*:\s*\[1\.5,\s*2\.25,\s*3\.125,\s*4\.0625\].*"score"\s*:\s*90\.0\s*[,}]
--- feature_digits
--- no_error_log
[error]



=== TEST 13: many requests on one keepalive connection
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        add_header X-Connection-Requests $connection_requests;
    }
--- pipelined_requests eval
[map { "GET /SophonFace/api/events?per_page=$_->[0]&page=$_->[1]" }
     [10, 0], [100, 3], [1000, 0], [7, 200], [1, 1513], [3, 9999],
     [250, 2], [1000, 1], [10, 0], [5, 3]]
--- error_code eval
[(200) x 10]
--- response_headers eval
[map { "X-Connection-Requests: $_\nContent-Type: application/json; charset=utf-8\nTransfer-Encoding: chunked" } 1 .. 10]
--- feature_digits
--- no_error_log
[error]
[alert]
[crit]



=== TEST 14: keepalive with one buffer of 1k and filters
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 1 1k;
        add_header X-Connection-Requests $connection_requests;
    }
--- pipelined_requests eval
["GET /SophonFace/api/events?userType=4&per_page=50",
 "GET /SophonFace/api/events?per_page=300&page=4",
 "GET /SophonFace/api/events?streams=dev-edge-1&per_page=5&page=1",
 "GET /SophonFace/api/events?userType=5&per_page=1000",
 "GET /SophonFace/api/events?per_page=2&page=0"]
--- error_code eval
[(200) x 5]
--- response_headers eval
[map { "X-Connection-Requests: $_" } 1 .. 5]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 15: a pool of one database connection serves requests in a row
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
    }
--- request eval
[map { "GET /SophonFace/api/events?per_page=150&page=$_" } 0 .. 5]
--- error_code eval
[(200) x 6]
--- one_db_connection
--- no_error_log
[error]
[alert]
[crit]



=== TEST 16: a pool of one, pipelined on one keepalive connection
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=1;
        sophon_events_buffers 2 4k;
    }
--- pipelined_requests eval
[map { "GET /SophonFace/api/events?per_page=$_->[0]&page=$_->[1]" }
     [200, 0], [200, 1], [200, 7], [13, 4], [1000, 1]]
--- error_code eval
[(200) x 5]
--- one_db_connection
--- no_error_log
[error]
[alert]
[crit]
