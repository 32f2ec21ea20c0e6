# vi:filetype=perl

# The list parameters (groups, streams, userType) in every form the
# contract accepts: a JSON array (URL-encoded, or as a browser leaves it),
# comma-separated, repeated keys, "key[]=", and all of them mixed, adding
# up.  SophonTest::check_body computes each expected page from the
# request's own query string; the response_body_like lines prove that a
# block selects something (or pin the count the case is about).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

SophonTest::use_standard_location();

# Helpers for "--- request eval" (Test::Base evaluates those outside of
# main, hence the main:: prefix in the blocks).

# the $n-th (from 0) most frequent non-empty value $get gives over the
# fixtures
sub nth_common {
    my ($n, $get) = @_;
    my %count;

    for my $f (@{ SophonTest::fixtures() }) {
        my $v = $get->($f->{doc});
        $count{$v}++ if defined $v && $v ne '';
    }

    my @v = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
    die "nth_common: fewer than " . ($n + 1) . " values\n" if $n > $#v;

    return $v[$n];
}

# the $n-th most frequent group and device of the fixtures
sub group  { nth_common($_[0], sub { $_[0]{common}{group_id} }) }
sub stream { nth_common($_[0], sub { $_[0]{common}{ep_info}{device_id} }) }

# a JSON array of strings, as a client writes it
sub json_list {
    return '[' . join(',', map { JSON::PP->new->allow_nonref->encode($_) } @_)
           . ']';
}

# percent-encoded, UTF-8
sub enc {
    my ($s) = @_;
    utf8::upgrade($s);
    return SophonTest::uri($s);
}

sub get {
    return 'GET /SophonFace/api/events?' . join '&', @_;
}

# the first page of the whole fixture set, unfiltered, as a pattern over
# a body of the default 10 events
sub unfiltered_first_page {
    my $want = SophonTest::expected('');
    my $p = $want->{pagination};

    return '^\{"data":\[\{"_id":\s*"' . quotemeta($want->{events}[0]{_id})
           . '".*"_id":\s*"' . quotemeta($want->{events}[-1]{_id})
           . '".*\],"pagination":\{"num_pages":' . $p->{num_pages}
           . ',"page":0,"per_page":10,"total_count":' . $p->{total_count}
           . ',"next":"01[0-9a-f]+"\}\}$';
}

run_tests();

__DATA__

=== TEST 1: groups, a JSON array, URL-encoded
--- request eval
main::get('groups=' . main::enc(main::json_list(main::group(0), main::group(1))),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: groups, a JSON array as a browser sends it (["a","b"] with only the quotes encoded)
--- curl_options: -g
--- request eval
main::get(('groups=["' . main::group(0) . '","' . main::group(1) . '"]')
          =~ s/"/%22/gr, 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 3: groups, comma-separated
--- request eval
main::get('groups=' . main::group(0) . ',' . main::group(2), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 4: groups, comma-separated with the comma encoded
--- request eval
main::get('groups=' . main::group(0) . '%2C' . main::group(2), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 5: groups, repeated keys
--- request eval
main::get('groups=' . main::group(1), 'groups=' . main::group(3), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 6: groups[]=, repeated
--- request eval
main::get('groups[]=' . main::group(1), 'groups[]=' . main::group(3),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 7: groups%5B%5D=, the brackets encoded
--- request eval
main::get('groups%5B%5D=' . main::group(2), 'groups%5B%5D=' . main::group(4),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 8: groups, every form mixed: the items add up
--- request eval
main::get('groups=' . main::enc(main::json_list(main::group(0))),
          'groups=' . main::group(1) . ',' . main::group(2),
          'groups[]=' . main::group(3),
          'groups=' . main::group(4),
          'per_page=100', 'page=3')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 9: groups, a one-item JSON array
--- request eval
main::get('groups=' . main::enc(main::json_list(main::group(3))), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 10: groups[]=, one item
--- request eval
main::get('groups[]=' . main::group(4), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 11: groups, spaces around comma-separated items are not part of them
--- request eval
main::get('groups=+' . main::group(0) . '+,%20' . main::group(1) . '%20%20',
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 12: groups, a JSON array with spaces between its items
--- request eval
main::get('groups=' . main::enc('[ "' . main::group(0) . '" , "'
                                . main::group(1) . '" ]'), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 13: groups, a JSON array with \u escapes
--- request
GET /SophonFace/api/events?groups=%5B%22%5Cu0067-edge%22%5D&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 14: groups, a JSON array keeps a comma inside an item
--- request
GET /SophonFace/api/events?groups=%5B%22g%2Ccomma%22%5D
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100001".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 15: groups, the same text comma-separated is two other items
--- request
GET /SophonFace/api/events?groups=g,comma
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 16: groups, an item "NULL" is the text NULL
--- request
GET /SophonFace/api/events?groups=NULL
--- error_code: 200
--- response_body_like: "identity_id":\s*"91000021".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 17: groups, "NULL" in a JSON array is the text NULL too
--- request
GET /SophonFace/api/events?groups=%5B%22NULL%22%5D
--- error_code: 200
--- response_body_like: "identity_id":\s*"91000021".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 18: groups, an item with braces
--- request
GET /SophonFace/api/events?groups=%7Bbraces%7D
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100002".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 19: groups, an item given twice counts once
--- request eval
main::get('groups=' . main::group(3) . ',' . main::group(3),
          'groups[]=' . main::group(3), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 20: groups, an unknown item next to a known one
--- request
GET /SophonFace/api/events?groups=no-such-group,g-edge&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 21: groups, an empty JSON array next to a real item is that item
--- request eval
main::get('groups=%5B%5D', 'groups=' . main::group(3), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 22: groups=[] is no filter
The contract: an empty list is no filter.  Served from another location so
that SophonTest::check_body (which reads [] as "no group matches") does not
judge it; the pattern pins the unfiltered first page.
--- config
    location /events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /events?groups=%5B%5D
--- error_code: 200
--- response_body_like eval
main::unfiltered_first_page()
--- no_error_log
[error]



=== TEST 23: groups=[ ] with a space inside is no filter either
--- curl_options: -g
--- config
    location /events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /events?groups=[%20]
--- error_code: 200
--- response_body_like eval
main::unfiltered_first_page()
--- no_error_log
[error]



=== TEST 24: groups, a JSON array of objects is a 400 that names groups
--- request
GET /SophonFace/api/events?groups=%5B%7B%22id%22%3A%22g-edge%22%7D%5D
--- error_code: 400
--- response_body_like: ^\{"error":\{"code":40000,"message":"groups: [^"]+","status":"BAD_REQUEST"\}\}$
--- no_error_log
[error]



=== TEST 25: streams, a JSON array, URL-encoded
--- request eval
main::get('streams=' . main::enc(main::json_list(main::stream(0), main::stream(1))),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 26: streams, a JSON array as a browser sends it
--- curl_options: -g
--- request eval
main::get(('streams=["' . main::stream(2) . '","' . main::stream(3) . '"]')
          =~ s/"/%22/gr, 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 27: streams, comma-separated
--- request eval
main::get('streams=' . main::stream(0) . ',' . main::stream(4), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 28: streams, repeated keys
--- request eval
main::get('streams=' . main::stream(5), 'streams=' . main::stream(6),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 29: streams[]=, repeated
--- request eval
main::get('streams[]=' . main::stream(5), 'streams[]=' . main::stream(7),
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 30: streams, every form mixed: the items add up
--- request eval
main::get('streams=' . main::enc(main::json_list(main::stream(7))),
          'streams=' . main::stream(6) . ',' . main::stream(5),
          'streams[]=' . main::stream(4),
          'streams=dev-edge-2',
          'per_page=100', 'page=2')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 31: streams, a one-item JSON array
--- request eval
main::get('streams=' . main::enc(main::json_list(main::stream(7))), 'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 32: streams, spaces around comma-separated items
--- request eval
main::get('streams=%20' . main::stream(1) . '+,+' . main::stream(7) . '+',
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 33: streams, an item with a double quote and a backslash, in a JSON array
--- request eval
main::get('streams=' . main::enc(main::json_list('cam "A" \\ 1')))
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100001".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 34: streams, the same item with a double quote and a backslash, plain
--- request eval
main::get('streams=' . main::enc('cam "A" \\ 1'))
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100001".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 35: streams, a JSON array keeps the spaces of a quoted item
--- request
GET /SophonFace/api/events?streams=%5B%22%20cam-space%20%22%5D
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100002".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 36: streams, a Chinese item in a JSON array, as UTF-8 and as \u escapes
--- request eval
main::get('streams=' . main::enc(main::json_list("\x{95E8}\x{7981}-1")),
          'streams=' . main::enc('["\u95e8\u7981-1"]'))
--- error_code: 200
--- response_body_like: "identity_id":\s*"91000021".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 37: streams=[] is no filter
--- config
    location /events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /events?streams=%5B%5D
--- error_code: 200
--- response_body_like eval
main::unfiltered_first_page()
--- no_error_log
[error]



=== TEST 38: userType, a JSON array of numbers
--- request
GET /SophonFace/api/events?userType=%5B1%2C4%5D&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 39: userType, a JSON array of numbers as a browser sends it
--- curl_options: -g
--- request
GET /SophonFace/api/events?userType=[2,3]&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 40: userType, a JSON array of numeric strings
--- request
GET /SophonFace/api/events?userType=%5B%221%22%2C%224%22%5D&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 41: userType, a JSON array mixing a number and a numeric string
--- request
GET /SophonFace/api/events?userType=%5B3%2C%225%22%5D&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 42: userType, comma-separated
--- request
GET /SophonFace/api/events?userType=1,4&per_page=100&page=5
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 43: userType, repeated keys
--- request
GET /SophonFace/api/events?userType=2&userType=5&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 44: userType[]=, repeated
--- request
GET /SophonFace/api/events?userType[]=3&userType[]=5&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 45: userType, every form mixed: the items add up (all but strangers)
--- request
GET /SophonFace/api/events?userType=%5B1%5D&userType=2,3&userType[]=5&per_page=100&page=4
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 46: userType, a one-item JSON array
--- request
GET /SophonFace/api/events?userType=%5B5%5D&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 47: userType[]=, one item
--- request
GET /SophonFace/api/events?userType[]=4&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 48: userType, spaces around comma-separated items and inside a JSON array
--- request
GET /SophonFace/api/events?userType=+2+,%203%20&userType=%5B%205%20%5D&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 49: userType, all five types are every event (the one without person_type too)
--- request
GET /SophonFace/api/events?userType=1,2,3,4,5&per_page=5
--- error_code: 200
--- response_body_like eval
'"total_count":' . scalar(@{ SophonTest::fixtures() }) . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 50: userType, a list selects the event without person_type as 1
--- request
GET /SophonFace/api/events?userType=%5B1%2C2%5D&identity_id=9000006
--- error_code: 200
--- response_body_like: "identity_name":\s*"NoType Person".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 51: userType=[] is no filter
--- config
    location /events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /events?userType=%5B%5D
--- error_code: 200
--- response_body_like eval
main::unfiltered_first_page()
--- no_error_log
[error]



=== TEST 52: userType, an empty JSON array next to a real item is that item
--- request
GET /SophonFace/api/events?userType=%5B%5D&userType=3&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 53: userType, a JSON array of objects is a 400 that names userType
--- request
GET /SophonFace/api/events?userType=%5B%7B%22type%22%3A1%7D%5D
--- error_code: 400
--- response_body_like: ^\{"error":\{"code":40000,"message":"userType: [^"]+","status":"BAD_REQUEST"\}\}$
--- no_error_log
[error]



=== TEST 54: three lists in three forms at once
--- request eval
main::get('groups=' . main::enc(main::json_list(main::group(0), main::group(1))),
          'streams=' . main::stream(0) . ',' . main::stream(1) . ',' . main::stream(2),
          'userType[]=1', 'userType=5',
          'per_page=100')
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]
