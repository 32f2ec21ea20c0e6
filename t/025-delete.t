# vi:filetype=perl

# DELETE ?event_id_list=a,b,c, the box's own request, where the location
# enables it (sophon_events_delete on, sophon_events_delete_db with a role
# that may delete): 200 {"data":{"deleted":[...],"not_found":[...]}}, the
# deleted ids then the ones not found, each in the request's order and
# each once; every list form of the contract; at most
# sophon_events_max_list_items ids; no filter beside the ids.  One
# statement, one transaction: right after the answer every total is
# count(*) of the same conditions, the list no longer shows the events,
# sophon_event_deletions has a row for each; a DELETE that fails (the
# reader's role: 500) or times out (504) deletes nothing.  Off by default:
# a 405 with "Allow: GET, HEAD"; on, the 405 of other methods says
# "Allow: GET, HEAD, DELETE"; on without sophon_events_delete_db, nginx -t
# fails.
#
# These blocks delete only events of their own: blocks with "--- docs"
# first delete every event of [1300000000, 1300000100] (and the deletions
# recorded for them) and insert @Docs there, on cameras of their own
# (del-cam-a, del-cam-b); the end deletes them all again.  Never a fixture
# event: the other files compare against them.
#
# After the last answer of a block:
#   --- gone eval [ids]   which of @Docs must be gone (since the last
#                         "docs"): the table, the deletions, the totals of
#                         %Totals and the list's page are checked
#   --- after: NAME       runs main::after_NAME($block) first
#
# One repetition (repeat_each(1)): a DELETE is not idempotent.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest qw(js bytes_of csv joined insert_events);
use SophonClient qw(http_send http_pump http_request parse_http psql_rows
                    lock_row end_row_lock);
use JSON::PP ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();

my $MainPid = $$;
our $Range = 'ts BETWEEN 1300000000 AND 1300000100';

# the deleter's conninfo: the reader's with user=sophon_deleter (the test
# cluster trusts every role); nginx's configurations name it as
# $TEST_NGINX_SOPHON_DELETER_DB
{
    my $c = $ENV{TEST_NGINX_SOPHON_DB} // '';
    $c =~ s/\buser=sophon_reader\b/user=sophon_deleter/
        or die "025-delete: TEST_NGINX_SOPHON_DB has no user=sophon_reader:"
               . " run with util/run-tests\n";
    $ENV{TEST_NGINX_SOPHON_DELETER_DB} = $c;
}

my $json = JSON::PP->new->utf8->canonical;

# --------------------------------------------------------------------------
# Our events: @D holds the ids (characters); %Meta their filter fields

our (@D, %Meta, @Docs);

{
    for my $n (1 .. 40) {
        my $id = sprintf '1300000%03d.%06d', $n, 500000 + $n;
        my %m = (ts => 1300000000 + $n + 0.5,
                 cam => $n % 2 ? 'del-cam-a' : 'del-cam-b',
                 type => 1 + $n % 5,
                 group => 'del-group-' . ($n % 3),
                 name => "Del Person $n");
        $D[$n] = $id;
        $Meta{$id} = \%m;
        push @Docs, '{"_id":' . js($id) . ',"timestamp":' . $m{ts}
            . ',"common":{"identity_id":"del-' . $n . '","identity_name":'
            . js($m{name}) . ',"person_type":' . $m{type} . ',"score":'
            . (40 + $n) . ',"group_id":"' . $m{group} . '","ep_info":'
            . '{"device_id":"' . $m{cam} . '"},"recognize_face_attr":'
            . '{"age":"30","feature":[0.25,-1e-3,7]}}}';
    }

    # ids that a list form may break: 41..
    my @odd = ('NULL', 'a,b', q{q"\\x}, ' sp ', "\x{95e8}\x{7981} 1", '{x}',
               'del-' . ('z' x 252), 'del-' . ('y' x 253), '[1]', 'a b');
    my $n = 41;
    for my $id (@odd) {
        $D[$n] = $id;
        $Meta{$id} = { ts => 1300000000 + $n, cam => 'del-cam-a', type => 1,
                       group => 'del-group-odd', name => "Odd $n" };
        push @Docs, '{"_id":' . js($id) . ',"timestamp":' . (1300000000 + $n)
            . ',"common":{"identity_name":"Odd ' . $n . '","group_id":'
            . '"del-group-odd","ep_info":{"device_id":"del-cam-a"}}}';
        $n++;
    }

    die "025-delete: the ids at the limit are not 256 and 257 bytes\n"
        if length(bytes_of($D[47])) != 256 || length(bytes_of($D[48])) != 257;
}

# every event of our range, and the deletions recorded for them, away
sub delete_mine {
    my ($ok, undef, $err) = SophonTest::psql_script(
        "DELETE FROM sophon_events WHERE $Range;\n"
        . "DELETE FROM sophon_event_deletions WHERE $Range;\n");
    die "025-delete: cannot delete our events: $err\n" if !$ok;
}

sub insert_docs {
    delete_mine();
    insert_events(@Docs);
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { delete_mine() };
        warn "025-delete: cannot delete our events: $@" if $@;
    }
}

# --------------------------------------------------------------------------
# Helpers for the blocks (Test::Base evaluates "eval" sections outside of
# main: main:: prefixes there)

# the ids of these numbers, comma-separated (ids 1..40 need no encoding)
sub ids { join ',', map { $D[$_] } @_ }

# a JSON array of the ids of these numbers (or strings), URL-encoded
sub json_ids {
    my $text = js([ map { /^\d+$/ && $_ > 0 && $_ < @D ? $D[$_] : "$_" } @_ ]);
    return SophonTest::uri($text);
}

# the answer to a DELETE: the ids of these numbers (or strings)
sub answer {
    my ($deleted, $not_found) = @_;
    # a string, never a number to JSON::PP, even after a numeric test
    my $id = sub { my $x = shift; $x =~ /^\d+$/ && $x > 0 && $x < @D ? $D[$x] : "$x" };
    return $json->encode({ data => { deleted => [ map { $id->($_) } @$deleted ],
                                     not_found => [ map { $id->($_) } @$not_found ] } });
}

sub bad_request {
    my ($message) = @_;
    return '{"error":{"code":40000,"message":"' . $message
           . '","status":"BAD_REQUEST"}}';
}

# --------------------------------------------------------------------------
# The state after a block: our events, their deletions, the totals

# the list's filters and the same conditions in SQL: [query, WHERE]
our @Totals = (
    [ '', 'true' ],
    [ 'datetime_gte=1300000000&datetime_lte=1300000100', $Range ],
    [ 'datetime_gte=1300000000&datetime_lte=1300000100&streams=del-cam-a',
      "$Range AND device_id = 'del-cam-a'" ],
    [ 'streams=del-cam-b', "device_id = 'del-cam-b'" ],
    [ 'streams=del-cam-a,del-cam-b&userType=2,3',
      "device_id IN ('del-cam-a', 'del-cam-b') AND person_type IN (2, 3)" ],
    [ 'userType=4', 'person_type = 4' ],
    [ 'datetime_gte=1300000010&datetime_lte=1300000030.5&userType=1',
      'ts >= 1300000010 AND ts <= 1300000030.5 AND person_type = 1' ],
    [ 'groups=del-group-1&streams=del-cam-a',
      "group_id = 'del-group-1' AND device_id = 'del-cam-a'" ],
    [ 'name=Del%20Person&datetime_gte=1300000000',
      "identity_name ILIKE '%Del Person%' AND ts >= 1300000000" ],
);

sub check_state {
    my ($name, $gone) = @_;
    my %gone = map { $_ => 1 } @$gone;
    my @kept = grep { !$gone{$_} } @D[1 .. $#D];

    my $have = [ map { $_->[0] } @{ psql_rows(
        "SELECT id FROM sophon_events WHERE $Range ORDER BY id") } ];
    is_deeply($have, [ sort @{[ map { bytes_of($_) } @kept ]} ],
              "$name - our events: " . @$gone . " gone, " . @kept
              . " kept");

    my $del = psql_rows(
        "SELECT id, device_id, person_type, ts FROM sophon_event_deletions"
        . " WHERE $Range ORDER BY id");
    is_deeply([ map { join '|', @$_ } @$del ],
              [ sort map { join '|', bytes_of($_), $Meta{$_}{cam},
                                     $Meta{$_}{type}, $Meta{$_}{ts} } @$gone ],
              "$name - sophon_event_deletions: a row for each deleted"
              . " event (its id, camera, userType, time), none other");

    # the list's page of our range: what is kept, newest first
    my $r = http_request('datetime_gte=1300000000&datetime_lte=1300000100'
                         . '&per_page=1000&with_feature=0',
                         path => '/ro/events');
    my $page = eval { $json->decode($r->{body}) } || {};
    is_deeply([ map { bytes_of($_->{_id}) } @{ $page->{data} || [] } ],
              [ map { bytes_of($_) }
                sort { $Meta{$b}{ts} <=> $Meta{$a}{ts} } @kept ],
              "$name - the list shows the kept events, and none gone");

    check_totals($name);
}

# every total of @Totals is count(*) of the same conditions, now
sub check_totals {
    my ($name) = @_;
    my @bad;

    for my $t (@Totals) {
        my ($qs, $where) = @$t;
        my $r = http_request("per_page=1&with_feature=0"
                             . ($qs ne '' ? "&$qs" : ''),
                             path => '/ro/events');
        my $got = eval { $json->decode($r->{body})->{pagination}{total_count} };
        my $want = psql_rows("SELECT count(*) FROM sophon_events"
                             . " WHERE $where")->[0][0];
        push @bad, "$qs: total_count " . ($got // "none (status "
                   . ($r->{status} // '-') . ")") . ", count(*) $want"
            if !defined $got || $got != $want;
    }

    ok(!@bad, "$name - every total is count(*) of its conditions right after"
              . " (" . @Totals . " filter sets)") or diag(join "\n", @bad);
}

# --------------------------------------------------------------------------
# After a block's last answer

add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep, $dry_run) = @_;
    return if $dry_run;

    local $_;

    my $name = $block->name;
    my $reqs = $block->pipelined_requests
               // (ref $block->request ? $block->request : [ $block->request ]);
    my $req = $reqs->[$req_idx] // '';

    if (defined $body && $body ne '' && $req !~ /^HEAD /) {
        ok(eval { $json->decode($body); 1 },
           "$name - the body is valid JSON (req $req_idx)") or diag($@);
    }

    return if $req_idx != $#$reqs || $rep != 0;

    if (defined(my $after = $block->after)) {
        $after =~ s/^\s+|\s+$//g;
        my $code = main->can("after_$after") or die "no after_$after\n";
        my $ok = eval { $code->($block); 1 };
        fail("$name - after_$after ran to its end: $@") if !$ok;
    }

    check_state($name, $block->gone) if defined $block->gone;
});

our $Config = <<'_EOC_';
    # the box's request: DELETE at the list's own URI
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_SOPHON_DELETER_DB";
    }

    # a prefix location, and a list of 3 ids at most
    location /pdel/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_SOPHON_DELETER_DB";
        sophon_events_max_list_items 3;
    }

    # the reader's list, for the totals
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    insert_docs() if defined $block->docs;
    lock_row($block->lock_row, 4) if defined $block->lock_row;

    if (!defined $block->config) {
        $block->set_value("config", $Config);
    }
});

# --------------------------------------------------------------------------
# Scenarios

# four DELETEs at once, over overlapping ids: each id is deleted by one of
# them, and each answers every id of its own once
sub after_race {
    my ($block) = @_;
    my $name = $block->name;
    my @sets = map { my $k = $_; [ map { $_ > 40 ? "nope-$_" : $D[$_] }
                                   reverse($k * 9 + 1 .. $k * 9 + 15) ] }
               0 .. 3;

    # all sent before any is read
    my @c = map { http_send('event_id_list=' . join(',', @$_),
                            method => 'DELETE')
                  or die "connect: $!\n" } @sets;
    http_pump(\@c, 30);

    my (%deleted_by, @bad);
    for my $i (0 .. $#sets) {
        push @bad, "request $i: no end in 30 s" if !$c[$i]{eof};
        my $r = parse_http($c[$i]{buf});
        my $d = eval { $json->decode($r->{body}) };

        if (($r->{status} // 0) != 200 || !$d) {
            push @bad, "request $i: status " . ($r->{status} // '-') . ": "
                       . substr($r->{body} // '', 0, 200);
            next;
        }

        my @del = @{ $d->{data}{deleted} };
        my @nf = @{ $d->{data}{not_found} };
        my %pos;
        @pos{ @{ $sets[$i] } } = 0 .. $#{ $sets[$i] };

        push @bad, "request $i: answers " . join(',', sort @del, @nf)
                   . ", asked " . join(',', sort @{ $sets[$i] })
            if join(',', sort @del, @nf) ne join(',', sort @{ $sets[$i] });

        for my $list (\@del, \@nf) {
            my @p = map { $pos{$_} // -1 } @$list;
            push @bad, "request $i: not in the request's order: @$list"
                if join(',', @p) ne join(',', sort { $a <=> $b } @p);
        }

        push @{ $deleted_by{$_} }, $i for @del;
    }

    my @all = grep { !/^nope-/ } map { @$_ } @sets;
    my %uniq = map { $_ => 1 } @all;

    for my $id (sort keys %uniq) {
        my $n = @{ $deleted_by{$id} || [] };
        push @bad, "$id deleted by $n requests" if $n != 1;
    }

    ok(!@bad, "$name - four DELETEs at once: each id deleted by exactly one,"
              . " each answer whole and in its order") or diag(join "\n", @bad);

    check_state($name, [ sort keys %uniq ]);
}

# A row of ours locked by another transaction ("--- lock_row eval ID",
# SophonClient's lock_row, for 4 s): the DELETE waits for it past
# sophon_events_query_timeout (504), and then, when the lock is gone,
# nothing of it may have happened
sub after_locked {
    my ($block) = @_;
    my $name = $block->name;

    # the lock goes at its end; a DELETE still waiting would then run
    my $status = end_row_lock(15);
    ok(defined $status && $status ne 'killed',
       "$name - the locker ended on its own");
    Time::HiRes::sleep(1.5);

    my $left = psql_rows(
        "SELECT count(*) FROM pg_stat_activity WHERE usename ="
        . " 'sophon_deleter' AND state <> 'idle'")->[0][0];
    is($left, 0, "$name - no DELETE of the deleter's is left running");
}

END {
    if ($$ == $MainPid) {
        local $?;
        end_row_lock(10);
    }
}

run_tests();

__DATA__

=== TEST 1: DELETE is off by default: a 405 with Allow: GET, HEAD, and nothing deleted
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . main::ids(1, 2, 3),
 "DELETE /SophonFace/api/events",
 "DELETE /ro/events?event_id_list=" . main::ids(4)]
--- error_code eval
[405, 405, 405]
--- response_headers eval
[("Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8") x 3]
--- response_body eval
[('{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}') x 3]
--- gone eval
[]
--- no_error_log
[error]



=== TEST 2: "sophon_events_delete on" without sophon_events_delete_db fails nginx -t
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
    }
--- request
GET /SophonFace/api/events
--- must_die
--- error_log
[emerg]
"sophon_events_delete on" needs "sophon_events_delete_db"



=== TEST 3: ... also when it is on for the whole server
--- config
    sophon_events_delete on;

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request
GET /SophonFace/api/events
--- must_die
--- error_log
[emerg]
"sophon_events_delete on" needs "sophon_events_delete_db"



=== TEST 4: delete on: other methods are a 405 naming DELETE; GET and HEAD are the list and delete nothing
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
["POST /SophonFace/api/events?event_id_list=" . main::ids(1) . "\n{}",
 "PUT /SophonFace/api/events?event_id_list=" . main::ids(1) . "\n{}",
 "PATCH /SophonFace/api/events?event_id_list=" . main::ids(1) . "\n{}",
 "POST /pdel/events\n{}",
 "GET /SophonFace/api/events?event_id_list=" . main::ids(1, 2) . "&datetime_gte=1300000000&datetime_lte=1300000100&per_page=1",
 "HEAD /SophonFace/api/events?event_id_list=" . main::ids(1, 2),
 "DELETE /pdel/events/" . main::ids(1) . "?event_id_list=" . main::ids(1),
 "DELETE /pdel/events/" . main::ids(1)]
--- error_code eval
[405, 405, 405, 405, 200, 200, 405, 405]
--- response_headers eval
[("Allow: GET, HEAD, DELETE\nContent-Type: application/json; charset=utf-8") x 4,
 "Content-Type: application/json; charset=utf-8",
 "Content-Type: application/json; charset=utf-8",
 ("Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8") x 2]
--- response_body_like eval
[(qr/^\{"error":\{"code":40500,"message":"method: only GET, HEAD and DELETE are allowed","status":"METHOD_NOT_ALLOWED"\}\}$/) x 4,
 qr/^\{"data":\[\{"_id":"a b".*"total_count":50,/s,
 qr/^$/,
 (qr/^\{"error":\{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"\}\}$/) x 2]
--- gone eval
[]
--- no_error_log
[error]



=== TEST 5: the box's request: the deleted in the request's order, then the ones not found, each once
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::csv($main::D[7], "nope-1", $main::D[3], $main::D[7], "nope-2", $main::D[12], "nope-1", $main::D[3])
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body eval
main::answer([7, 3, 12], ["nope-1", "nope-2"])
--- gone eval
[@main::D[7, 3, 12]]
--- no_error_log
[error]



=== TEST 6: the same ids again are all not found; the totals stay
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . main::ids(12, 3, 7),
 "DELETE /SophonFace/api/events?event_id_list=" . main::ids(12) . ",nope-3," . main::ids(13)]
--- error_code eval
[200, 200]
--- response_body eval
[main::answer([], [12, 3, 7]), main::answer([13], [12, "nope-3"])]
--- gone eval
[@main::D[7, 3, 12, 13]]
--- no_error_log
[error]



=== TEST 7: every list form of the contract, and all of them mixed; a JSON number is its text
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . $main::D[4] . "&event_id_list=" . $main::D[5],
 "DELETE /SophonFace/api/events?event_id_list[]=" . $main::D[6] . "&event_id_list[]=" . main::ids(7) . ",nope",
 "DELETE /SophonFace/api/events?event_id_list%5B%5D=" . $main::D[20],
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(8, 9, "nope"),
 "DELETE /SophonFace/api/events?event_id_list=[\"" . $main::D[10] . "\",\"" . $main::D[11] . "\"]",
 "DELETE /SophonFace/api/events?event_id_list=" . $main::D[12] . "&event_id_list[]=" . $main::D[13] . "&event_id_list=" . main::json_ids(14, 12) . "&_=1607430334123",
 "DELETE /SophonFace/api/events?event_id_list=" . $main::D[15] . ",%20" . $main::D[16] . "%20,+" . $main::D[17],
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(18) . "&event_id_list=" . main::json_ids(19),
 "DELETE /SophonFace/api/events?event_id_list=%5B" . $main::D[21] . "," . $main::D[22] . "0,1300000023%5D"]
--- error_code eval
[(200) x 9]
--- response_body eval
[main::answer([4, 5], []),
 main::answer([6, 7], ["nope"]),
 main::answer([20], []),
 main::answer([8, 9], ["nope"]),
 main::answer([10, 11], []),
 main::answer([12, 13, 14], []),
 main::answer([15, 16, 17], []),
 main::answer([18, 19], []),
 main::answer([21], [$main::D[22] . "0", "1300000023"])]
--- gone eval
[@main::D[4 .. 21]]
--- no_error_log
[error]



=== TEST 8: ids a list form could break: NULL, commas, quotes, spaces, UTF-8, brackets, 256 bytes
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(41, 42, 44),
 "DELETE /SophonFace/api/events?event_id_list=" . main::csv(map { SophonTest::uri($main::D[$_]) } 43, 45, 46, 47),
 "DELETE /SophonFace/api/events?event_id_list=" . SophonTest::uri($main::D[48]),
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(49, 50, "null", "a", "b", " sp"),
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(48) . "&event_id_list=" . main::ids(1)]
--- error_code eval
[200, 200, 400, 200, 400]
--- response_body eval
[main::answer([41, 42, 44], []),
 main::answer([43, 45, 46, 47], []),
 main::bad_request("event_id_list: has an item longer than 256 bytes"),
 main::answer([49, 50], ["null", "a", "b", " sp"]),
 main::bad_request("event_id_list: has an item longer than 256 bytes")]
--- gone eval
[@main::D[41 .. 47, 49, 50]]
--- no_error_log
[error]



=== TEST 9: no ids, a filter beside the ids, a malformed list: 400, nothing deleted
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
my $ids = main::ids(1, 2);
["DELETE /SophonFace/api/events",
 "DELETE /SophonFace/api/events?event_id_list=",
 "DELETE /SophonFace/api/events?event_id_list=%5B%5D",
 "DELETE /SophonFace/api/events?event_id_list=%20&per_page=5",
 (map { "DELETE /SophonFace/api/events?event_id_list=$ids&$_" }
      "name=Del", "datetime_gte=1300000000", "datetime_lte=1300000100",
      "identity_id=del-1", "score_min=0", "score_max=100", "userType=1,2,3,4,5",
      "room=x", "groups=del-group-1", "streams=del-cam-a",
      "streams[]=del-cam-a"),
 "DELETE /SophonFace/api/events?streams=del-cam-a&event_id_list=$ids",
 "DELETE /SophonFace/api/events?event_id_list=$ids,%FF",
 "DELETE /SophonFace/api/events?event_id_list=%5B%22$ids%22",
 "DELETE /SophonFace/api/events?event_id_list=" . main::ids(1) . ",," . main::ids(2),
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(1) =~ s/%5B/%5Bnull,/r,
 "DELETE /SophonFace/api/events?event_id_list=%5B" . main::json_ids(1, 2) . "%5D",
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(1) =~ s/%5D$/,%7B%22a%22:1%7D%5D/r,
 "DELETE /SophonFace/api/events?event_id_list=$ids&per_page=abc",
 "DELETE /SophonFace/api/events?event_id_list=$ids&userType=9"]
--- error_code eval
[(400) x 24]
--- response_body_like eval
[(qr/^\Q{"error":{"code":40000,"message":"event_id_list: is required","status":"BAD_REQUEST"}}\E$/) x 4,
 (qr/^\Q{"error":{"code":40000,"message":"event_id_list: DELETE takes no filter, only the ids","status":"BAD_REQUEST"}}\E$/) x 12,
 (qr/^\{"error":\{"code":40000,"message":"event_id_list: [^"]+","status":"BAD_REQUEST"\}\}$/) x 6,
 qr/^\{"error":\{"code":40000,"message":"per_page: [^"]+","status":"BAD_REQUEST"\}\}$/,
 qr/^\{"error":\{"code":40000,"message":"userType: [^"]+","status":"BAD_REQUEST"\}\}$/]
--- gone eval
[]
--- no_error_log
[error]



=== TEST 10: an empty filter is no filter; unknown parameters are ignored
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . main::ids(1) . "&name=&streams=&_=1607430334123&foo%ZZ=bar"]
--- error_code: 200
--- response_body eval
main::answer([1], [])
--- gone eval
[$main::D[1]]
--- no_error_log
[error]



=== TEST 11: sophon_events_max_list_items (100 by default): 99 and 100 ids are deleted, 101 refused whole
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
my @nope = map { "nope-$_" } 1 .. 100;
["DELETE /SophonFace/api/events?event_id_list=" . main::csv(main::ids(1 .. 3), @nope[0 .. 95]),
 "DELETE /SophonFace/api/events?event_id_list=" . main::csv(main::ids(4 .. 7), @nope[0 .. 95]),
 "DELETE /SophonFace/api/events?event_id_list=" . main::csv(main::ids(8 .. 12), @nope[0 .. 95]),
 "DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(8 .. 12, @nope[0 .. 95]),
 "DELETE /SophonFace/api/events?event_id_list=" . main::joined('&event_id_list=', @main::D[8 .. 12], @nope[0 .. 95])]
--- error_code eval
[200, 200, 400, 400, 400]
--- response_body eval
[main::answer([1 .. 3], [map { "nope-$_" } 1 .. 96]),
 main::answer([4 .. 7], [map { "nope-$_" } 1 .. 96]),
 (main::bad_request("event_id_list: has more than 100 items")) x 3]
--- gone eval
[@main::D[1 .. 7]]
--- no_error_log
[error]



=== TEST 12: sophon_events_max_list_items 3: 3 ids are deleted, 4 refused; "<location>/" is the list's URI, "<location>/<_id>" still one event
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
["DELETE /pdel/events?event_id_list=" . main::ids(1, 2, 3),
 "DELETE /pdel/events?event_id_list=" . main::ids(4, 5, 6) . ",nope",
 "DELETE /pdel/events?event_id_list=" . main::ids(4, 5) . "&event_id_list[]=" . main::ids(6) . "&event_id_list=" . main::json_ids(7),
 "DELETE /pdel/events/?event_id_list=" . main::ids(8, 9, 10),
 "DELETE /pdel/events?event_id_list=" . main::ids(11) . ",nope-1,nope-2",
 "DELETE /pdel/eventsX?event_id_list=" . main::ids(12),
 "GET /pdel/events/" . main::ids(12) . "?with_feature=0",
 "HEAD /pdel/events/" . main::ids(12)]
--- error_code eval
[200, 400, 400, 200, 200, 404, 200, 200]
--- response_body eval
[main::answer([1, 2, 3], []),
 (main::bad_request("event_id_list: has more than 3 items")) x 2,
 main::answer([8, 9, 10], []),
 main::answer([11], ["nope-1", "nope-2"]),
 '{"error":{"code":40400,"message":"no such endpoint","status":"NOT_FOUND"}}',
 '{"data":' . $main::Docs[11] =~ s/,"feature":\[[^\]]*\]//r . '}',
 ""]
--- gone eval
[@main::D[1, 2, 3, 8, 9, 10, 11]]
--- no_error_log
[error]



=== TEST 13: a large DELETE over both cameras and every userType: every total exact right after
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::ids(grep { $_ % 3 } 1 .. 40) . "," . SophonTest::uri($main::D[45])
--- error_code: 200
--- response_body eval
main::answer([(grep { $_ % 3 } 1 .. 40), 45], [])
--- gone eval
[@main::D[(grep { $_ % 3 } 1 .. 40), 45]]
--- no_error_log
[error]



=== TEST 14: the reader's role cannot delete: 500, and nothing is deleted
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_SOPHON_DB";
    }
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::ids(1, 2, 3)
--- error_code: 500
--- response_body_like eval
qr/^\{"error":\{"code":50000,"message":"[^"]+","status":"INTERNAL_ERROR"\}\}$/
--- gone eval
[]
--- error_log
sophon_events: the database answered



=== TEST 15: sophon_events_delete_db and sophon_events_delete inherited from the server, and turned off in a location
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- config
    sophon_events_delete_db "$TEST_NGINX_SOPHON_DELETER_DB";
    sophon_events_delete on;

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
    location = /off/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete off;
    }
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete off;
    }
--- request eval
["DELETE /SophonFace/api/events?event_id_list=" . main::ids(1, 2),
 "DELETE /off/events?event_id_list=" . main::ids(3),
 "POST /off/events\n{}"]
--- error_code eval
[200, 405, 405]
--- response_headers eval
["Content-Type: application/json; charset=utf-8",
 ("Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8") x 2]
--- response_body eval
[main::answer([1, 2], []),
 ('{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}') x 2]
--- gone eval
[@main::D[1, 2]]
--- no_error_log
[error]



=== TEST 16: four DELETEs at once over the same ids: each id is deleted once
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- request
GET /ro/events?datetime_gte=1300000000&datetime_lte=1300000100&per_page=1
--- error_code: 200
--- after: race
--- no_error_log
[error]



=== TEST 17: a DELETE that waits for a locked row past sophon_events_query_timeout is a 504 and deletes nothing
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_SOPHON_DELETER_DB";
        sophon_events_query_timeout 1s;
    }
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- lock_row eval
$main::D[20]
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::ids(1 .. 19, 20, 21 .. 40)
--- error_code: 504
--- response_body_like eval
qr/^\{"error":\{"code":50400,"message":"[^"]+","status":"GATEWAY_TIMEOUT"\}\}$/
--- timeout: 10
--- after: locked
--- gone eval
[]
--- error_log
the database did not answer in time



=== TEST 18: ... and the same DELETE once the lock is gone deletes them all
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::ids(1 .. 40)
--- error_code: 200
--- response_body eval
main::answer([1 .. 40], [])
--- gone eval
[@main::D[1 .. 40]]
--- no_error_log
[error]



=== TEST 19: a DELETE with a request body: the body is read and dropped, the connection goes on
--- docs
--- pipelined_requests eval
["DELETE /SophonFace/api/events?event_id_list=" . main::ids(1) . "\n{\"event_id_list\":[\"" . $main::D[2] . "\"]}",
 "DELETE /SophonFace/api/events?event_id_list=" . main::ids(3),
 "GET /ro/events?datetime_gte=1300000000&datetime_lte=1300000100&per_page=1"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\Q${\ main::answer([1], [])}\E$/,
 qr/^\Q${\ main::answer([3], [])}\E$/,
 qr/"total_count":48,/]
--- gone eval
[@main::D[1, 3]]
--- no_error_log
[error]



=== TEST 20: a long answer through small buffers: 100 ids of 256 bytes
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- docs
--- config
    # a request line of 100 ids of 256 bytes, JSON and percent-encoded
    large_client_header_buffers 4 64k;

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_delete on;
        sophon_events_delete_db "$TEST_NGINX_SOPHON_DELETER_DB";
        sophon_events_buffers 2 256;
    }
    location = /ro/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
"DELETE /SophonFace/api/events?event_id_list=" . main::json_ids(map({ sprintf('nope-%03d-', $_) . ('n' x 247) } 1 .. 49), 47, map({ sprintf('nope-%03d-', $_) . ('n' x 247) } 50 .. 98), 1)
--- error_code: 200
--- response_body eval
main::answer([47, 1], [map { sprintf('nope-%03d-', $_) . ('n' x 247) } 1 .. 98])
--- gone eval
[@main::D[47, 1]]
--- no_error_log
[error]
