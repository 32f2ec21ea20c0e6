# vi:filetype=perl

# with_feature=0 leaves common.recognize_face_attr.feature out of every
# event, and changes nothing else: SophonTest::check_body computes each
# expected page with the vector removed, over every shape of statement (no
# filter, the counted filters, the filters whose rows are counted, pages
# read from either end).  The last blocks insert documents whose
# recognize_face_attr is not an object, in a time range of their own, and
# delete them at the end.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

SophonTest::use_standard_location();

my $MainPid = $$;

# documents of odd shapes: only an object loses its "feature"
our @Odd = (
    '{"_id":"1100000001.000001","timestamp":1100000001,"common":{"recognize_face_attr":["feature",[1,2]]}}',
    '{"_id":"1100000002.000001","timestamp":1100000002,"common":{"recognize_face_attr":"feature"}}',
    '{"_id":"1100000003.000001","timestamp":1100000003,"common":{"score":90}}',
    '{"_id":"1100000004.000001","timestamp":1100000004,"common":"feature"}',
    '{"_id":"1100000005.000001","timestamp":1100000005,"common":{"recognize_face_attr":{"feature":null}}}',
    '{"_id":"1100000006.000001","timestamp":1100000006,"common":{"recognize_face_attr":{"age":"20","box":[1,2],"feature":[0.5,1e-7,-3]}}}',
);

sub delete_odd {
    SophonTest::psql("DELETE FROM sophon_events"
                     . " WHERE ts BETWEEN 1100000000 AND 1100000100");
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { delete_odd() };
        warn "013-feature: cannot delete the odd documents: $@" if $@;
    }
}

add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->insert_odd) {
        delete_odd();
        SophonTest::psql("INSERT INTO sophon_events (doc) VALUES "
                         . join ', ', map { "('$_')" } @Odd);
    }
});

# the busiest camera of the fixtures, for the counted filters
sub busiest_stream {
    my %n;
    $n{ $_->{doc}{common}{ep_info}{device_id} // '' }++
        for @{ SophonTest::fixtures() };
    delete $n{''};
    my @s = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    return $s[0];
}

run_tests();

__DATA__

=== TEST 1: with_feature=0: the page without the vectors
--- request
GET /SophonFace/api/events?with_feature=0
--- error_code: 200
--- response_body_unlike: "feature"
--- no_error_log
[error]



=== TEST 2: with_feature=false, =1, =true and empty: the contract's spellings
--- request eval
["GET /SophonFace/api/events?with_feature=false&page=3",
 "GET /SophonFace/api/events?with_feature=1&page=3",
 "GET /SophonFace/api/events?with_feature=true&page=3",
 "GET /SophonFace/api/events?with_feature=&page=3",
 "GET /SophonFace/api/events?with_feature=%30&page=3"]
--- error_code eval
[(200) x 5]
--- response_body_like eval
[qr/^(?!.*"feature").*"total_count"/s, (qr/"feature":\[/) x 3,
 qr/^(?!.*"feature").*"total_count"/s]
--- no_error_log
[error]



=== TEST 3: the vector is most of every event
--- request eval
["GET /SophonFace/api/events?per_page=100",
 "GET /SophonFace/api/events?per_page=100&with_feature=0"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^(?:.{60000}){10}/s, qr/^(?=.{50000})(?!(?:.{50000}){5})/s]
--- no_error_log
[error]



=== TEST 4: with the counted filters, first and last pages
--- request eval
my $s = main::busiest_stream();
["GET /SophonFace/api/events?with_feature=0&streams=$s&userType=1,4",
 "GET /SophonFace/api/events?with_feature=0&streams=$s&datetime_gte=1605000000",
 "GET /SophonFace/api/events?with_feature=0&per_page=7&page=210",
 "GET /SophonFace/api/events?with_feature=0&per_page=7&page=216"]
--- error_code eval
[(200) x 4]
--- no_error_log
[error]



=== TEST 5: with the filters whose rows are counted, and top_k
--- request eval
["GET /SophonFace/api/events?with_feature=0&name=a&per_page=30&page=2",
 "GET /SophonFace/api/events?with_feature=0&score_min=90&top_k=50&page=4",
 "GET /SophonFace/api/events?with_feature=0&per_page=1000"]
--- error_code eval
[(200) x 3]
--- no_error_log
[error]



=== TEST 6: anything else is a 400 that names the parameter
--- request eval
["GET /SophonFace/api/events?with_feature=2",
 "GET /SophonFace/api/events?with_feature=yes",
 "GET /SophonFace/api/events?with_feature=TRUE",
 "GET /SophonFace/api/events?with_feature=00",
 "GET /SophonFace/api/events?with_feature=%200",
 "GET /SophonFace/api/events?with_feature=0%27%20OR%20%271%27=%271",
 "GET /SophonFace/api/events?with_feature=0&with_feature=0",
 "GET /SophonFace/api/events?with_feature=" . "1" x 4096]
--- error_code eval
[(400) x 8]
--- response_body_like eval
[(qr/^\{"error":\{"code":40000,"message":"with_feature: must be 1, 0, true or false","status":"BAD_REQUEST"\}\}$/) x 6,
 qr/^\{"error":\{"code":40000,"message":"with_feature: is given more than once","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"with_feature: is longer than 256 bytes","status":"BAD_REQUEST"\}\}$/]
--- no_error_log
[error]



=== TEST 7: a recognize_face_attr that is not an object stays as it is
--- insert_odd
--- config
    location = /odd {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /odd?datetime_gte=1100000000&datetime_lte=1100000100&with_feature=0
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1100000006.000001","timestamp":1100000006,"common":{"recognize_face_attr":{"age":"20","box":[1,2]}}},{"_id":"1100000005.000001","timestamp":1100000005,"common":{"recognize_face_attr":{}}},{"_id":"1100000004.000001","timestamp":1100000004,"common":"feature"},{"_id":"1100000003.000001","timestamp":1100000003,"common":{"score":90}},{"_id":"1100000002.000001","timestamp":1100000002,"common":{"recognize_face_attr":"feature"}},{"_id":"1100000001.000001","timestamp":1100000001,"common":{"recognize_face_attr":["feature",[1,2]]}}],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":6,"next":null}}
--- no_error_log
[error]



=== TEST 8: the same documents with their vectors, as they were written
--- config
    location = /odd {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /odd?datetime_gte=1100000000&datetime_lte=1100000100&with_feature=1&per_page=2
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1100000006.000001","timestamp":1100000006,"common":{"recognize_face_attr":{"age":"20","box":[1,2],"feature":[0.5,1e-7,-3]}}},{"_id":"1100000005.000001","timestamp":1100000005,"common":{"recognize_face_attr":{"feature":null}}}],"pagination":{"num_pages":3,"page":0,"per_page":2,"total_count":6,"next":"01d73bdf49000000010a31313030303030303035313130303030303030352e303030303031"}}
--- no_error_log
[error]
