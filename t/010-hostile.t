# vi:filetype=perl

# Hostile requests.  Every one gets the contract's 400 naming the parameter
# (and never echoing the value), or, where the request is legal, the page
# the fixtures give (SophonTest::check_body); none gets a 500, none writes
# an [error] line, and nothing the client sends reaches SQL as text (a
# pg_sleep() injection answers well within 2 s).
#
# The basic error rows are t/005-errors.t; this file goes past them:
# overlong values and query strings (nginx's own 414 included), lists of
# thousands of items in every form, bad percent-encoding at every position,
# every kind of invalid UTF-8, NUL bytes in keys and values, junk and
# extreme numbers, integer overflow at 2^31, 2^32, 2^63 and 2^64, duplicated
# parameters, SQL in every parameter, broken JSON lists, CR LF in values.
#
# Two kinds of requests are sent in a form that SophonTest::check_body does
# not recompute (it still checks that the body is JSON):
#   - HEAD, for nginx's own 414, whose body is nginx's HTML page;
#   - the absolute form "GET http://localhost/SophonFace/api/events?...",
#     for legal requests whose keys or values SophonTest::parse_query
#     refuses to decode (invalid UTF-8 in an unknown key, U+FFFF, U+10FFFF:
#     Perl's strict UTF-8 refuses noncharacters that RFC 3629 allows); the
#     block then asserts the exact body itself.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

add_response_body_check(\&SophonTest::check_body);

# request lines up to 64k, for the blocks that send thousands of items
our $BigLocation = <<'_EOC_';
    large_client_header_buffers 4 64k;

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    SophonTest::default_location($block);
    SophonTest::default_json_headers($block);
});

our $Api = '/SophonFace/api/events';

our %IntMsg = (
    per_page => 'per_page: must be an integer from 1 to 1000',
    page     => 'page: must be an integer from 0 to 2147483647',
    top_k    => 'top_k: must be an integer from 1 to 10000000',
);

our @Numbers = qw(datetime_gte datetime_lte score_min score_max);
our @Strings = qw(name identity_id room);
our @Lists   = qw(groups streams);

our $Empty = '{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,'
           . '"total_count":0,"next":null}}';

# The exact body of a 400 with this message.
sub bad {
    my ($message) = @_;
    return '{"error":{"code":40000,"message":"' . $message
           . '","status":"BAD_REQUEST"}}';
}

sub badint { bad($IntMsg{ $_[0] }) }

# GET requests of the events location, one per query string.
sub get { [ map { "GET $Api?$_" } @_ ] }

# The same in absolute form (not recomputed by SophonTest::check_body).
sub absget { [ map { "GET http://localhost$Api?$_" } @_ ] }

sub head { [ map { "HEAD $Api?$_" } @_ ] }

# A query string of exactly $len bytes: cache busters (ignored).
sub busters {
    my ($len) = @_;
    my $qs = '';
    my $i = 0;
    $qs .= ($qs eq '' ? '' : '&') . '_' . $i++ . '=' . 'x' x 40
        while length $qs < $len;
    return substr $qs, 0, $len;
}

# The pagination block every unfiltered 200 ends with, as a pattern.
sub unfiltered {
    my ($per_page, $page) = @_;
    my $want = SophonTest::expected("per_page=$per_page&page=$page");
    my $p = $want->{pagination};
    return '"pagination":\{"num_pages":' . $p->{num_pages} . ',"page":'
           . $page . ',"per_page":' . $per_page . ',"total_count":'
           . $p->{total_count} . ',"next":(?:null|"[0-9a-f]+")\}\}$';
}

# A JSON array of strings, URL-encoded.
sub jlist {
    return SophonTest::uri('['
        . CORE::join(',', map { JSON::PP->new->allow_nonref->encode($_) } @_)
        . ']');
}

# The group and device of the fixtures with the most events.
sub common_value {
    my ($get) = @_;
    my %n;
    $n{ $get->($_->{doc}) // '' }++ for @{ SophonTest::fixtures() };
    delete $n{''};
    my ($v) = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    return $v;
}

sub top_group  { common_value(sub { $_[0]{common}{group_id} }) }
sub top_stream { common_value(sub { $_[0]{common}{ep_info}{device_id} }) }

# bad percent-encoding at every position of a value: [param, value]
our @BadPercent = (
    [name         => '%ZZabc'],     # first escape, both digits bad
    [name         => 'ab%Zc'],      # middle
    [name         => 'abc%'],       # a lone % at the end
    [name         => 'abc%4'],      # one digit at the end
    [identity_id  => '%4G1'],       # second digit bad
    [identity_id  => '%G41'],       # first digit bad
    [identity_id  => '%%41'],       # %% is no escape
    [room         => '%'],          # the whole value
    [room         => '%%'],
    [room         => 'a%-1'],       # a sign is not a hex digit
    [groups       => 'a,b%u0041'],  # IIS %uXXXX is not percent-encoding
    [groups       => '%5B%22a%ZZ%22%5D'],   # inside a JSON array
    [streams      => 'ok,%'],       # in the second item
    [streams      => '%E7%8E%'],    # after a valid escape
    [userType     => '1%2'],
    [userType     => '%+1'],
    [per_page     => '1%'],
    [page         => '%3'],
    [top_k        => '1%0'],
    [datetime_gte => '%31%'],
    [datetime_lte => '1%2E%'],
    [score_min    => '%x'],
    [score_max    => '8%2'],
);

# invalid UTF-8: [param, value, what]
our @BadUtf8 = (
    [name         => '%C0%80',             '2-byte overlong NUL'],
    [identity_id  => '%C1%BF',             '2-byte overlong DEL'],
    [room         => 'a%E0%80%AF',         '3-byte overlong /'],
    [name         => '%E0%9F%BF',          '3-byte overlong U+07FF'],
    [groups       => '%F0%80%80%AF',       '4-byte overlong /'],
    [streams      => '%F0%8F%BF%BF',       '4-byte overlong U+FFFF'],
    [name         => '%F5%80%80%80',       'past U+10FFFF (F5)'],
    [identity_id  => '%F7%BF%BF%BF',       'past U+10FFFF (F7)'],
    [room         => '%F8%88%80%80%80',    '5-byte form'],
    [groups       => '%FC%84%80%80%80%80', '6-byte form'],
    [streams      => '%FE',                'FE'],
    [name         => '%80',                'a lone continuation byte'],
    [identity_id  => 'x%BF',               'a lone continuation after ASCII'],
    [room         => '%80%80%80',          'continuation bytes only'],
    [name         => 'ab%C3',              'truncated 2-byte at the end'],
    [groups       => 'a,%E2%82',           'truncated 3-byte at the end'],
    [streams      => '%F0%9F%98',          'truncated 4-byte at the end'],
    [name         => '%C3A',               'truncated 2-byte before ASCII'],
    [identity_id  => '%E2%82A',            'truncated 3-byte before ASCII'],
    [room         => '%F0%9F%98A',         'truncated 4-byte before ASCII'],
    [name         => '%ED%BF%BF',          'a low surrogate'],
    [userType     => '%C0%B1',             'overlong "1"'],
    [per_page     => '%C0%B1',             'overlong "1"'],
    [page         => '1%80',               'a continuation byte'],
    [top_k        => '%EF%BC%91%FF',       'fullwidth 1 then FF'],
    [datetime_gte => '%C0%B1',             'overlong "1"'],
    [datetime_lte => '1%C0',               'C0'],
    [score_min    => '%F4%90%80%80',       'past U+10FFFF (F4 90)'],
    [score_max    => '9%ED%A0%80',         'a high surrogate'],
    [groups       => SophonTest::uri('["') . '%C0%80' . SophonTest::uri('"]'),
                                           'overlong inside a JSON array'],
    [streams      => SophonTest::uri('["a","') . '%FF' . SophonTest::uri('"]'),
                                           'FF inside a JSON array'],
    [userType     => SophonTest::uri('[') . '%C0%B1' . SophonTest::uri(']'),
                                           'overlong digit inside a JSON array'],
);

# NUL bytes in values not covered by t/005-errors.t: [param, value]
our @Nul = (
    [streams      => '%00'],
    [userType     => '%00'],
    [userType     => '1,%00'],
    [per_page     => '%00'],
    [page         => '1%00'],
    [top_k        => '%001'],
    [datetime_gte => '%00'],
    [datetime_lte => '1%00'],
    [score_min    => '0%00'],
    [score_max    => '%0099'],
    [name         => 'abc%00'],
    [groups       => 'a,%00'],
    [groups       => '%00,a'],
    [streams      => SophonTest::uri('["a"]') . '%00'],
);

# numbers with junk, not in t/005-errors.t
our @JunkNumbers = qw(1.5. 1..5 1e5e5 1e+-5 --1 +-1 %2B-1 -%2B1 1%205
    %EF%BC%91 %D9%A1 1_0 0b101 1e5.5 . .e1 e1 -.e1 1%09 0x1p3 1d 1f 1L
    %2B %2D%2D 1e%2B 1e1.0 0o7 1%2F2);

# integer overflow: values past the maximum, around 2^31, 2^32, 2^63, 2^64
our @Overflow = (
    [page     => '4294967295'],                # 2^32 - 1
    [page     => '4294967296'],                # 2^32
    [page     => '4294967306'],                # 2^32 + 10: 10 when wrapped
    [page     => '9223372036854775807'],       # 2^63 - 1
    [page     => '9223372036854775808'],       # 2^63
    [page     => '18446744073709551615'],      # 2^64 - 1
    [page     => '18446744073709551626'],      # 2^64 + 10
    [page     => '36893488147419103232'],      # 2^65
    [page     => '21474836470'],               # 2^31 - 1, times ten
    [page     => '-2147483648'],               # -2^31
    [page     => '-9223372036854775808'],      # -2^63
    [per_page => '2147483647'],
    [per_page => '2147483648'],
    [per_page => '4294967296'],
    [per_page => '4294967301'],                # 2^32 + 5
    [per_page => '9223372036854775808'],
    [per_page => '18446744073709551616'],
    [per_page => '18446744073709551621'],      # 2^64 + 5
    [per_page => '-9223372036854775808'],
    [top_k    => '2147483647'],
    [top_k    => '2147483648'],
    [top_k    => '4294967296'],
    [top_k    => '4294967297'],                # 2^32 + 1
    [top_k    => '9223372036854775807'],
    [top_k    => '9223372036854775808'],
    [top_k    => '18446744073709551616'],
    [top_k    => '18446744073709551617'],      # 2^64 + 1
    [top_k    => '-4294967296'],
);

# SQL in a value, the parameter being a string or a list
our @Sql = ("'", "\\", '$1', '::text', 'x::text', "'; SELECT pg_sleep(10); --",
            "%' OR '1'='1", "\\' OR 1=1 --", '$$ OR $$1$$=$$1',
            "E'\\x27'", '/* */', "1) OR (1=1", "' UNION SELECT doc FROM sophon_events --");

run_tests();

__DATA__

=== TEST 1: a 4 KB query string is served: cache busters, and an unknown key of 4 KB
--- request eval
main::get(main::busters(4096), "_=" . "x" x 4094,
          "per_page=2&" . main::busters(4085), "&" x 4096)
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[main::unfiltered(10, 0), main::unfiltered(10, 0), main::unfiltered(2, 0),
 main::unfiltered(10, 0)]
--- no_error_log
[error]



=== TEST 2: a 4 KB value of a known parameter is a 400, whatever the parameter
--- request eval
main::get(map { "$_=" . "1" x 4096 } @main::Strings, @main::Lists,
                                       @main::Numbers, qw(per_page page top_k))
--- error_code eval
[(400) x 12]
--- response_body eval
[(map { main::bad("$_: is longer than 256 bytes") } @main::Strings),
 (map { main::bad("$_: has an item longer than 256 bytes") } @main::Lists),
 (map { main::bad("$_: is longer than 256 bytes") }
      @main::Numbers, qw(per_page page top_k))]
--- no_error_log
[error]



=== TEST 3: the limit counts decoded bytes: 256 %41 is fine, 257 is not; 257 spaces as "+"
--- request eval
main::get("name=" . "%41" x 256, "name=" . "%41" x 257,
          "identity_id=" . "+" x 257, "groups=" . "%67" x 257,
          "per_page=" . "0" x 255 . "7", "page=" . "0" x 255 . "1",
          "top_k=" . "0" x 256 . "1", "score_min=" . "0" x 250 . "1e-250")
--- error_code eval
[200, 400, 400, 400, 200, 200, 400, 200]
--- response_body_like eval
['"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$',
 '^' . quotemeta(main::bad("name: is longer than 256 bytes")) . '$',
 '^' . quotemeta(main::bad("identity_id: is longer than 256 bytes")) . '$',
 '^' . quotemeta(main::bad("groups: has an item longer than 256 bytes")) . '$',
 main::unfiltered(7, 0), main::unfiltered(10, 1),
 '^' . quotemeta(main::bad("top_k: is longer than 256 bytes")) . '$',
 '"page":0,"per_page":10,']
--- no_error_log
[error]



=== TEST 4: an 8 KB query string is past large_client_header_buffers: nginx's own 414
The 414 comes from nginx before any location; its body is nginx's HTML
page, so HEAD is used (SophonTest checks every GET body as JSON).
--- no_http2: nginx's 414 and Connection close are HTTP/1.1's request line limit
--- request eval
main::head(main::busters(8192), "name=" . "a" x 8187,
           "groups=" . CORE::join(",", ("a") x 4093))
--- error_code eval
[414, 414, 414]
--- response_headers eval
[("Connection: close") x 3]
--- response_body eval
["", "", ""]



=== TEST 5: just under 8 KB the request line still fits and is served
--- request eval
main::get(main::busters(8100))
--- error_code eval
[200]
--- response_body_like eval
[main::unfiltered(10, 0)]
--- no_error_log
[error]



=== TEST 6: with large_client_header_buffers 64k, 8 KB and 60 KB query strings are served
--- config eval: $main::BigLocation
--- request eval
main::get(main::busters(8192), main::busters(60000),
          "per_page=3&page=2&" . main::busters(30000))
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[main::unfiltered(10, 0), main::unfiltered(10, 0), main::unfiltered(3, 2)]
--- no_error_log
[error]



=== TEST 7: thousands of list items, in every form, against the default limit of 100
--- curl_options: -g
--- config eval: $main::BigLocation
--- request eval
main::get("groups=" . CORE::join(",", map { "g$_" } 1 .. 3000),
          CORE::join("&", map { "streams=s$_" } 1 .. 3000),
          CORE::join("&", map { "groups%5B%5D=g$_" } 1 .. 3000),
          CORE::join("&", map { "streams[]=s$_" } 1 .. 3000),
          "groups=" . main::jlist(map { "g$_" } 1 .. 3000),
          "userType=[" . CORE::join(",", (1 .. 5) x 600) . "]",
          "userType=" . CORE::join(",", (1 .. 5) x 600),
          CORE::join("&", map { "userType=" . ($_ % 5 + 1) } 1 .. 3000),
          "groups=" . ("," x 3000),
          "streams=[" . ('"",' x 3000) . '""]')
--- error_code eval
[(400) x 10]
--- response_body eval
[map { main::bad($_) }
     "groups: has more than 100 items", "streams: has more than 100 items",
     "groups: has more than 100 items", "streams: has more than 100 items",
     "groups: has more than 100 items", "userType: has more than 100 items",
     "userType: has more than 100 items", "userType: has more than 100 items",
     "groups: has an empty item", "streams: has an empty item"]
--- no_error_log
[error]



=== TEST 8: thousands of list items, in every form, where sophon_events_max_list_items allows them
One bound array parameter each; the answer is the page the fixtures give.
--- curl_options: -g
--- config
    large_client_header_buffers 4 64k;

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_list_items 5000;
    }
--- request eval
my $g = SophonTest::uri(main::top_group());
my $s = SophonTest::uri(main::top_stream());
main::get("groups=" . CORE::join(",", (map { "g$_" } 1 .. 2999), $g),
          CORE::join("&", (map { "streams=s$_" } 1 .. 2999), "streams=$s"),
          CORE::join("&", (map { "groups%5B%5D=g$_" } 1 .. 2999), "groups%5B%5D=$g"),
          "groups=" . main::jlist((map { "g$_" } 1 .. 2999), main::top_group()),
          "userType=[" . CORE::join(",", (4) x 3000) . "]",
          CORE::join("&", map { "userType[]=" . ($_ % 2 + 2) } 1 .. 3000),
          "groups=" . CORE::join(",", map { "g$_" } 1 .. 5001))
--- error_code eval
[200, 200, 200, 200, 200, 200, 400]
--- response_body_like eval
[('"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$') x 6,
 '^' . quotemeta(main::bad("groups: has more than 5000 items")) . '$']
--- no_error_log
[error]



=== TEST 9: bad percent-encoding in a value, at every position, in every parameter
--- request eval
main::get(map { "$_->[0]=$_->[1]" } @main::BadPercent)
--- error_code eval
[(400) x @main::BadPercent]
--- response_body eval
[map { main::bad("$_->[0]: bad percent-encoding") } @main::BadPercent]
--- no_error_log
[error]



=== TEST 10: bad percent-encoding in a key: not one of ours, ignored with its value
Even a value that would be a 400 under a known key.
--- request eval
main::get("%ZZ=1", "per_page%=0", "per_page%4=0", "%=x", "per_%page=0",
          "name%=%ZZ", "%6Eame%G=%ZZ", "page%%=-1", "top_k%2=0&per_page=2")
--- error_code eval
[(200) x 9]
--- response_body_like eval
[(main::unfiltered(10, 0)) x 8, main::unfiltered(2, 0)]
--- no_error_log
[error]



=== TEST 11: a key that decodes to invalid UTF-8 or holds a NUL is not one of ours: ignored
--- no_http2: an absolute-form request target is HTTP/1.1's own
--- request eval
main::absget("%FF=1", "name%C0%AF=x", "per_page%80=0", "%ED%A0%80=1&per_page=1",
             "name%=%FF", "_=%C0%80")
--- error_code eval
[(200) x 6]
--- response_body_like eval
[(main::unfiltered(10, 0)) x 3, main::unfiltered(1, 0),
 (main::unfiltered(10, 0)) x 2]
--- no_error_log
[error]



=== TEST 12: NUL bytes in keys: never one of ours
--- request eval
main::get("name%00=x", "%00name=x", "na%00me=x", "per_page%00=0",
          "page%00%5B%5D=-1", "%00=%00")
--- error_code eval
[(200) x 6]
--- response_body_like eval
[(main::unfiltered(10, 0)) x 6]
--- no_error_log
[error]



=== TEST 13: NUL bytes in values, in every parameter and position
--- request eval
main::get(map { "$_->[0]=$_->[1]" } @main::Nul)
--- error_code eval
[(400) x @main::Nul]
--- response_body eval
[map { main::bad("$_->[0]: contains a NUL byte") } @main::Nul]
--- no_error_log
[error]



=== TEST 14: invalid UTF-8: 2-, 3- and 4-byte overlongs, past U+10FFFF, continuation bytes, truncated sequences
--- request eval
main::get(map { "$_->[0]=$_->[1]" } @main::BadUtf8)
--- error_code eval
[(400) x @main::BadUtf8]
--- response_body eval
[map { main::bad("$_->[0]: is not valid UTF-8") } @main::BadUtf8]
--- no_error_log
[error]



=== TEST 15: valid UTF-8 at the edges of each length is served
--- request eval
main::get(map { "name=$_" } '%C2%80', '%DF%BF', '%E0%A0%80', '%ED%9F%BF',
                              '%EE%80%80', '%EF%BB%BF', '%F0%90%80%80',
                              '%F0%9F%98%80', 'M%C3%BCller',
                              '%E7%8E%8B%F0%9F%98%80%C3%A9')
--- error_code eval
[(200) x 10]
--- response_body_like eval
[('"page":0,"per_page":10,') x 10]
--- no_error_log
[error]



=== TEST 16: noncharacters U+FFFF and U+10FFFF are valid UTF-8 (RFC 3629): served, match nothing
--- no_http2: an absolute-form request target is HTTP/1.1's own
--- request eval
main::absget("name=%EF%BF%BF", "identity_id=%F4%8F%BF%BF", "groups=%EF%BF%BE",
             "streams=" . SophonTest::uri('["\udbff\udfff"]'))
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[($main::Empty) x 4]
--- no_error_log
[error]



=== TEST 17: numbers with junk
--- request eval
main::get(map { my $v = $_; map { "$_=$v" } @main::Numbers } @main::JunkNumbers)
--- error_code eval
[(400) x (4 * @main::JunkNumbers)]
--- response_body eval
[map { map { main::bad("$_: must be a number") } @main::Numbers }
     @main::JunkNumbers]
--- no_error_log
[error]



=== TEST 18: integers with junk
--- request eval
my @junk = qw(10. 10.0 1e1 1E1 %EF%BC%91 %D9%A1 1_0 0b1 0o7 %2D%2D1 1%2C0 5%09 0x1 %2B0x1 5L);
main::get(map { my $v = $_; map { "$_=$v" } qw(per_page page top_k) } @junk)
--- error_code eval
[(400) x 45]
--- response_body eval
[map { map { main::badint($_) } qw(per_page page top_k) } 1 .. 15]
--- no_error_log
[error]



=== TEST 19: huge exponents: 1e308 and the largest double are numbers, 1e309 is out of range
--- request eval
main::get("datetime_gte=1e308", "datetime_lte=1e308", "score_min=-1e308",
          "score_max=1.7976931348623157e308", "datetime_gte=-1.7976931348623157E%2B308",
          "datetime_gte=1e309", "datetime_lte=-1e309", "score_min=1e%2B309",
          "score_max=1.7976931348623159e308", "datetime_gte=0.1e310",
          "score_min=10e308", "datetime_lte=1e99999999999999999999",
          "datetime_gte=1e23", "datetime_lte=-1e23&userType=1",
          "datetime_gte=-1e300&datetime_lte=1e300&streams=dev-edge-1")
--- error_code eval
[(200) x 5, (400) x 7, (200) x 3]
--- response_body_like eval
['"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', main::unfiltered(10, 0), main::unfiltered(10, 0),
 main::unfiltered(10, 0), main::unfiltered(10, 0),
 (map { '^' . quotemeta(main::bad("$_: is out of range")) . '$' }
      qw(datetime_gte datetime_lte score_min score_max datetime_gte score_min
         datetime_lte)),
 '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 20: tiny numbers: subnormals are numbers, what rounds to zero is out of range, zero with any exponent is zero
--- request eval
main::get("score_min=4.9e-324", "datetime_gte=1e-323", "score_max=-4.9E-324",
          "score_min=2e-324", "datetime_lte=-1e-99999",
          "score_min=0e999999", "datetime_gte=-0.000e-99999",
          "score_min=0." . "0" x 240 . "1")
--- error_code eval
[200, 200, 200, 400, 400, 200, 200, 200]
--- response_body_like eval
['"page":0,"per_page":10,', main::unfiltered(10, 0), '"page":0,"per_page":10,',
 '^' . quotemeta(main::bad("score_min: is out of range")) . '$',
 '^' . quotemeta(main::bad("datetime_lte: is out of range")) . '$',
 ('"page":0,"per_page":10,') x 3]
--- no_error_log
[error]



=== TEST 21: NaN and Infinity in every spelling are not numbers
--- request eval
my @v = qw(-Infinity %2BInfinity INF Inf infinity -nan NAN nan%280x1%29 %2Binf
           -NaN 1e1000000000000000000000000000000x);
main::get(map { my $v = $_; map { "$_=$v" } @main::Numbers } @v)
--- error_code eval
[(400) x 44]
--- response_body eval
[map { map { main::bad("$_: must be a number") } @main::Numbers } 1 .. 11]
--- no_error_log
[error]



=== TEST 22: -0, a leading + (encoded), leading zeros and .5 are decimal numbers
"+" unencoded is a space: a 400.
--- request eval
main::get("score_min=-0", "datetime_lte=-0", "score_max=%2B82", "score_min=010",
          "score_min=.5", "score_max=82.", "datetime_gte=%2B1.6e9",
          "score_min=-0.0e-0", "score_max=00000000000000000000000000000082",
          "score_min=+82")
--- error_code eval
[(200) x 9, 400]
--- response_body_like eval
['"page":0,"per_page":10,', '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', ('"page":0,"per_page":10,') x 7,
 '^' . quotemeta(main::bad("score_min: must be a number")) . '$']
--- no_error_log
[error]



=== TEST 23: octal-looking integers are decimal: 010 is ten
--- request eval
main::get("per_page=010", "page=010&per_page=3", "top_k=010&per_page=4&page=1",
          "page=0000000000000000000000000000000000000001",
          "per_page=0007&page=00")
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_like eval
[main::unfiltered(10, 0), '"page":10,"per_page":3,',
 '"num_pages":3,"page":1,"per_page":4,"total_count":10,"next":(?:null|"[0-9a-f]+")\}\}$',
 main::unfiltered(10, 1), main::unfiltered(7, 0)]
--- no_error_log
[error]



=== TEST 24: zero and negative zero where a positive integer is needed; signs, hex, NaN
--- request eval
main::get("per_page=-0", "per_page=00", "per_page=0000000000", "top_k=-0",
          "top_k=00", "page=%2B0", "page=-00", "per_page=NaN", "page=Infinity",
          "top_k=0x10", "top_k=%2B1", "page=0x0", "per_page=1e0")
--- error_code eval
[(400) x 13]
--- response_body eval
[map { main::badint($_) }
     qw(per_page per_page per_page top_k top_k page page per_page page top_k
        top_k page per_page)]
--- no_error_log
[error]



=== TEST 25: integer overflow at 2^31, 2^32, 2^63 and 2^64: never wraps to a small value
--- request eval
main::get(map { "$_->[0]=$_->[1]" } @main::Overflow)
--- error_code eval
[(400) x @main::Overflow]
--- response_body eval
[map { main::badint($_->[0]) } @main::Overflow]
--- no_error_log
[error]



=== TEST 26: the largest page with the largest per_page and top_k: 200, data [], the true total
The offset (2147483647 * 1000) does not fit 32 bits.
--- request eval
main::get("page=2147483647", "page=2147483647&per_page=1000",
          "page=2147483647&per_page=1000&top_k=10000000",
          "page=2147483647&per_page=1&top_k=1")
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['^\{"data":\[\],' . main::unfiltered(10, 2147483647),
 '^\{"data":\[\],' . main::unfiltered(1000, 2147483647),
 '^\{"data":\[\],' . main::unfiltered(1000, 2147483647),
 '^\{"data":\[\],"pagination":\{"num_pages":1,"page":2147483647,"per_page":1,"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 27: limits configured at their largest (2^31 - 1): no wrap-around in parsing, in the offset or in SQL
"18446744073709551620" is 2^64 + 4: it must not be read as 4; the offset
2147483647 * 2147483647 does not fit 32 bits, nor does its sum with a limit.
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_top_k 2147483647;
        sophon_events_max_per_page 2147483647;
    }
--- request eval
main::get("top_k=18446744073709551620", "per_page=18446744073709551620",
          "top_k=2147483648", "per_page=4294967297",
          "per_page=2147483647&page=2147483647",
          "per_page=2147483647&page=2147483647&userType=4",
          "per_page=2147483647&page=2147483647&name=a",
          "per_page=2147483647&userType=5&page=0",
          "top_k=2147483647&per_page=5&page=429496729")
--- error_code eval
[400, 400, 400, 400, 200, 200, 200, 200, 200]
--- response_body_like eval
['^' . quotemeta(main::bad("top_k: must be an integer from 1 to 2147483647")) . '$',
 '^' . quotemeta(main::bad("per_page: must be an integer from 1 to 2147483647")) . '$',
 '^' . quotemeta(main::bad("top_k: must be an integer from 1 to 2147483647")) . '$',
 '^' . quotemeta(main::bad("per_page: must be an integer from 1 to 2147483647")) . '$',
 ('^\{"data":\[\],"pagination":\{"num_pages":1,"page":2147483647,"per_page":2147483647,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$') x 3,
 '"pagination":\{"num_pages":1,"page":0,"per_page":2147483647,"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$',
 '^\{"data":\[\],"pagination":\{"num_pages":\d+,"page":429496729,"per_page":5,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 28: a scalar given twice in other spellings: key[], an encoded key, an empty second value
--- request eval
main::get("page=1&page[]=1", "page%5B%5D=1&page=2", "per_page[]=5&per_page[]=5",
          "top_k%5B%5D=1&top_k=1", "%70age=1&page=2", "score_min=1&score_min%5B%5D=1",
          "datetime_gte[]=1&datetime_gte=", "room=&room=", "identity_id&identity_id",
          "name=a&%6E%61%6D%65=a", "score_max&score_max[]", "datetime_lte=1&x=1&datetime_lte=1")
--- error_code eval
[(400) x 12]
--- response_body eval
[map { main::bad("$_: is given more than once") }
     qw(page page per_page top_k page score_min datetime_gte room identity_id
        name score_max datetime_lte)]
--- no_error_log
[error]



=== TEST 29: near-duplicates that are not duplicates: case, key[][], lists repeated in every form
--- request eval
main::get("page=1&PAGE=2", "page[]=3", "page[][]=3&per_page=2", "Per_Page=0",
          "userType=1&userType=1&userType[]=1&userType=" . SophonTest::uri("[1]"),
          "groups=" . SophonTest::uri(main::top_group()) . "&groups=["
          . "]&groups[]=" . SophonTest::uri(main::top_group()))
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body_like eval
['"page":1,"per_page":10,', '"page":3,"per_page":10,', main::unfiltered(2, 0),
 main::unfiltered(10, 0), '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 30: SQL in every string and list parameter is a value, matched literally
--- request eval
main::get(map { my $v = SophonTest::uri($_);
                map { "$_=$v" } @main::Strings, @main::Lists }
          @main::Sql)
--- error_code eval
[(200) x (5 * @main::Sql)]
--- response_body_like eval
[('"page":0,"per_page":10,') x (5 * @main::Sql)]
--- no_error_log
[error]



=== TEST 31: SQL in a JSON-array list and in comma-separated items is a value
--- request eval
main::get(map { my $k = $_; ("$k=" . main::jlist(@main::Sql),
                             "$k=" . CORE::join(",", map { SophonTest::uri($_) }
                                                     grep { !/,/ } @main::Sql),
                             CORE::join("&", map { "$k%5B%5D=" . SophonTest::uri($_) }
                                             @main::Sql)) }
          @main::Lists)
--- error_code eval
[(200) x 6]
--- response_body eval
[($main::Empty) x 6]
--- no_error_log
[error]



=== TEST 32: SQL in every numeric and integer parameter and in userType is a 400 that does not echo it
--- request eval
main::get(map { my $v = SophonTest::uri($_);
                map { "$_=$v" } @main::Numbers, qw(per_page page top_k userType) }
          @main::Sql)
--- error_code eval
[(400) x (8 * @main::Sql)]
--- response_body eval
[map { (map { main::bad("$_: must be a number") } @main::Numbers),
       main::badint("per_page"), main::badint("page"), main::badint("top_k"),
       main::bad("userType: must be integers from 1 to 5") } @main::Sql]
--- no_error_log
[error]



=== TEST 33: pg_sleep() in every parameter does not run: every answer comes within 2 s
--- timeout: 2
--- request eval
my $sleep = "'; SELECT pg_sleep(10); --";
my @v = ($sleep, "1); SELECT pg_sleep(10); --", "x' || pg_sleep(10) || '",
         "1 OR pg_sleep(10) IS NULL", "\$\$; SELECT pg_sleep(10); --");
main::get(map { my $v = SophonTest::uri($_);
                (map { "$_=$v" } @main::Strings, @main::Lists, @main::Numbers,
                                 qw(per_page page top_k userType)),
                "groups=" . main::jlist($_),
                "name=$v&identity_id=$v&room=$v&groups=$v&streams=$v" } @v)
--- error_code eval
[map { ((200) x 5, (400) x 8, 200, 200) } 1 .. 5]
--- response_body_like eval
[map { (('"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$') x 5,
        (map { '^' . quotemeta(main::bad("$_: must be a number")) . '$' } @main::Numbers),
        '^' . quotemeta(main::badint("per_page")) . '$',
        '^' . quotemeta(main::badint("page")) . '$',
        '^' . quotemeta(main::badint("top_k")) . '$',
        '^' . quotemeta(main::bad("userType: must be integers from 1 to 5")) . '$',
        '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$') } 1 .. 5]
--- no_error_log
[error]



=== TEST 34: a JSON-array list that is not valid JSON
--- request eval
my @bad = ('["a', '["a\\"]', '[["a"],"b"]', '["a",["b"]]', '[[[[[[[[[[]]]]]]]]]]',
           '[,"a"]', '[,]', '["a",,"b"]', '["a" "b"]', '["a"]]', '["a"],',
           '[abc]', '[NaN]', '[Infinity]', '[-]', '[01]', '[.5]', '[1.]', '["\\x"]',
           '["\\u12"]', '["\\uZZZZ"]', "[\"a\tb\"]", "[\"a\r\nb\"]", '["a"/*c*/]',
           '["a"]//', '[', '[]]', '[{}]', '[[]]', '["a":1]', '[undefined]');
main::get(map { "groups=" . SophonTest::uri($_) } @bad)
--- error_code eval
[(400) x 31]
--- response_body eval
[(main::bad("groups: is not a valid list")) x 31]
--- no_error_log
[error]



=== TEST 35: 10,000 nested arrays are refused at the second level, without recursion
--- curl_options: -g
--- config eval: $main::BigLocation
--- request eval
main::get("streams=" . ("[" x 10000) . ("]" x 10000),
          "userType=" . ("[" x 20000))
--- error_code eval
[400, 400]
--- response_body eval
[main::bad("streams: is not a valid list"), main::bad("userType: is not a valid list")]
--- no_error_log
[error]



=== TEST 36: JSON escapes that make no text: \u0000 and lone surrogates
A lone surrogate is not a character: like \udc00 (refused as UTF-8 once
decoded), a lone \ud800 must be refused, not turned into "?" or glued to
the next escape.  Absolute form: SophonTest's JSON parser dies on a lone
surrogate, so a wrong 200 must not reach check_body and stop the file.
--- no_http2: an absolute-form request target is HTTP/1.1's own
--- request eval
main::absget(map { "$_->[0]=" . SophonTest::uri($_->[1]) }
          [userType => '["\u0000"]'], [groups => '["\udc00"]'],
          [streams => '["a\udfff"]'], [groups => '["\ud800"]'],
          [streams => '["\udbff"]'], [groups => '["\ud800x"]'],
          [streams => '["\ud800\u0041"]'], [groups => '["\ud800\ud800"]'],
          [groups => '["\udc00\ud800"]'], [userType => '["\ud800"]'])
--- error_code eval
[(400) x 10]
--- response_body eval
[map { main::bad("$_: has an item that is not valid UTF-8 text") }
     qw(userType groups streams groups streams groups streams groups groups
        userType)]
--- no_error_log
[error]



=== TEST 37: JSON arrays that are valid but unusual are served: escapes, surrogate pairs, big numbers as text
--- request eval
main::get(map { "$_->[0]=" . SophonTest::uri($_->[1]) }
          [groups => '["\ud83d\ude00"]'], [streams => ' [ "dev-edge-1" ] '],
          [groups => '["\/","\b\f\n\r\t"]'], [groups => '[1e999,-0,1.5]'],
          [userType => '["0001",  5 ]'], [streams => '["dev-edge-1","dev-edge-1"]'])
--- error_code eval
[(200) x 6]
--- response_body_like eval
['"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$',
 '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$', '"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 38: CR LF in values and keys never makes a header
--- request eval
main::get("name=%0d%0aX-Injected:%201", "room=%0d%0a%0d%0a%3Chtml%3E",
          "identity_id=a%0aX-Injected:+1", "groups=a%0d%0aX-Injected:%201",
          "streams=" . main::jlist("a\r\nX-Injected: 1"),
          "x%0d%0aX-Injected:%201=1",
          "per_page=1%0d%0aX-Injected:%201", "page=%0d%0a",
          "userType=1%0d%0aSet-Cookie:%20a=b", "score_min=1%0aX-Injected:%201",
          "groups=" . SophonTest::uri("[\"a\r\nX-Injected: 1\"]"))
--- error_code eval
[(200) x 6, (400) x 5]
--- response_headers eval
[("$SophonTest::JsonType\n!X-Injected\n!Set-Cookie") x 11]
--- response_body_like eval
[('^' . quotemeta($main::Empty) . '$') x 5, main::unfiltered(10, 0),
 map { '^' . quotemeta($_) . '$' }
     main::badint("per_page"), main::badint("page"),
     main::bad("userType: must be integers from 1 to 5"),
     main::bad("score_min: must be a number"),
     main::bad("groups: is not a valid list")]
--- no_error_log
[error]



=== TEST 39: HEAD with hostile values: the status and headers of the GET, no body
--- request eval
main::head("name=" . SophonTest::uri("'; SELECT pg_sleep(10); --"), "page=18446744073709551616",
           "groups=" . SophonTest::uri('["\ud800"]'), "name=%C0%80", "userType=%00")
--- timeout: 2
--- error_code eval
[200, 400, 400, 400, 400]
--- response_body eval
["", "", "", "", ""]
--- no_error_log
[error]



=== TEST 40: after all that, every event is still there
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- response_body_like eval
my $n = @{ SophonTest::fixtures() };
'^\{"data":\[\{.*\],"pagination":\{"num_pages":' . $n . ',"page":0,"per_page":1,"total_count":' . $n . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]
