# vi:filetype=perl

# Errors: every malformed parameter is a 400 in the contract's shape whose
# message names the parameter and says why (never echoing the value), a
# method other than GET and HEAD is a 405 with Allow, an unreachable
# database is a quick 503; and what looks like SQL is only ever a value.
#
# Every answer of the location, 200 or error, is JSON with
# "Content-Type: application/json; charset=utf-8": the preprocessor adds
# that check to each block that does not list its own response headers.
# The 200s are checked against the fixtures by SophonTest::check_body.
#
# 500 and 504 need fault injection: a later issue.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

add_response_body_check(\&SophonTest::check_body);

add_block_preprocessor(sub {
    my $block = shift;

    SophonTest::default_location($block);
    SophonTest::default_json_headers($block);
});

our $Api = '/SophonFace/api/events';

# The exact body of a 400 with this message.
sub bad {
    my ($message) = @_;
    return '{"error":{"code":40000,"message":"' . $message
           . '","status":"BAD_REQUEST"}}';
}

# GET requests of the events location, one per query string.
sub get {
    return [ map { "GET $Api?$_" } @_ ];
}

run_tests();

__DATA__

=== TEST 1: per_page out of range: 0, -1, 1001
--- request eval
main::get("per_page=0", "per_page=-1", "per_page=1001", "per_page=99999999999999999999")
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[(main::bad("per_page: must be an integer from 1 to 1000")) x 4]
--- no_error_log
[error]



=== TEST 2: per_page not an integer: 1.5, 1e3, 10abc, +5, leading space, hex
--- request eval
main::get("per_page=1.5", "per_page=1e3", "per_page=10abc", "per_page=%2B5",
          "per_page=%205", "per_page=0x10", "per_page=abc")
--- error_code eval
[(400) x 7]
--- response_body eval
[(main::bad("per_page: must be an integer from 1 to 1000")) x 7]
--- no_error_log
[error]



=== TEST 3: an empty per_page or page is the default (no error)
--- request eval
main::get("per_page=", "per_page", "page=&per_page=3", "per_page=&userType=3")
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$',
 '"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$',
 '"pagination":\{"num_pages":\d+,"page":0,"per_page":3,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$',
 '"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 4: page negative
--- request eval
main::get("page=-1", "page=-0")
--- error_code eval
[400, 400]
--- response_body eval
[(main::bad("page: must be an integer from 0 to 2147483647")) x 2]
--- no_error_log
[error]



=== TEST 5: page not an integer
--- request eval
main::get("page=abc", "page=1.0", "page=1e2", "page=2x", "page=%201")
--- error_code eval
[(400) x 5]
--- response_body eval
[(main::bad("page: must be an integer from 0 to 2147483647")) x 5]
--- no_error_log
[error]



=== TEST 6: page overflow
--- request eval
main::get("page=99999999999999999999", "page=2147483648",
          "page=18446744073709551616")
--- error_code eval
[400, 400, 400]
--- response_body eval
[(main::bad("page: must be an integer from 0 to 2147483647")) x 3]
--- no_error_log
[error]



=== TEST 7: top_k zero or negative
--- request eval
main::get("top_k=0", "top_k=-1")
--- error_code eval
[400, 400]
--- response_body eval
[(main::bad("top_k: must be an integer from 1 to 10000000")) x 2]
--- no_error_log
[error]



=== TEST 8: top_k junk and above sophon_events_max_top_k
--- request eval
main::get("top_k=abc", "top_k=1.5", "top_k=10x", "top_k=10000001",
          "top_k=99999999999999999999")
--- error_code eval
[(400) x 5]
--- response_body eval
[(main::bad("top_k: must be an integer from 1 to 10000000")) x 5]
--- no_error_log
[error]



=== TEST 9: datetime_* and score_*: junk
--- request eval
main::get(map { "$_=abc" } qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 4]
--- response_body eval
[map { main::bad("$_: must be a number") }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 10: datetime_* and score_*: nan and inf are not numbers
--- request eval
main::get(map { my $p = $_; map { "$p=$_" } qw(nan NaN inf -inf Infinity) }
          qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 20]
--- response_body eval
[map { my $p = $_; map { main::bad("$p: must be a number") } 1 .. 5 }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 11: datetime_* and score_*: 1e400 does not fit a double
--- request eval
main::get(map { my $p = $_; map { "$p=$_" } qw(1e400 -1e400 1e-400) }
          qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 12]
--- response_body eval
[map { my $p = $_; map { main::bad("$p: is out of range") } 1 .. 3 }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 12: datetime_* and score_*: hex (0x10) is not a number
--- request eval
main::get(map { "$_=0x10" } qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 4]
--- response_body eval
[map { main::bad("$_: must be a number") }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 13: datetime_* and score_*: a leading or trailing space
"+" is a space in a query string.
--- request eval
main::get(map { my $p = $_; map { "$p=$_" } qw(%201 +1 1%20) }
          qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 12]
--- response_body eval
[map { my $p = $_; map { main::bad("$p: must be a number") } 1 .. 3 }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 14: datetime_* and score_*: trailing junk
--- request eval
main::get(map { my $p = $_; map { "$p=$_" } qw(1.5abc 82%2C5 1e 1e+ 1.2.3 -) }
          qw(datetime_gte datetime_lte score_min score_max))
--- error_code eval
[(400) x 24]
--- response_body eval
[map { my $p = $_; map { main::bad("$p: must be a number") } 1 .. 6 }
     qw(datetime_gte datetime_lte score_min score_max)]
--- no_error_log
[error]



=== TEST 15: userType outside 1..5, or not integers
--- request eval
main::get("userType=0", "userType=6", "userType=1,x", "userType=-1",
          "userType=1.0", "userType=2&userType=9", "userType%5B%5D=x")
--- error_code eval
[(400) x 7]
--- response_body eval
[(main::bad("userType: must be integers from 1 to 5")) x 7]
--- no_error_log
[error]



=== TEST 16: userType as a JSON array of strings (or numbers) that are not 1..5
--- request eval
main::get(map { "userType=" . SophonTest::uri($_) }
          '["a","b"]', '["0"]', '["6"]', '[6]', '[1,"x"]', '[2.5]')
--- error_code eval
[(400) x 6]
--- response_body eval
[(main::bad("userType: must be integers from 1 to 5")) x 6]
--- no_error_log
[error]



=== TEST 17: bad percent-encoding in a known value: %ZZ, %4, a trailing %
--- request eval
main::get("name=%ZZ", "identity_id=%4", "room=abc%", "groups=%G1",
          "streams=a%2", "per_page=%3", "userType=%", "datetime_gte=1%x0")
--- error_code eval
[(400) x 8]
--- response_body eval
[map { main::bad("$_: bad percent-encoding") }
     qw(name identity_id room groups streams per_page userType datetime_gte)]
--- no_error_log
[error]



=== TEST 18: a percent-encoded key is still the parameter
--- request eval
main::get("per%5Fpage=0", "%6Eame=%FF", "groups%5B%5D=%ZZ")
--- error_code eval
[400, 400, 400]
--- response_body eval
[main::bad("per_page: must be an integer from 1 to 1000"),
 main::bad("name: is not valid UTF-8"),
 main::bad("groups: bad percent-encoding")]
--- no_error_log
[error]



=== TEST 19: invalid UTF-8: a lone byte, an overlong form, a surrogate, past U+10FFFF, truncated
--- request eval
main::get("name=%FF", "name=%C0%AF", "name=%ED%A0%80", "name=%F4%90%80%80",
          "name=%E7%8E", "name=a%80b",
          "identity_id=%C0%AF", "room=%ED%A0%80", "groups=%FF",
          "streams=%E7%8E")
--- error_code eval
[(400) x 10]
--- response_body eval
[(map { main::bad("name: is not valid UTF-8") } 1 .. 6),
 main::bad("identity_id: is not valid UTF-8"),
 main::bad("room: is not valid UTF-8"),
 main::bad("groups: is not valid UTF-8"),
 main::bad("streams: is not valid UTF-8")]
--- no_error_log
[error]



=== TEST 20: a NUL byte, raw or as a JSON escape
--- request eval
main::get("name=%00", "identity_id=a%00b", "room=%00", "groups=%00",
          "groups=" . SophonTest::uri('["\u0000"]'),
          "streams=" . SophonTest::uri('["a\u0000b"]'))
--- error_code eval
[(400) x 6]
--- response_body eval
[main::bad("name: contains a NUL byte"),
 main::bad("identity_id: contains a NUL byte"),
 main::bad("room: contains a NUL byte"),
 main::bad("groups: contains a NUL byte"),
 main::bad("groups: has an item that is not valid UTF-8 text"),
 main::bad("streams: has an item that is not valid UTF-8 text")]
--- no_error_log
[error]



=== TEST 21: a scalar given twice
--- request eval
main::get("name=a&name=b", "page=0&page=0", "per_page=10&per_page=10",
          "top_k=5&top_k=6", "identity_id=1&x=y&identity_id=1",
          "room=1004&room=1004", "datetime_gte=1&datetime_gte=2",
          "score_max=90&score_max=90", "name=a&name%5B%5D=b")
--- error_code eval
[(400) x 9]
--- response_body eval
[map { main::bad("$_: is given more than once") }
     qw(name page per_page top_k identity_id room datetime_gte score_max
        name)]
--- no_error_log
[error]



=== TEST 22: a value longer than sophon_events_max_value_length (256 bytes, not characters)
86 CJK characters are 258 bytes.
--- request eval
main::get("name=" . "a" x 257,
          "identity_id=" . "1" x 257,
          "room=" . "r" x 257,
          "name=" . SophonTest::uri("\x{738b}" x 86),
          "datetime_gte=" . "1" x 257)
--- error_code eval
[(400) x 5]
--- response_body eval
[map { main::bad("$_: is longer than 256 bytes") }
     qw(name identity_id room name datetime_gte)]
--- no_error_log
[error]



=== TEST 23: a value of exactly sophon_events_max_value_length bytes is fine
--- request eval
main::get("name=" . "a" x 256,
          "identity_id=" . "1" x 256,
          "room=" . "r" x 256,
          "name=" . SophonTest::uri("\x{738b}" x 85 . "a"),
          "datetime_gte=" . "0" x 255 . "1")
--- error_code eval
[(200) x 5]
--- response_body_like eval
[('"pagination":\{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$') x 4,
 '"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 24: a list item longer than sophon_events_max_value_length, and one exactly at it
--- request eval
main::get("groups=" . "g" x 257,
          "streams=a," . "s" x 257,
          "groups=" . SophonTest::uri('["' . "g" x 257 . '"]'),
          "groups=" . "g" x 256,
          "streams=a," . "s" x 256,
          "groups=" . SophonTest::uri('["' . "g" x 256 . '"]'))
--- error_code eval
[400, 400, 400, 200, 200, 200]
--- response_body eval
[main::bad("groups: has an item longer than 256 bytes"),
 main::bad("streams: has an item longer than 256 bytes"),
 main::bad("groups: has an item longer than 256 bytes"),
 ('{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}') x 3]
--- no_error_log
[error]



=== TEST 25: a list with more than sophon_events_max_list_items (100) items, in every form
--- request eval
main::get("groups=" . CORE::join(",", map { "g$_" } 1 .. 101),
          CORE::join("&", map { "streams=s$_" } 1 .. 101),
          "groups=" . CORE::join(",", map { "g$_" } 1 .. 60) . "&"
              . CORE::join("&", map { "groups%5B%5D=h$_" } 1 .. 41),
          "groups=" . SophonTest::uri("[" . CORE::join(",", map { "\"g$_\"" } 1 .. 101) . "]"),
          "userType=" . CORE::join(",", (1 .. 5) x 20, 1))
--- error_code eval
[(400) x 5]
--- response_body eval
[map { main::bad("$_: has more than 100 items") }
     qw(groups streams groups groups userType)]
--- no_error_log
[error]



=== TEST 26: a list of exactly sophon_events_max_list_items items is fine
--- request eval
main::get("groups=" . CORE::join(",", map { "g$_" } 1 .. 99) . ",g-edge",
          CORE::join("&", map { "streams=s$_" } 1 .. 99) . "&streams=dev-edge-2",
          "userType=" . CORE::join(",", (1 .. 5) x 20))
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[('"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$') x 3]
--- no_error_log
[error]



=== TEST 27: configured limits: sophon_events_max_value_length 8, sophon_events_max_list_items 3
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_value_length 8;
        sophon_events_max_list_items 3;
    }
--- request eval
main::get("name=123456789", "name=12345678",
          "groups=a,b,c,d", "groups=a,b,c",
          "groups=123456789", "userType=1&userType=2&userType=3&userType=4")
--- error_code eval
[400, 200, 400, 200, 400, 400]
--- response_body eval
[main::bad("name: is longer than 8 bytes"),
 '{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}',
 main::bad("groups: has more than 3 items"),
 '{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}',
 main::bad("groups: has an item longer than 8 bytes"),
 main::bad("userType: has more than 3 items")]
--- no_error_log
[error]



=== TEST 28: a JSON-array list that is not valid JSON
--- request eval
main::get(map { "groups=" . SophonTest::uri($_) }
          '["a"', '[1,', '[[1]]', '["a"]x', '["a",]', "['a']", '[a]')
--- error_code eval
[(400) x 7]
--- response_body eval
[(main::bad("groups: is not a valid list")) x 7]
--- no_error_log
[error]



=== TEST 29: a JSON-array list that is not valid, in streams and userType
--- request eval
main::get("streams=" . SophonTest::uri('["a"'),
          "streams=" . SophonTest::uri('[["a"]]'),
          "userType=" . SophonTest::uri('[[1]]'),
          "userType=" . SophonTest::uri('[1,'))
--- error_code eval
[(400) x 4]
--- response_body eval
[(main::bad("streams: is not a valid list")) x 2,
 (main::bad("userType: is not a valid list")) x 2]
--- no_error_log
[error]



=== TEST 30: a JSON array of objects is not a list of strings
--- request eval
main::get("groups=" . SophonTest::uri('[{"a":1}]'),
          "streams=" . SophonTest::uri('[{"a":"dev-edge-1"}]'),
          "userType=" . SophonTest::uri('[{"a":1}]'))
--- error_code eval
[400, 400, 400]
--- response_body eval
[main::bad("groups: is not a valid list"),
 main::bad("streams: is not a valid list"),
 main::bad("userType: is not a valid list")]
--- no_error_log
[error]



=== TEST 31: a JSON array of null or booleans is not a list of strings
Ignoring such items would turn the filter off and answer every event.
--- request eval
main::get("groups=" . SophonTest::uri('[null]'),
          "streams=" . SophonTest::uri('[true]'),
          "userType=" . SophonTest::uri('[false]'))
--- error_code eval
[400, 400, 400]
--- response_body eval
[main::bad("groups: is not a valid list"),
 main::bad("streams: is not a valid list"),
 main::bad("userType: is not a valid list")]
--- no_error_log
[error]



=== TEST 32: SQL in every string parameter is a literal value
--- request eval
my @sql = ("' OR 1=1 --", "'); DROP TABLE sophon_events; --",
           "1' OR '1'='1", "\\'; DELETE FROM sophon_events; --");
main::get(map { my $v = SophonTest::uri($_);
                map { "$_=$v" } qw(name identity_id room groups streams) }
          @sql)
--- error_code eval
[(200) x 20]
--- response_body eval
[('{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}') x 20]
--- no_error_log
[error]



=== TEST 33: SQL in a JSON-array list, and a list item that would break out of an array literal
--- request eval
main::get(map { my ($k, $v) = @$_; "$k=" . SophonTest::uri($v) }
          [groups   => q|["' OR 1=1 --","'); DROP TABLE sophon_events; --"]|],
          [streams  => q|["dev-edge-1\"}'); DROP TABLE sophon_events; --"]|],
          [groups   => q|["g-edge\",\"g-edge-2"]|],
          [groups   => q|g-edge"}|],
          [streams  => q|["dev-edge-2\\\\"]|],
          [userType => q|1);DROP TABLE sophon_events;--|])
--- error_code eval
[200, 200, 200, 200, 200, 400]
--- response_body eval
[('{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}') x 5,
 main::bad("userType: must be integers from 1 to 5")]
--- no_error_log
[error]



=== TEST 34: quotes are matched as the characters they are
--- request eval
main::get("name=" . SophonTest::uri(q{O'Brien "Bob"}),
          "name=" . SophonTest::uri(q{'}),
          "identity_id=" . SophonTest::uri(q{9000004' OR '1'='1}))
--- error_code eval
[200, 200, 200]
--- response_body_like eval
my $n = SophonTest::expected("name=%27")->{pagination}{total_count};
die "no name with a quote in the fixtures\n" if $n < 2;
['"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$', "\"total_count\":$n,\"next\":(?:null|\"[0-9a-f]+\")\\}\\}\$", '"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 35: SQL in numeric parameters is a 400 that does not echo it
--- request eval
main::get("per_page=" . SophonTest::uri("1; DROP TABLE sophon_events"),
          "datetime_gte=" . SophonTest::uri("0 OR 1=1"),
          "score_min=" . SophonTest::uri("0); DROP TABLE sophon_events; --"))
--- error_code eval
[400, 400, 400]
--- response_body eval
[main::bad("per_page: must be an integer from 1 to 1000"),
 main::bad("datetime_gte: must be a number"),
 main::bad("score_min: must be a number")]
--- no_error_log
[error]



=== TEST 36: after all that, every event is still there
check_body compares the total with the fixtures.
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- response_body_like eval
my $n = @{ SophonTest::fixtures() };
'^\{"data":\[\{.*\],"pagination":\{"num_pages":' . $n . ',"page":0,"per_page":1,"total_count":' . $n . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 37: HEAD with a bad parameter: the 400's headers, no body
--- request
HEAD /SophonFace/api/events?per_page=0
--- error_code: 400
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body eval
""
--- no_error_log
[error]



=== TEST 38: POST is not allowed
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request
POST /SophonFace/api/events?per_page=1
{"per_page":1}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}
--- no_error_log
[error]



=== TEST 39: PUT is not allowed
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request
PUT /SophonFace/api/events
{"_id":"1"}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}
--- no_error_log
[error]



=== TEST 40: DELETE is not allowed
--- request
DELETE /SophonFace/api/events?event_id_list=1700000001.500100
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}
--- no_error_log
[error]



=== TEST 41: PATCH is not allowed
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request
PATCH /SophonFace/api/events
{"is_send":1}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}
--- no_error_log
[error]



=== TEST 42: OPTIONS is not allowed either
--- request
OPTIONS /SophonFace/api/events
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}
--- no_error_log
[error]



=== TEST 43: a 405 with a request body leaves a keep-alive connection usable
The body must be read and dropped, not taken for the next request.
--- pipelined_requests eval
["POST /SophonFace/api/events\n" . ("x" x 100),
 "GET /SophonFace/api/events?per_page=1"]
--- error_code eval
[405, 200]
--- response_headers eval
["Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8",
 "Content-Type: application/json; charset=utf-8"]
--- response_body_like eval
['^\{"error":\{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"\}\}$',
 '"per_page":1,']
--- no_error_log
[error]



=== TEST 44: the database cannot be reached: a quick 503 in the contract's shape
The body says nothing of the conninfo or the SQL; the error log says why.
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=1 dbname=x user=x";
    }
--- request
GET /SophonFace/api/events?name=secret
--- timeout: 5
--- error_code: 503
--- response_body chomp
{"error":{"code":50300,"message":"the database is unavailable","status":"SERVICE_UNAVAILABLE"}}
--- error_log
sophon_events: cannot connect to the database:
Connection refused



=== TEST 45: the database cannot be reached: HEAD gets the 503's headers
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=1 dbname=x user=x";
    }
--- request
HEAD /SophonFace/api/events
--- timeout: 5
--- error_code: 503
--- response_body eval
""
--- error_log
sophon_events: cannot connect to the database:



=== TEST 46: the database cannot be reached: a bad parameter is still a 400, found before any connection is asked for
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=1 dbname=x user=x";
    }
--- request
GET /SophonFace/api/events?per_page=0
--- timeout: 5
--- error_code: 400
--- response_body eval
main::bad("per_page: must be an integer from 1 to 1000")
--- no_error_log
cannot connect to the database
[error]
