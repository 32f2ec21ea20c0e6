# vi:filetype=perl

# Paging: per_page, page and top_k, the pagination block, and the order
# that keeps pages from overlapping or skipping (timestamp desc, _id desc).
#
# SophonTest::check_body checks every 200 of /SophonFace/api/events against
# the page the fixtures give for the request's own query string (the
# pagination block, the ids in order, each document).  The blocks below add
# what that check cannot see: the boundaries are computed here from the
# fixtures (never hard-coded counts: the fixture files grow), and locations
# with a changed default per_page are checked with page_re(), since
# check_body assumes the default of 10.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

SophonTest::use_standard_location();

our $Api = '/SophonFace/api/events';

# The "pagination" object the fixtures give for a query string, as the
# module writes it (key order of the contract, no spaces), anchored at the
# end of the body.
sub pagination_re {
    my ($qs) = @_;
    my $p = SophonTest::expected($qs)->{pagination};

    return sprintf '"pagination":\{"num_pages":%d,"page":%d,"per_page":%d,'
                   . '"total_count":%d,"next":(?:null|"[0-9a-f]+")\}\}$',
                   @$p{qw(num_pages page per_page total_count)};
}

# The whole body the fixtures give for a query string: the events' ids in
# order, no other event ("_id" occurs once per event document), then the
# pagination.  For small pages only (a lazy match per event).
sub page_re {
    my ($qs) = @_;
    my $want = SophonTest::expected($qs);

    my @ids = map { '\{\s*"_id"\s*:\s*"' . quotemeta($_->{_id}) . '"' }
              @{ $want->{events} };

    my $data = @ids
             ? join('.*?', @ids) . '(?:(?!"_id"\s*:).)*'
             : '';

    return '^\{"data":\[' . $data . '\],' . pagination_re($qs);
}

# The exact body of a page with no events.
sub empty_body {
    my ($qs) = @_;
    my $p = SophonTest::expected($qs)->{pagination};

    die "empty_body($qs): the fixtures give events\n"
        if @{ SophonTest::expected($qs)->{events} };

    return sprintf '{"data":[],"pagination":{"num_pages":%d,"page":%d,'
                   . '"per_page":%d,"total_count":%d,"next":null}}',
                   @$p{qw(num_pages page per_page total_count)};
}

# The number of events a query string matches (before paging).
sub matches {
    my ($qs) = @_;
    return SophonTest::expected("$qs&per_page=1")->{pagination}{total_count};
}

# The last page of a query string at a page size: ceil(total/per_page) - 1.
sub last_page {
    my ($qs, $per_page) = @_;
    my $n = matches($qs);
    return $n ? int(($n + $per_page - 1) / $per_page) - 1 : 0;
}

# The fixtures change as the generator grows: the blocks below find their
# cases in them rather than naming counts, cameras or timestamps.

# The events grouped by their timestamp's text as stored, biggest group
# first (then the newest): ([text, [events]], ...) for groups of 2 or more.
# the identity with the most fixture events
sub busiest_identity {
    my %n;
    $n{ $_->{doc}{common}{identity_id} // '' }++
        for @{ SophonTest::fixtures() };
    delete $n{''};
    my @s = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    return $s[0];
}

# every page of the filter sets whose totals the counts per identity give:
# from both ends (the second half is read oldest first), with top_k, and
# one page past the end
sub identity_walks {
    my $id = busiest_identity();
    my @walks = (["name=a", 9], ["name=A&top_k=120", 50],
                 ["identity_id=$id", 2], ["identity_id=$id&name=a", 3],
                 ["identity_id=$id&top_k=5", 2]);

    return map { my ($qs, $pp) = @$_;
                 map { "$qs&per_page=$pp&page=$_" }
                     0 .. last_page($qs, $pp) + 1 } @walks;
}

sub ties {
    my %by;
    my @order;

    for my $e (@{ SophonTest::fixtures() }) {
        my ($ts) = $e->{line} =~ /"timestamp"\s*:\s*([-+0-9.eE]+)/
            or next;
        push @order, $ts if !$by{$ts};
        push @{ $by{$ts} }, $e;
    }

    my %rank = map { $order[$_] => $_ } 0 .. $#order;

    return map { [ $_, $by{$_} ] }
           sort { @{ $by{$b} } <=> @{ $by{$a} } || $rank{$a} <=> $rank{$b} }
           grep { @{ $by{$_} } > 1 } @order;
}

# A datetime window that holds exactly the biggest group of events with one
# timestamp.
sub tie_query {
    my ($tie) = ties() or die "no two fixture events share a timestamp\n";
    my $ts = $tie->[0];
    return "datetime_gte=$ts&datetime_lte=$ts";
}

# "streams=<camera>" for the camera with the fewest events (at least 30)
# among those that hold two events with one timestamp: a walk of a few
# pages that crosses ties.
sub walk_query {
    my %count;
    $count{ $_->{doc}{common}{ep_info}{device_id} }++
        for @{ SophonTest::fixtures() };

    my %tied;
    for my $tie (ties()) {
        my %n;
        $n{ $_->{doc}{common}{ep_info}{device_id} }++ for @{ $tie->[1] };
        $tied{$_} = 1 for grep { $n{$_} > 1 } keys %n;
    }

    my ($camera) = sort { $count{$a} <=> $count{$b} || $a cmp $b }
                   grep { $count{$_} >= 30 } keys %tied;

    die "no camera with 30 events and a tie in the fixtures\n"
        if !defined $camera;

    return "streams=" . SophonTest::uri($camera);
}

run_tests();

__DATA__

=== TEST 1: per_page=1: the newest event alone, one page per event
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like eval
main::page_re("per_page=1")
--- no_error_log
[error]



=== TEST 2: per_page=1 deeper in: page n is the (n+1)th newest event
--- request eval
["GET $::Api?per_page=1&page=1",
 "GET $::Api?per_page=1&page=5",
 "GET $::Api?per_page=1&page=" . main::last_page("", 1)]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[main::page_re("per_page=1&page=1"),
 main::page_re("per_page=1&page=5"),
 main::page_re("per_page=1&page=" . main::last_page("", 1))]
--- no_error_log
[error]



=== TEST 3: per_page at the maximum (1000): a full page, then the rest
--- request eval
["GET $::Api?per_page=1000",
 "GET $::Api?per_page=1000&page=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::pagination_re("per_page=1000"),
 main::pagination_re("per_page=1000&page=1")]
--- no_error_log
[error]



=== TEST 4: no per_page: the default, 10
--- request
GET /SophonFace/api/events?page=2
--- error_code: 200
--- response_body_like eval
main::page_re("per_page=10&page=2")
--- no_error_log
[error]



=== TEST 5: sophon_events_per_page changes the default; an explicit per_page still wins
check_body assumes the default of 10: this location has another name, and
page_re() says what the answer must be.
--- config
    location = /ev {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_per_page 25;
    }
--- request eval
["GET /ev",
 "GET /ev?page=1",
 "GET /ev?per_page=3&page=2"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[main::page_re("per_page=25"),
 main::page_re("per_page=25&page=1"),
 main::page_re("per_page=3&page=2")]
--- no_error_log
[error]



=== TEST 6: sophon_events_per_page inherited from the server level
--- config
    sophon_events_per_page 4;

    location = /ev {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
--- request eval
["GET /ev?userType=3",
 "GET /ev?userType=3&page=" . main::last_page("userType=3", 4)]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::page_re("per_page=4&userType=3"),
 main::page_re("per_page=4&userType=3&page=" . main::last_page("userType=3", 4))]
--- no_error_log
[error]



=== TEST 7: a lower sophon_events_max_per_page: its maximum is served, one more is refused
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_per_page 50;
    }
--- request eval
["GET $::Api?per_page=50&page=1",
 "GET $::Api?per_page=51",
 "GET $::Api?page=3"]
--- error_code eval
[200, 400, 200]
--- response_body_like eval
[main::page_re("per_page=50&page=1"),
 '^\{"error":\{"code":40000,"message":"per_page: must be an integer from 1 to 50","status":"BAD_REQUEST"\}\}$',
 main::page_re("per_page=10&page=3")]
--- no_error_log
[error]



=== TEST 8: a higher sophon_events_max_per_page: per_page above 1000 is served
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_per_page 2000;
    }
--- request eval
["GET $::Api?per_page=1500&userType=2",
 "GET $::Api?per_page=2001&userType=2"]
--- error_code eval
[200, 400]
--- response_body_like eval
[main::pagination_re("per_page=1500&userType=2"),
 '^\{"error":\{"code":40000,"message":"per_page: must be an integer from 1 to 2000","status":"BAD_REQUEST"\}\}$']
--- no_error_log
[error]



=== TEST 9: page=0 given explicitly is the first page, the same as no page
--- request eval
["GET $::Api?userType=3&page=0",
 "GET $::Api?userType=3"]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::page_re("userType=3&page=0"),
 main::page_re("userType=3")]
--- no_error_log
[error]



=== TEST 10: the last page holds the remainder
--- request eval
"GET $::Api?userType=3&page=" . main::last_page("userType=3", 10)
--- error_code: 200
--- response_body_like eval
main::page_re("userType=3&page=" . main::last_page("userType=3", 10))
--- no_error_log
[error]



=== TEST 11: one page past the last: 200, data [], the right total and num_pages
--- request eval
"GET $::Api?userType=3&page=" . (main::last_page("userType=3", 10) + 1)
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body eval
main::empty_body("userType=3&page=" . (main::last_page("userType=3", 10) + 1))
--- no_error_log
[error]



=== TEST 12: far past the end, up to the largest page with the largest per_page
An offset of 2147483647 * 1000 does not fit 32 bits.
--- request eval
["GET $::Api?userType=3&page=1000",
 "GET $::Api?page=2147483647",
 "GET $::Api?per_page=1000&page=2147483647"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[main::empty_body("userType=3&page=1000"),
 main::empty_body("page=2147483647"),
 main::empty_body("per_page=1000&page=2147483647")]
--- no_error_log
[error]



=== TEST 13: nothing matches: total 0, num_pages 0, on page 0 and past it
--- request eval
["GET $::Api?name=no-such-person-at-all",
 "GET $::Api?name=no-such-person-at-all&page=3&per_page=7"]
--- error_code eval
[200, 200]
--- response_body eval
['{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":null}}',
 '{"data":[],"pagination":{"num_pages":0,"page":3,"per_page":7,"total_count":0,"next":null}}']
--- no_error_log
[error]



=== TEST 14: num_pages = ceil(total / per_page) around an exact division
per_page = total, total - 1, total + 1, and total / 2 when even.
--- request eval
my $n = main::matches("userType=3");
[map { "GET $::Api?userType=3&per_page=$_" }
     $n, $n - 1, $n + 1, $n % 2 ? $n : $n / 2]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
my $n = main::matches("userType=3");
[map { main::pagination_re("userType=3&per_page=$_") }
     $n, $n - 1, $n + 1, $n % 2 ? $n : $n / 2]
--- no_error_log
[error]



=== TEST 15: top_k below the match count: total_count is top_k, pages stop there
--- request eval
die "userType=4 needs more than 10 events in the fixtures\n"
    if main::matches("userType=4") <= 10;
[map { "GET $::Api?userType=4&top_k=10&per_page=5&page=$_" } 0 .. 2]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"pagination":\{"num_pages":2,"page":0,"per_page":5,"total_count":10,"next":(?:null|"[0-9a-f]+")\}\}$',
 '"pagination":\{"num_pages":2,"page":1,"per_page":5,"total_count":10,"next":(?:null|"[0-9a-f]+")\}\}$',
 '^\{"data":\[\],"pagination":\{"num_pages":2,"page":2,"per_page":5,"total_count":10,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 16: top_k at the match count, one above, far above and at sophon_events_max_top_k
--- request eval
my $n = main::matches("userType=3");
[map { "GET $::Api?userType=3&per_page=20&top_k=$_" }
     $n, $n + 1, 1000000, 10000000]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
my $n = main::matches("userType=3");
[map { main::page_re("userType=3&per_page=20&top_k=$_") }
     $n, $n + 1, 1000000, 10000000]
--- no_error_log
[error]



=== TEST 17: top_k smaller than a page cuts the page
--- request eval
["GET $::Api?top_k=3",
 "GET $::Api?top_k=1&per_page=1000",
 "GET $::Api?userType=3&top_k=3&per_page=10"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['^\{"data":\[\{.*\],"pagination":\{"num_pages":1,"page":0,"per_page":10,"total_count":3,"next":(?:null|"[0-9a-f]+")\}\}$',
 '^\{"data":\[\{.*\],"pagination":\{"num_pages":1,"page":0,"per_page":1000,"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$',
 main::page_re("userType=3&top_k=3&per_page=10")]
--- no_error_log
[error]



=== TEST 18: top_k: a page that straddles the cap is cut, the next one is past the end
top_k=25, per_page=10: page 2 holds events 20..24, page 3 is empty.
--- request eval
die "userType=4 needs more than 25 events in the fixtures\n"
    if main::matches("userType=4") <= 25;
[(map { "GET $::Api?userType=4&top_k=25&per_page=10&page=$_" } 1 .. 3),
 (map { "GET $::Api?top_k=25&per_page=10&page=$_" } 2 .. 3)]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_like eval
[main::page_re("userType=4&top_k=25&per_page=10&page=1"),
 main::page_re("userType=4&top_k=25&per_page=10&page=2"),
 '^\{"data":\[\],"pagination":\{"num_pages":3,"page":3,"per_page":10,"total_count":25,"next":(?:null|"[0-9a-f]+")\}\}$',
 main::page_re("top_k=25&per_page=10&page=2"),
 '^\{"data":\[\],"pagination":\{"num_pages":3,"page":3,"per_page":10,"total_count":25,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 19: top_k at a page boundary: the last page is full, the next is empty
--- request eval
["GET $::Api?top_k=20&per_page=10&page=1",
 "GET $::Api?top_k=20&per_page=10&page=2"]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::page_re("top_k=20&per_page=10&page=1"),
 '^\{"data":\[\],"pagination":\{"num_pages":2,"page":2,"per_page":10,"total_count":20,"next":(?:null|"[0-9a-f]+")\}\}$']
--- no_error_log
[error]



=== TEST 20: walking every page with per_page=7 gives the whole ordered match set once
Each page is checked against its slice of the ordered match set (check_body
and page_re), so together they neither overlap nor skip; the walk goes one
page past the end.  The camera chosen has events with equal timestamps.
--- request eval
my $qs = main::walk_query();
[map { "GET $::Api?$qs&per_page=7&page=$_" }
     0 .. main::last_page($qs, 7) + 1]
--- error_code eval
my $qs = main::walk_query();
[map { 200 } 0 .. main::last_page($qs, 7) + 1]
--- response_body_like eval
my $qs = main::walk_query();
[map { main::page_re("$qs&per_page=7&page=$_") }
     0 .. main::last_page($qs, 7) + 1]
--- no_error_log
[error]



=== TEST 21: the union of the walked pages is the full ordered match set
The same walk's pages, taken from the fixtures, are the whole match set in
order; the module's one page of the whole set is that too.
--- request eval
my $qs = main::walk_query();
my $n = main::matches($qs);
my @walk = map { @{ SophonTest::expected("$qs&per_page=7&page=$_")->{events} } }
           0 .. main::last_page($qs, 7);
my @all = @{ SophonTest::expected("$qs&per_page=1000")->{events} };
die "the walk does not cover the match set\n"
    if CORE::join(',', map { $_->{_id} } @walk)
       ne CORE::join(',', map { $_->{_id} } @all)
       || @all != $n;
"GET $::Api?$qs&per_page=1000"
--- error_code: 200
--- response_body_like eval
main::page_re(main::walk_query() . "&per_page=1000")
--- no_error_log
[error]



=== TEST 22: equal timestamps across a page boundary: _id desc, no overlap, no skip
"Same Time A" (_id ...500100) and "Same Time B" (_id ...500200) share their
timestamp: B is the last event of one page, A the first of the next.
--- request eval
my @ids = map { $_->{_id} }
          @{ SophonTest::expected("groups=g-edge&per_page=1000")->{events} };
my ($b) = grep { $ids[$_] eq "1700000008.500200" } 0 .. $#ids;
die "no Same Time B in groups=g-edge\n" if !defined $b;
my $pp = $b + 1;
["GET $::Api?groups=g-edge&per_page=$pp&page=0",
 "GET $::Api?groups=g-edge&per_page=$pp&page=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\{\s*"_id"\s*:\s*"1700000008\.500200"(?:(?!"_id"\s*:).)*\],"pagination":\{"num_pages":\d+,"page":0,',
 '^\{"data":\[\{\s*"_id"\s*:\s*"1700000008\.500100"']
--- no_error_log
[error]



=== TEST 23: the biggest group of events with one timestamp, split by pages of 2 and of 1
--- request eval
my $qs = main::tie_query();
my $n = main::matches($qs);
[map { "GET $::Api?$qs&$_" }
     (map { "per_page=2&page=$_" } 0 .. ($n - 1) / 2),
     (map { "per_page=1&page=$_" } 0 .. $n - 1)]
--- error_code eval
my $n = main::matches(main::tie_query());
[map { 200 } 0 .. ($n - 1) / 2, 0 .. $n - 1]
--- response_body_like eval
my $qs = main::tie_query();
my $n = main::matches($qs);
[map { main::page_re("$qs&$_") }
     (map { "per_page=2&page=$_" } 0 .. ($n - 1) / 2),
     (map { "per_page=1&page=$_" } 0 .. $n - 1)]
--- no_error_log
[error]



=== TEST 24: the first page of everything: the edge-case fixtures' order
--- request eval
["GET $::Api?per_page=6&page=0",
 "GET $::Api?per_page=6&page=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
[main::page_re("per_page=6&page=0"),
 main::page_re("per_page=6&page=1")]
--- no_error_log
[error]



=== TEST 25: name= and identity_id, whose totals the counts per identity give: every page
Each page of a common name, a busy identity and both together, read from
either end of the match set, with and without top_k.
--- request eval
[map { "GET $::Api?$_" } main::identity_walks()]
--- error_code eval
[map { 200 } main::identity_walks()]
--- response_body_like eval
[map { main::page_re($_) } main::identity_walks()]
--- no_error_log
[error]
