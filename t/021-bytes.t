# vi:filetype=perl

# Every document goes out as the bytes its writer wrote: keys in the
# writer's order, numbers with the writer's digits, strings with the
# writer's spelling (UTF-8 or \u escapes), whitespace and all; with_feature=0
# cuts the vector and its comma out of those bytes and changes nothing
# else.  (SophonTest::check_bytes checks the loader's fixture lines in
# every other file.)
#
# Blocks with a "docs" section first delete the events of [1200000000,
# 1200000100] and insert these documents there as a writer does (INSERT
# ... VALUES), or, with "load", through util/sophon-events-load.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use File::Temp ();

repeat_each(2);
no_shuffle();

my $MainPid = $$;
my $Range = 'ts BETWEEN 1200000000 AND 1200000100';

sub delete_docs {
    SophonTest::psql("DELETE FROM sophon_events WHERE $Range");
}

sub load_docs {
    my ($docs) = @_;
    my $file = File::Temp->new(SUFFIX => '.jsonl');

    binmode $file;
    print $file "$_\n" for @$docs;
    close $file;

    system('util/sophon-events-load', $ENV{TEST_NGINX_SOPHON_ADMIN_DB},
           $file->filename) == 0
        or die "sophon-events-load failed\n";
}

sub insert_docs {
    my ($docs) = @_;
    SophonTest::insert_events(@$docs);
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { delete_docs() };
        warn "021-bytes: cannot delete the documents: $@" if $@;
    }
}

add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->refused) {
        delete_docs();

        for my $doc (@{ $block->refused }) {
            my ($ok, undef, $err) = SophonTest::psql_script(
                "INSERT INTO sophon_events (doc) VALUES (\$d\$$doc\$d\$);\n");

            ok(!$ok && $err =~ /invalid input syntax for type json|is not a JSON object/,
               $block->name . " - refused: $doc")
                or diag($err);
        }
    }

    if (defined $block->docs) {
        delete_docs();

        if (defined $block->load) {
            load_docs($block->docs);
        } else {
            insert_docs($block->docs);
        }
    }

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    location = /bytes {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: a writer's keys, numbers and strings come back as written
--- docs eval
[q~{"timestamp":1200000001,"_id":"1200000001.5","z":1,"a":2,"common":{"score":90.50,"person_type":2,"ep_info":{"device_id":"bytes-cam"}}}~,
 q~{"_id":"1200000002.5","timestamp":1.200000002e9,"n":[1.0,1E+2,-0,0.10,1e-7,123456789012345678901234567890,3.14159265358979323846264338327950288]}~,
 q~{"_id":"1200000003.5","timestamp":1200000003,"s":["门禁 Main Gate","caf\\u00e9","café","\\ud83d\\ude00","😀","\\/","a\\"b","tab\\there"]}~]
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1200000003.5","timestamp":1200000003,"s":["门禁 Main Gate","caf\u00e9","café","\ud83d\ude00","😀","\/","a\"b","tab\there"]},{"_id":"1200000002.5","timestamp":1.200000002e9,"n":[1.0,1E+2,-0,0.10,1e-7,123456789012345678901234567890,3.14159265358979323846264338327950288]},{"timestamp":1200000001,"_id":"1200000001.5","z":1,"a":2,"common":{"score":90.50,"person_type":2,"ep_info":{"device_id":"bytes-cam"}}}],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":3,"next":null}}
--- no_error_log
[error]



=== TEST 2: whitespace and newlines inside a document stay; the filters still read it
--- docs eval
["{ \"_id\" : \"1200000004.5\" ,\n  \"timestamp\" : 1200000004 ,\n  \"common\" : { \"person_type\" : 5 , \"ep_info\" : { \"device_id\" : \"bytes-cam\" } }\n}"]
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100&userType=5&streams=bytes-cam
--- error_code: 200
--- response_body eval
"{\"data\":[{ \"_id\" : \"1200000004.5\" ,\n  \"timestamp\" : 1200000004 ,\n  \"common\" : { \"person_type\" : 5 , \"ep_info\" : { \"device_id\" : \"bytes-cam\" } }\n}],\"pagination\":{\"num_pages\":1,\"page\":0,\"per_page\":10,\"total_count\":1,\"next\":null}}"
--- no_error_log
[error]



=== TEST 3: the loader stores each line's bytes
--- docs eval
[q~{"timestamp":1200000005,"_id":"1200000005.5","n":[1.0,1E+2,-0.0,2.50],"s":"caf\\u00e9 café \\\\ \\/"}~,
 q~{"_id":"1200000006.5","timestamp":1200000006.25 ,"common":{"recognize_face_attr":{"feature":[0.10,-1E-3],"age":"30"}}}~]
--- load
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1200000006.5","timestamp":1200000006.25 ,"common":{"recognize_face_attr":{"feature":[0.10,-1E-3],"age":"30"}}},{"timestamp":1200000005,"_id":"1200000005.5","n":[1.0,1E+2,-0.0,2.50],"s":"caf\u00e9 café \\ \/"}],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":2,"next":null}}
--- no_error_log
[error]



=== TEST 4: with_feature=0 cuts the member and one comma, wherever it stands
--- docs eval
[q~{"_id":"1200000011.5","timestamp":1200000011,"common":{"recognize_face_attr":{"feature":[1,2],"age":"20"}}}~,
 q~{"_id":"1200000012.5","timestamp":1200000012,"common":{"recognize_face_attr":{"age":"20","feature":[1,2]}}}~,
 q~{"_id":"1200000013.5","timestamp":1200000013,"common":{"recognize_face_attr":{"age":"20","feature":[1,2],"box":[3]}}}~,
 q~{"_id":"1200000014.5","timestamp":1200000014,"common":{"recognize_face_attr":{"feature":[1,2]}}}~,
 q~{"_id":"1200000015.5","timestamp":1200000015,"common":{"recognize_face_attr":{ "feature" : [ 1 , 2 ] , "age" : "20" }}}~,
 q~{"_id":"1200000016.5","timestamp":1200000016,"common":{"recognize_face_attr":{"age":"20" , "feature" : [1] }}}~,
 q~{"_id":"1200000017.5","timestamp":1200000017,"common":{"recognize_face_attr":{"feature":null,"feature":[1],"age":"20","feature":{"a":[1]}}}}~,
 q~{"_id":"1200000018.5","timestamp":1200000018,"common":{"recognize_face_attr":{"fe\\u0061ture":[1],"features":[2],"Feature":[3]}}}~]
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100&with_feature=0
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1200000018.5","timestamp":1200000018,"common":{"recognize_face_attr":{"features":[2],"Feature":[3]}}},{"_id":"1200000017.5","timestamp":1200000017,"common":{"recognize_face_attr":{"age":"20"}}},{"_id":"1200000016.5","timestamp":1200000016,"common":{"recognize_face_attr":{"age":"20"  }}},{"_id":"1200000015.5","timestamp":1200000015,"common":{"recognize_face_attr":{  "age" : "20" }}},{"_id":"1200000014.5","timestamp":1200000014,"common":{"recognize_face_attr":{}}},{"_id":"1200000013.5","timestamp":1200000013,"common":{"recognize_face_attr":{"age":"20","box":[3]}}},{"_id":"1200000012.5","timestamp":1200000012,"common":{"recognize_face_attr":{"age":"20"}}},{"_id":"1200000011.5","timestamp":1200000011,"common":{"recognize_face_attr":{"age":"20"}}}],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":8,"next":null}}
--- no_error_log
[error]



=== TEST 5: with_feature=0 leaves every other "feature" alone
--- docs eval
[q~{"_id":"1200000021.5","timestamp":1200000021,"feature":[1],"video_data":{"recognize_face_attr":{"feature":[2]}},"common":{"feature":[3],"x":{"recognize_face_attr":{"feature":[4]}},"recognize_face_attr":{"box":[{"feature":[5]}],"s":"\\",\\"feature\\":[6]}{[","feature":[7]}}}~,
 q~{"_id":"1200000022.5","timestamp":1200000022,"common":{"recognize_face_attr":[{"feature":[8]}]},"s":"]}"}~,
 q~{"_id":"1200000023.5","timestamp":1200000023,"common":{"a":"\\\\","recognize_face_attr":{"b":"\\\\\\"","feature":[9]},"c":1},"common":{"recognize_face_attr":{"feature":[10],"d":2}}}~]
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100&with_feature=0
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1200000023.5","timestamp":1200000023,"common":{"a":"\\","recognize_face_attr":{"b":"\\\""},"c":1},"common":{"recognize_face_attr":{"d":2}}},{"_id":"1200000022.5","timestamp":1200000022,"common":{"recognize_face_attr":[{"feature":[8]}]},"s":"]}"},{"_id":"1200000021.5","timestamp":1200000021,"feature":[1],"video_data":{"recognize_face_attr":{"feature":[2]}},"common":{"feature":[3],"x":{"recognize_face_attr":{"feature":[4]}},"recognize_face_attr":{"box":[{"feature":[5]}],"s":"\",\"feature\":[6]}{["}}}],"pagination":{"num_pages":1,"page":0,"per_page":10,"total_count":3,"next":null}}
--- no_error_log
[error]



=== TEST 6: the same documents with their vectors are the writer's bytes
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100&per_page=1&page=2
--- error_code: 200
--- response_body chomp
{"data":[{"_id":"1200000021.5","timestamp":1200000021,"feature":[1],"video_data":{"recognize_face_attr":{"feature":[2]}},"common":{"feature":[3],"x":{"recognize_face_attr":{"feature":[4]}},"recognize_face_attr":{"box":[{"feature":[5]}],"s":"\",\"feature\":[6]}{[","feature":[7]}}}],"pagination":{"num_pages":3,"page":2,"per_page":1,"total_count":3,"next":null}}
--- no_error_log
[error]



=== TEST 7: a document that is not JSON, or not an object, is refused on insert and leaves nothing
--- refused eval
[q({"_id":"1200000031.5","timestamp":1200000031,),
 q({"_id":"1200000032.5","timestamp":1200000032}x),
 q({"_id":"1200000033.5","timestamp":1200000033,"a":01}),
 q([{"_id":"1200000034.5","timestamp":1200000034}]),
 q("text")]
--- request
GET /bytes?datetime_gte=1200000000&datetime_lte=1200000100
--- error_code: 200
--- response_body chomp
{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}
--- no_error_log
[error]
