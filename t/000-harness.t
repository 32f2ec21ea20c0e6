# Self-test of the test harness (the real Test::Nginx::Socket or the bundled
# one in t/lib), using stock nginx directives only: no module is loaded.

use Test::Nginx::Socket 'no_plan';
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP ();

repeat_each(2);

# Custom sections checked on every response body:
#   --- json_body eval      Perl structure the body must decode to
#   --- gunzipped_body      text the gzip-compressed body must inflate to
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $name = $block->name;

    if (defined(my $expected = $block->json_body)) {
        SKIP: {
            skip "$name - json_body - tests skipped due to $dry_run", 1
                if $dry_run;
            my $got = eval { JSON::PP->new->decode($body // '') };
            diag "$name - invalid JSON: $@" if $@;
            is_deeply $got, $expected,
                "$name - json_body (req $repeated_req_idx)";
        }
    }

    if (defined(my $expected = $block->gunzipped_body)) {
        SKIP: {
            skip "$name - gunzipped_body - tests skipped due to $dry_run", 1
                if $dry_run;
            my $plain;
            gunzip(\$body => \$plain) or diag "$name - gunzip: $GunzipError";
            is $plain, $expected,
                "$name - gunzipped_body (req $repeated_req_idx)";
        }
    }
});

run_tests();

__DATA__

=== TEST 1: return, request and response headers
--- config
    location = /t {
        add_header X-Echo "$http_x_foo";
        return 200 "hello $arg_a\n";
    }
--- request
GET /t?a=1
--- more_headers
X-Foo: bar
--- response_headers
X-Echo: bar
Content-Type: text/plain
!X-Absent
--- response_body
hello 1
--- no_error_log
[error]
[alert]



=== TEST 2: JSON body checked by add_response_body_check
--- config
    location = /json {
        default_type application/json;
        return 200 '{"ok":true,"items":[1,2,3],"name":"sophon"}';
    }
--- request
GET /json
--- response_headers
Content-Type: application/json
--- json_body eval
{ ok => JSON::PP::true, items => [1, 2, 3], name => "sophon" }
--- no_error_log
[error]



=== TEST 3: 404 from the default root location, logged
--- config
--- request
GET /nope.html
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log eval
[qr{open\(\) "[^"]*/html/nope\.html" failed}, "No such file or directory"]



=== TEST 4: default root location serves index.html
--- config
--- request
GET /
--- response_body_like: ^<html>.*It works!.*</html>$
--- response_headers
Content-Length: 72



=== TEST 5: HEAD has headers but no body
--- config
    location = /h {
        return 200 "body that must not arrive\n";
    }
--- request
HEAD /h
--- response_headers
Content-Length: 26
--- response_body eval
""



=== TEST 6: chunked response (sub_filter drops Content-Length)
--- no_http2: it checks HTTP/1.1's chunked framing
--- config
    location /sub/ {
        alias $TEST_NGINX_SERVER_ROOT/html/;
        sub_filter_types text/plain;
        sub_filter 'world' 'nginx';
        sub_filter_once off;
    }
--- user_files
>>> hello.txt
hello world, world
>>> other.txt
unused
--- request
GET /sub/hello.txt
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
hello nginx, nginx



=== TEST 7: gzip of a static file (chunked, compressed)
--- no_http2: it checks HTTP/1.1's chunked framing
--- config
    location /gz/ {
        alias $TEST_NGINX_SERVER_ROOT/html/;
        gzip on;
        gzip_min_length 1;
        gzip_types text/plain;
    }
--- user_files eval
[["big.txt", "sophon " x 200 . "\n"]]
--- more_headers
Accept-Encoding: gzip
--- request
GET /gz/big.txt
--- response_headers
Content-Encoding: gzip
Transfer-Encoding: chunked
--- gunzipped_body eval
"sophon " x 200 . "\n"



=== TEST 8: POST body gets a Content-Length (body trimmed)
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- config
    location = /post {
        return 200 "len=$http_content_length type=$http_content_type\n";
    }
--- request
POST /post
hello world
--- more_headers
Content-Type: text/x-test
--- response_headers_like
Content-Length: \d+
Content-Type: text/pl\w+
--- response_body
len=11 type=text/x-test



=== TEST 9: several requests, arrays of expectations
--- config
    location = /a { return 200 "A\n"; }
    location = /b { return 403; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 403]
--- response_body_like eval
["^A\n\$", "403 Forbidden"]



=== TEST 10: pipelined requests on one connection
--- config
    location = /a { return 200 "A $arg_n\n"; }
--- pipelined_requests eval
["GET /a?n=1", "GET /a?n=2"]
--- error_code eval
[200, 200]
--- response_body eval
["A 1\n", "A 2\n"]



=== TEST 11: raw request sent verbatim
--- config
    location = /raw {
        return 200 "proto=$server_protocol host=$host\n";
    }
--- raw_request eval
"GET /raw HTTP/1.0\r\nHost: example.org\r\n\r\n"
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_body
proto=HTTP/1.0 host=example.org



=== TEST 12: main_config, http_config and TEST_NGINX_ variables
--- main_config
worker_rlimit_nofile 1024;
--- http_config
    map $arg_x $mapped {
        default none;
        1       one;
    }
--- config
    location = /map {
        return 200 "$mapped $server_port\n";
    }
--- request
GET /map?x=1
--- response_body
one $ServerPort



=== TEST 13: client timeout is not a failure with --- abort
--- config
    location = /t { return 200; }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 300ms
--- abort
--- ignore_response
--- no_error_log
[error]



=== TEST 14: stream cut by the server (upstream timeout mid-body)
Without --- ignore_response both harnesses fail such a response with
"no last chunk found".
--- config
    location = /slow.txt {
        root $TEST_NGINX_SERVER_ROOT/html;
        limit_rate_after 1k;
        limit_rate 1;
    }
    location = /cut {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/slow.txt;
        proxy_read_timeout 200ms;
        sub_filter_types text/plain;
        sub_filter 'x' 'y';
    }
--- user_files eval
[["slow.txt", "x" x 4096]]
--- request
GET /cut
--- ignore_response
--- error_log
upstream timed out



=== TEST 15: skip_nginx skips the block's subtests
--- config
--- request
GET /
--- response_body
never checked
--- skip_nginx: 2: < 999.0.0



=== TEST 16: shutdown_error_log is read after nginx exits
--- config
    location = /t { return 204; }
--- request
GET /t
--- error_code: 204
--- response_body eval
""
--- shutdown_error_log
(SIGQUIT) received



=== TEST 17: must_die: nginx refuses the configuration, its error log is checked
--- config
    location = /t { return 200 a b c; }
--- request
GET /t
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid number of arguments in "return" directive



=== TEST 18: a block after a must_die one starts its own nginx
--- config
    location = /t { return 200 "after"; }
--- request
GET /t
--- response_body chomp
after
