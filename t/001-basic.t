# vi:filetype=perl

# The whole path: the module loads, a location with sophon_events answers a
# page of the newest events with its pagination block, through a
# non-blocking connection to the test database.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

SophonTest::use_standard_location();

run_tests();

__DATA__

=== TEST 1: the first page, with the defaults
--- request
GET /SophonFace/api/events
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like: ^\{"data":\[\{.*\],"pagination":\{"num_pages":\d+,"page":0,"per_page":10,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: the seed's own request
--- request
GET /SophonFace/api/events?per_page=10&page=0
--- error_code: 200
--- no_error_log
[error]



=== TEST 3: a later page
--- request
GET /SophonFace/api/events?per_page=7&page=3
--- error_code: 200
--- no_error_log
[error]



=== TEST 4: HEAD answers the headers of a GET, without a body
--- request
HEAD /SophonFace/api/events?per_page=5
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body
--- no_error_log
[error]



=== TEST 5: POST is not allowed
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request
POST /SophonFace/api/events
{}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}



=== TEST 6: DELETE is not allowed here either
--- request
DELETE /SophonFace/api/events?event_id_list=1
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body chomp
{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}



=== TEST 7: unknown parameters are ignored (cache busters)
--- request
GET /SophonFace/api/events?per_page=3&_=1607430334123&foo%ZZ=bar
--- error_code: 200
--- no_error_log
[error]



=== TEST 8: the location can live under any name, with directives inherited from server
--- config
    sophon_events_db "$TEST_NGINX_SOPHON_DB";

    location /events {
        sophon_events;
    }
--- request
GET /events?per_page=2
--- error_code: 200
--- response_body_like: "per_page":2,
--- no_error_log
[error]



=== TEST 9: $sophon_events_total is known when the header goes out
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        add_header X-Total $sophon_events_total;
    }
--- request
GET /SophonFace/api/events?userType=5&per_page=1
--- error_code: 200
--- response_headers_like
X-Total: [1-9][0-9]*
--- no_error_log
[error]
