# vi:filetype=perl

# One event: in a prefix location, GET <location>/<_id> answers 200
# {"data":<document>}, the document's stored bytes (its fixture line byte
# for byte), with_feature=0 cutting the vector as the list does; HEAD the
# same status and headers without a body; an unknown id the box's 404,
# code 40401, ID_NOT_FOUND.  The id is the rest of the URI as nginx
# decodes it: an id with spaces, UTF-8, quotes, "%", "?", "/" is asked for
# percent-encoded (SophonTest::uri).  An id longer than
# sophon_events_max_value_length bytes, or not UTF-8, is a 400 naming
# "_id"; any method but GET and HEAD a 405 with "Allow: GET, HEAD";
# "<location>X" a 404 NOT_FOUND; "<location>/" and the location's own URI
# are the list; the other parameters are parsed as the list parses them.
# An exact location has no one-event form.
#
# Every fixture event is fetched by its id, with and without with_feature=0
# and with HEAD, over keep-alive connections (SophonClient's ka_request; a
# scenario, run in the response body check after the block's first
# answer).
#
# Blocks with "--- insert_mine" first delete the events of [1400000000,
# 1400000100] and insert @Mine there (ids that need encoding, ids at the
# length limit, odd "feature"s); they are deleted again at the end.  Blocks
# that read the list unfiltered come before the first of them (the oracle
# knows the fixtures only), the others filter on the fixtures' times.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest qw(js bytes_of csv pct_decode insert_events first_difference
                  ok_none);
use SophonClient qw(http_send http_pump parse_http ka_open ka_request
                    ka_close headers_of errlog log_since);
use JSON::PP ();
use Time::HiRes ();

repeat_each(2);
no_shuffle();
no_root_location();

my $MainPid = $$;
my $Range = 'ts BETWEEN 1400000000 AND 1400000100';

# The ids that need care: [id (characters), timestamp]
our $Gate = "\x{95e8}";                  # 门: 3 bytes in UTF-8
our %Id = (
    space    => '1400000001.5 with spaces',
    utf8     => "\x{95e8}\x{7981} caf\x{e9} \x{1F600}",
    quotes   => q{q"uote'd},
    backslash => q{back\\slash},
    reserved => 'per%cent+plus?query#hash&amp=x;semi,comma',
    slash    => 'slash/inside',
    brackets => '{braces}[brackets]<angle>',
    lower    => 'case-x',
    trailing => 'case-x ',
    leading  => ' case-x',
    ascii255 => '1400000020.' . ('a' x 244),
    ascii256 => '1400000021.' . ('b' x 245),
    ascii257 => '1400000022.' . ('c' x 246),
    utf8_256 => ($Gate x 85) . 'd',       # 255 + 1 bytes, 86 characters
    utf8_257 => ($Gate x 85) . 'ef',      # 257 bytes, 87 characters
    utf8_258 => $Gate x 86,               # 258 bytes, 86 characters
    limit20  => '1400000030.123456789',   # 20 bytes
    limit21  => '1400000031.1234567890',  # 21 bytes
);

die "024-one-event: the ids at the limit are not the lengths they say\n"
    if length(bytes_of($Id{ascii255})) != 255
    || length(bytes_of($Id{ascii256})) != 256
    || length(bytes_of($Id{ascii257})) != 257
    || length(bytes_of($Id{utf8_256})) != 256
    || length(bytes_of($Id{utf8_257})) != 257
    || length(bytes_of($Id{utf8_258})) != 258
    || length($Id{limit20}) != 20 || length($Id{limit21}) != 21;

# The documents of @Mine, keyed as %Id: each with a feature vector as a
# later member of recognize_face_attr, so that line_without_feature cuts it
our %Line;
{
    my $ts = 1400000001;
    for my $k (sort keys %Id) {
        $Line{$k} = '{"_id":' . js($Id{$k}) . ',"timestamp":' . $ts++
            . ',"common":{"score":50,"ep_info":{"device_id":"one-cam"},'
            . '"recognize_face_attr":{"age":"20","feature":[0.5,1e-7,-3]},'
            . '"name":' . js("$k \x{95e8}") . '}}';
    }
}

# documents whose with_feature=0 bytes are not line_without_feature's:
# [line, the bytes with_feature=0 must give] (t/021-bytes.t's cases)
our %Odd = (
    'odd-first' => [
        q~{"_id":"odd-first","timestamp":1400000061,"common":{"recognize_face_attr":{"feature":[1,2],"age":"20"}}}~,
        q~{"_id":"odd-first","timestamp":1400000061,"common":{"recognize_face_attr":{"age":"20"}}}~],
    'odd-only' => [
        q~{"_id":"odd-only","timestamp":1400000062,"common":{"recognize_face_attr":{ "feature" : [ 1 , 2 ] }}}~,
        q~{"_id":"odd-only","timestamp":1400000062,"common":{"recognize_face_attr":{  }}}~],
    'odd-spaces' => [
        q~{"_id":"odd-spaces","timestamp":1400000063,"common":{"recognize_face_attr":{"age":"20" , "feature" : [1] }}}~,
        q~{"_id":"odd-spaces","timestamp":1400000063,"common":{"recognize_face_attr":{"age":"20"  }}}~],
    'odd-not-object' => [
        q~{"_id":"odd-not-object","timestamp":1400000064,"common":{"recognize_face_attr":[{"feature":[8]}]},"feature":[9]}~,
        q~{"_id":"odd-not-object","timestamp":1400000064,"common":{"recognize_face_attr":[{"feature":[8]}]},"feature":[9]}~],
    'odd-escaped' => [
        q~{"_id":"odd-escaped","timestamp":1400000065,"s":"caf\u00e9 \/ \"feature\":[0]","common":{"recognize_face_attr":{"box":[{"feature":[5]}],"feature":[7]}}}~,
        q~{"_id":"odd-escaped","timestamp":1400000065,"s":"caf\u00e9 \/ \"feature\":[0]","common":{"recognize_face_attr":{"box":[{"feature":[5]}]}}}~],
);

# a document of about 3 MB: 150000 floats of feature, 1.5 MB of text
our $Big = '{"_id":"big-1","timestamp":1400000090,"pad":"'
    . ('0123456789abcdef' x 98304) . '","common":{"recognize_face_attr":'
    . '{"age":"40","feature":['
    . join(',', map { sprintf '%.9f', sin $_ } 1 .. 150000)
    . ']},"score":99.5}}';

sub delete_mine {
    SophonTest::psql("DELETE FROM sophon_events WHERE $Range");
}

sub insert_mine {
    delete_mine();
    insert_events((map { $Line{$_} } sort keys %Line),
                  (map { $Odd{$_}[0] } sort keys %Odd), $Big);
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { delete_mine() };
        warn "024-one-event: cannot delete the documents: $@" if $@;
    }
}

# --------------------------------------------------------------------------
# What an answer must be

# id (UTF-8 bytes) => [line, line with_feature=0] of every event we know
my %Known;

sub known {
    return \%Known if %Known;

    for my $f (@{ SophonTest::fixtures() }) {
        $Known{ bytes_of($f->{doc}{_id}) } =
            [ $f->{line}, SophonTest::line_without_feature($f->{line}) ];
    }
    for my $k (keys %Line) {
        $Known{ bytes_of($Id{$k}) } =
            [ $Line{$k}, SophonTest::line_without_feature($Line{$k}) ];
    }
    for my $id (keys %Odd) {
        $Known{$id} = $Odd{$id};
    }
    $Known{'big-1'} = [ $Big, SophonTest::line_without_feature($Big) ];

    return \%Known;
}

# a fixture event with a feature vector, and a fixture id plus one digit
our $Some = (grep { $_->{line} =~ /"feature":\[/ }
             @{ SophonTest::fixtures() })[100]{doc}{_id};
our $NotId = "${Some}1";

# the fixture line of an id (for "--- response_body eval")
sub line_of {
    my ($id, $cut) = @_;
    for my $f (@{ SophonTest::fixtures() }) {
        next if $f->{doc}{_id} ne $id;
        return $cut ? SophonTest::line_without_feature($f->{line})
                    : $f->{line};
    }
    die "line_of: no fixture event $id\n";
}

# '' if $body is {"data":LINE} for the id of this path, else why
sub one_event_mismatch {
    my ($path, $qs, $body) = @_;
    my $id = pct_decode($path);
    my $known = known()->{$id};

    return "an id we do not know: $path" if !$known;

    my $q = eval { SophonTest::parse_query($qs // '') } || {};
    my $cut = ($q->{with_feature} // '') =~ /^(?:0|false)$/ ? 1 : 0;
    my $want = '{"data":' . $known->[$cut] . '}';

    return '' if defined $body && $body eq $want;
    return "no body" if !defined $body;

    my $at = first_difference($body, $want);

    return "first difference at byte $at of " . length($body) . " (expected "
           . length($want) . "): got '"
           . substr($body, $at > 40 ? $at - 40 : 0, 80) . "', expected '"
           . substr($want, $at > 40 ? $at - 40 : 0, 80) . "'";
}

# A block as SophonTest::check_body reads it, with another request: the
# list's answers at "<location>/" and at other locations are checked as
# the same query of the standard location
package FakeBlock {
    sub new { my ($c, %a) = @_; bless {%a}, $c }
    sub name { $_[0]{name} }
    sub request { $_[0]{request} }
    sub raw_request { undef }
}

# every body: a 200 of one event is its line; a list is the oracle's page
# for its query string, wherever it was asked for; every other body JSON
add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep, $dry_run) = @_;
    return if $dry_run;

    local $_;

    my $req = ref $block->request ? $block->request->[$req_idx]
                                  : $block->request;
    $req //= '';
    my $name = $block->name;

    my ($path, $qs) = $req =~ m{^GET /SophonFace/api/events/([^?\s]+)(?:\?(\S*))?};

    if (defined $path && defined $body && $body =~ /^\{"data":\{/) {
        my $why = one_event_mismatch($path, $qs, $body);
        ok($why eq '', "$name - the event is {\"data\":<its stored bytes>}"
                       . " (req $req_idx)") or diag($why);

    } elsif (defined $block->not_fixtures) {
        # a list of our own events: the oracle knows the fixtures only
        return if !defined $body || $body eq '';
        ok(eval { JSON::PP->new->utf8->decode($body); 1 },
           "$name - the body is valid JSON (req $req_idx)") or diag($@);

    } else {
        my ($qs) = $req =~ m{^\S+ [^?\s]*(?:\?(\S*))?};
        my ($method) = $req =~ /^(\S+)/;
        SophonTest::check_body(
            FakeBlock->new(name => $name,
                           request => ($method // 'GET')
                                      . " /SophonFace/api/events"
                                      . (defined $qs ? "?$qs" : '')),
            $body, 0, $rep, 0);
    }

    return if $req_idx != 0 || $rep != 0 || !defined $block->scenario;

    (my $scenario = $block->scenario) =~ s/^\s+|\s+$//g;
    my $code = main->can("scenario_$scenario")
        or die "no scenario $scenario\n";

    my $ok = eval { $code->($block); 1 };
    fail("$name - the scenario ran to its end: $@") if !$ok;
});

add_block_preprocessor(sub {
    my $block = shift;

    insert_mine() if defined $block->insert_mine;

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_
    }
});

# --------------------------------------------------------------------------
# Scenarios

# what GET and HEAD must agree on: the headers but Date, Transfer-Encoding
# and Connection (the server closes a keep-alive connection after
# keepalive_requests)
my @Volatile = qw(date transfer-encoding connection);

# every fixture event, by its id: GET, GET with_feature=0 (or false), HEAD
sub scenario_every_event {
    my ($block) = @_;
    my $name = $block->name;
    my $fx = SophonTest::fixtures();
    my $c = ka_open();
    my $ct = 'application/json; charset=utf-8';
    my (@get, @cut, @head, %seen);
    my $n = 0;

    for my $f (@$fx) {
        my $id = $f->{doc}{_id};
        my $path = '/SophonFace/api/events/' . SophonTest::uri($id);
        $seen{$id}++;

        my $r0 = my $r = ka_request($c, undef, path => $path);
        my $why = ($r->{status} // 0) != 200 ? "status " . ($r->{status} // '-')
                : ($r->{headers}{'content-type'} // '') ne $ct
                    ? "Content-Type " . ($r->{headers}{'content-type'} // '-')
                : one_event_mismatch(SophonTest::uri($id), '', $r->{body});
        push @get, "$id: $why" if $why ne '';

        # with_feature=false on every tenth, and a cache buster
        my $qs = $n++ % 10 ? 'with_feature=0' : 'with_feature=false&_=1';
        $r = ka_request($c, $qs, path => $path);
        $why = ($r->{status} // 0) != 200 ? "status " . ($r->{status} // '-')
             : one_event_mismatch(SophonTest::uri($id), $qs, $r->{body});
        push @cut, "$id?$qs: $why" if $why ne '';

        # HEAD: GET's headers, but the date and the chunking of a body
        my $get = headers_of($r0, @Volatile);
        $r = ka_request($c, undef, path => $path, method => 'HEAD');
        my $head = headers_of($r, @Volatile);
        $why = ($r->{status} // 0) != 200 ? "status " . ($r->{status} // '-')
             : $head ne $get ? "headers '$head', GET's '$get'"
             : $r->{raw} !~ /\r\n\r\n\z/ ? "bytes after the header"
             : '';
        push @head, "$id: $why" if $why ne '';
    }

    ka_close($c);

    cmp_ok(scalar keys %seen, '>=', 1500,
           "$name - the fixtures' events, each id once (" . @$fx . ")");
    is(scalar keys %seen, scalar @$fx, "$name - no fixture id twice");

    ok_none($name, \@get, "GET <_id>: 200 {\"data\":<its fixture line>},"
                          . " byte for byte, for every fixture event");
    ok_none($name, \@cut, "GET <_id>?with_feature=0|false: the line without"
                          . " its vector, for every fixture event");
    ok_none($name, \@head, "HEAD <_id>: 200, GET's headers, no body, for"
                           . " every fixture event");
}

# ids that must be percent-encoded, each asked for with every byte
# encoded, and with only what must be
sub scenario_encoded_ids {
    my ($block) = @_;
    my $name = $block->name;
    my $c = ka_open();
    my @bad;

    for my $k (qw(space utf8 quotes backslash reserved slash brackets lower
                  trailing leading ascii255 ascii256 utf8_256 limit20
                  limit21))
    {
        my $bytes = bytes_of($Id{$k});

        # every byte but the unreserved ones; every byte at all; only what
        # a request line and nginx's parser need
        my @paths = (SophonTest::uri($Id{$k}),
                     join('', map { sprintf '%%%02X', ord } split //, $bytes),
                     $bytes =~ s/([\x00-\x20%?#\x7f])/sprintf '%%%02X', ord $1/ger);

        for my $p (@paths) {
            for my $qs (undef, 'with_feature=0') {
                my $r = ka_request($c, $qs,
                                   path => "/SophonFace/api/events/$p");
                my $why = ($r->{status} // 0) != 200
                        ? "status " . ($r->{status} // '-') . ": "
                          . substr($r->{body} // '', 0, 100)
                        : one_event_mismatch($p, $qs // '', $r->{body});
                push @bad, "$k ($p" . (defined $qs ? "?$qs" : '') . "): $why"
                    if $why ne '';
            }
        }
    }

    ka_close($c);
    ok_none($name, \@bad, "every id that needs encoding, however encoded, is"
                          . " its own event");
}

# what a run that was killed may have left
delete_mine() if $ENV{TEST_NGINX_SOPHON_ADMIN_DB};

# the big document to a client that does not read for a while (a 4 KB
# window): the answer waits in the temporary file, and comes out whole
sub scenario_slow_big {
    my ($block) = @_;
    my $name = $block->name;
    my $pos = -s errlog() // 0;

    for my $qs ('', 'with_feature=0') {
        my $c = http_send($qs, rcvbuf => 4096,
                          path => '/SophonFace/api/events/big-1')
            or die "connect: $!\n";
        Time::HiRes::sleep(0.5);
        http_pump([$c], 20);

        my $r = parse_http($c->{buf});
        is($r->{status}, 200, "$name - a slow client ($qs): 200");
        ok($r->{complete}, "$name - a slow client ($qs): the whole answer,"
                           . " its last chunk too");
        my $why = one_event_mismatch('big-1', $qs, $r->{body});
        ok($why eq '', "$name - a slow client ($qs): the document's bytes")
            or diag($why);
    }

    my $lines = log_since(errlog(), $pos);
    ok(scalar(grep { /a sophon_events answer is buffered to a temporary file/ }
              @$lines),
       "$name - the answers waited in the temporary file");
}

run_tests();

__DATA__

=== TEST 1: one fixture event by its id: {"data":<its line>}
--- request eval
"GET /SophonFace/api/events/1700000001.500100"
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body eval
'{"data":' . main::line_of('1700000001.500100') . '}'
--- no_error_log
[error]



=== TEST 2: with_feature=0 cuts the vector as the list does
--- request eval
"GET /SophonFace/api/events/$main::Some?with_feature=0"
--- error_code: 200
--- response_body eval
'{"data":' . main::line_of($main::Some, 1) . '}'
--- response_body_unlike: "feature"
--- no_error_log
[error]



=== TEST 3: HEAD: the same status and headers, no body
--- request eval
["HEAD /SophonFace/api/events/$main::Some",
 "HEAD /SophonFace/api/events/$main::NotId"]
--- error_code eval
[200, 404]
--- response_headers eval
["Content-Type: application/json; charset=utf-8",
 "Content-Type: application/json; charset=utf-8"]
--- response_body eval
["", ""]
--- no_error_log
[error]



=== TEST 4: an unknown id is the box's 404, ID_NOT_FOUND
--- request eval
["GET /SophonFace/api/events/$main::NotId",
 "GET /SophonFace/api/events/nope?with_feature=0",
 "GET /SophonFace/api/events/" . substr($main::Some, 0, -1),
 "GET /SophonFace/api/events/%20$main::Some",
 "GET /SophonFace/api/events/$main::Some%20",
 "GET /SophonFace/api/events/$main::Some/",
 "GET /SophonFace/api/events/$main::Some/x",
 "GET /SophonFace/api/events/%27%20OR%20%271%27=%271",
 "GET /SophonFace/api/events/%E9%97%A8"]
--- error_code eval
[(404) x 9]
--- response_headers eval
[("Content-Type: application/json; charset=utf-8") x 9]
--- response_body eval
[('{"error":{"code":40401,"message":"_id: no event has this id","status":"ID_NOT_FOUND"}}') x 9]
--- no_error_log
[error]



=== TEST 5: any other method on an id is a 405 with Allow: GET, HEAD
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request eval
["POST /SophonFace/api/events/$main::Some\n{}",
 "PUT /SophonFace/api/events/$main::Some\n{}",
 "DELETE /SophonFace/api/events/$main::Some",
 "PATCH /SophonFace/api/events/$main::Some\n{}",
 "OPTIONS /SophonFace/api/events/$main::Some",
 "POST /SophonFace/api/events/nope",
 "GET /SophonFace/api/events/$main::Some?per_page=1"]
--- error_code eval
[(405) x 6, 200]
--- response_headers eval
[("Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8") x 6,
 "Content-Type: application/json; charset=utf-8"]
--- response_body_like eval
[(qr/^\{"error":\{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"\}\}$/) x 6,
 qr/^\{"data":\{"_id":"\Q$main::Some\E",/]
--- no_error_log
[error]



=== TEST 6: invalid UTF-8 in the decoded id is a 400 naming _id
--- request eval
["GET /SophonFace/api/events/%FF",
 "GET /SophonFace/api/events/abc%FE",
 "GET /SophonFace/api/events/%C0%AF",
 "GET /SophonFace/api/events/%ED%A0%80",
 "GET /SophonFace/api/events/%E9%97",
 "GET /SophonFace/api/events/%F4%90%80%80",
 "GET /SophonFace/api/events/a%C3",
 "HEAD /SophonFace/api/events/%FF"]
--- error_code eval
[(400) x 8]
--- response_body eval
[('{"error":{"code":40000,"message":"_id: is not valid UTF-8 text","status":"BAD_REQUEST"}}') x 7, ""]
--- no_error_log
[error]



=== TEST 7: "<location>X" is no endpoint: 404 NOT_FOUND, 40400
--- request eval
["GET /SophonFace/api/eventsX",
 "GET /SophonFace/api/events$main::Some",
 "GET /SophonFace/api/events.json?per_page=1",
 "GET /SophonFace/api/events%2F$main::Some"]
--- error_code eval
[404, 404, 404, 200]
--- response_headers eval
[("Content-Type: application/json; charset=utf-8") x 4]
--- response_body_like eval
[(qr/^\{"error":\{"code":40400,"message":"[^"]+","status":"NOT_FOUND"\}\}$/) x 3,
 qr/^\{"data":\{"_id":"\Q$main::Some\E",/]
--- no_error_log
[error]



=== TEST 8: the location's own URI and "<location>/" are the list
--- request eval
["GET /SophonFace/api/events",
 "GET /SophonFace/api/events/",
 "GET /SophonFace/api/events?per_page=3&page=5&with_feature=0",
 "GET /SophonFace/api/events/?per_page=3&page=5&with_feature=0",
 "HEAD /SophonFace/api/events/?per_page=3",
 "GET /SophonFace/api/events/?streams=dev-edge-1"]
--- error_code eval
[(200) x 6]
--- response_body_like eval
[(qr/^\{"data":\[\{.*"pagination":\{"num_pages":/s) x 4, qr/^$/,
 qr/"total_count":[1-9]/]
--- no_error_log
[error]



=== TEST 9: a one-event request's other parameters are parsed by the list's rules
--- request eval
["GET /SophonFace/api/events/$main::Some?per_page=abc",
 "GET /SophonFace/api/events/$main::Some?with_feature=2",
 "GET /SophonFace/api/events/$main::Some?with_feature=0&with_feature=0",
 "GET /SophonFace/api/events/$main::Some?userType=9",
 "GET /SophonFace/api/events/$main::Some?datetime_gte=1x",
 "GET /SophonFace/api/events/$main::Some?name=%FF",
 "GET /SophonFace/api/events/$main::Some?_=1607430334123&foo%ZZ=bar",
 "GET /SophonFace/api/events/$main::Some?with_feature=true&page=0"]
--- error_code eval
[(400) x 6, 200, 200]
--- response_body_like eval
[qr/^\{"error":\{"code":40000,"message":"per_page: must be an integer from 1 to 1000","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"with_feature: must be 1, 0, true or false","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"with_feature: is given more than once","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"userType: [^"]+","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"datetime_gte: [^"]+","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"name: [^"]+","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"data":\{"_id":"\Q$main::Some\E",.*"feature":\[/s,
 qr/^\{"data":\{"_id":"\Q$main::Some\E",.*"feature":\[/s]
--- no_error_log
[error]



=== TEST 10: every fixture event by its id, with and without with_feature=0, and HEAD
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/1700000002.500100
--- error_code: 200
--- scenario: every_event
--- no_error_log
[error]



=== TEST 11: a location that ends in a slash: its URI is the list, "<location><_id>" the event
--- config
    location /SophonFace/api/events/ {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["GET /SophonFace/api/events/?per_page=2&datetime_gte=1500000000&datetime_lte=1607400000",
 "GET /SophonFace/api/events/1700000001.500100",
 "GET /SophonFace/api/events/nope"]
--- error_code eval
[200, 200, 404]
--- response_body_like eval
[qr/^\{"data":\[\{.*"total_count":[1-9]/s,
 qr/^\{"data":\{"_id":"1700000001\.500100",/,
 qr/^\{"error":\{"code":40401,"message":"_id: no event has this id","status":"ID_NOT_FOUND"\}\}$/]
--- no_error_log
[error]



=== TEST 12: an exact location has no one-event form, even when its URI is rewritten to one
--- config
    location = /SophonFace/api/events {
        rewrite ^ /SophonFace/api/events/1700000001.500100 break;
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
    location / {
        default_type application/json;
        return 404 '{"not":"the module"}';
    }
--- request eval
["GET /SophonFace/api/events?per_page=2&datetime_gte=1607400000",
 "GET /SophonFace/api/events/1700000001.500100"]
--- error_code eval
[200, 404]
--- response_body_like eval
[qr/^\{"data":\[\{.*"total_count":[1-9]/s,
 qr/^\{"not":"the module"\}$/]
--- no_error_log
[error]



=== TEST 13: ids that need encoding: spaces, UTF-8, quotes, "%", "?", "#", "/"
--- insert_mine
--- request eval
["GET /SophonFace/api/events/" . SophonTest::uri($main::Id{space}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{utf8}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{quotes}) . "?with_feature=0",
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{backslash}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{reserved}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{slash}),
 "GET /SophonFace/api/events/slash/inside",
 "GET /SophonFace/api/events/per%25cent+plus?query#hash",
 "GET /SophonFace/api/events/case-X"]
--- error_code eval
[(200) x 7, 404, 404]
--- response_body_like eval
[(qr/^\{"data":\{"_id":/) x 7, (qr/"ID_NOT_FOUND"/) x 2]
--- no_error_log
[error]



=== TEST 14: ids differing in a space are different events; every id, however encoded
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- insert_mine
--- request eval
["GET /SophonFace/api/events/case-x",
 "GET /SophonFace/api/events/case-x%20",
 "GET /SophonFace/api/events/%20case-x"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\{"data":\{"_id":"case-x",/, qr/^\{"data":\{"_id":"case-x ",/,
 qr/^\{"data":\{"_id":" case-x",/]
--- scenario: encoded_ids
--- no_error_log
[error]



=== TEST 15: 255 and 256 bytes are served, 257 is a 400 naming _id although the event exists
--- insert_mine
--- request eval
["GET /SophonFace/api/events/" . SophonTest::uri($main::Id{ascii255}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{ascii256}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{ascii257}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{utf8_256}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{utf8_257}),
 "GET /SophonFace/api/events/" . SophonTest::uri($main::Id{utf8_258}),
 "GET /SophonFace/api/events/" . ('z' x 256),
 "GET /SophonFace/api/events/" . ('z' x 4096),
 "HEAD /SophonFace/api/events/" . SophonTest::uri($main::Id{ascii257})]
--- error_code eval
[200, 200, 400, 200, 400, 400, 404, 400, 400]
--- response_body_like eval
[qr/^\{"data":\{"_id":"1400000020\.a{244}",/,
 qr/^\{"data":\{"_id":"1400000021\.b{245}",/,
 qr/^\{"error":\{"code":40000,"message":"_id: [^"]*","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"data":\{"_id":"(?:\x{e9}\x{97}\x{a8}){85}d",/,
 (qr/^\{"error":\{"code":40000,"message":"_id: [^"]*","status":"BAD_REQUEST"\}\}$/) x 2,
 qr/^\{"error":\{"code":40401,"message":"_id: no event has this id","status":"ID_NOT_FOUND"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"_id: [^"]*","status":"BAD_REQUEST"\}\}$/,
 qr/^$/]
--- no_error_log
[error]



=== TEST 16: sophon_events_max_value_length 20: 20 bytes are served, 21 refused
--- insert_mine
--- config
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_value_length 20;
    }
--- request eval
["GET /SophonFace/api/events/" . $main::Id{limit20},
 "GET /SophonFace/api/events/" . $main::Id{limit21},
 "GET /SophonFace/api/events/" . $main::Id{limit20} . "?with_feature=0"]
--- error_code eval
[200, 400, 200]
--- response_body_like eval
[qr/^\{"data":\{"_id":"1400000030\.123456789",/,
 qr/^\{"error":\{"code":40000,"message":"_id: [^"]*","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"data":\{"_id":"1400000030\.123456789",(?!.*"feature")/s]
--- no_error_log
[error]



=== TEST 17: with_feature=0 cuts the same bytes as the list, wherever the member stands
--- insert_mine
--- not_fixtures
--- config
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["GET /SophonFace/api/events/odd-first?with_feature=0",
 "GET /SophonFace/api/events/odd-only?with_feature=0",
 "GET /SophonFace/api/events/odd-spaces?with_feature=0",
 "GET /SophonFace/api/events/odd-not-object?with_feature=0",
 "GET /SophonFace/api/events/odd-escaped?with_feature=0",
 "GET /SophonFace/api/events/odd-escaped",
 "GET /SophonFace/api/events?datetime_gte=1400000061&datetime_lte=1400000065&with_feature=0&_=list"]
--- error_code eval
[(200) x 7]
--- response_body eval
[(map { '{"data":' . $main::Odd{$_}[1] . '}' }
      qw(odd-first odd-only odd-spaces odd-not-object odd-escaped)),
 '{"data":' . $main::Odd{'odd-escaped'}[0] . '}',
 '{"data":[' . main::csv(map { $main::Odd{$_}[1] }
                         qw(odd-escaped odd-not-object odd-spaces odd-only odd-first))
 . '],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":5,"next":null}}']
--- no_error_log
[error]



=== TEST 18: a document of 3 MB, through small buffers and the temporary file
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- insert_mine
--- config
    location /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_buffers 2 4k;
    }
--- request eval
["GET /SophonFace/api/events/big-1",
 "GET /SophonFace/api/events/big-1?with_feature=0",
 "HEAD /SophonFace/api/events/big-1"]
--- error_code eval
[200, 200, 200]
--- response_body eval
['{"data":' . $main::Big . '}',
 '{"data":' . SophonTest::line_without_feature($main::Big) . '}',
 ""]
--- scenario: slow_big
--- timeout: 20
--- no_error_log
[error]
