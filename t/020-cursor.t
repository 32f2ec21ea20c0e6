# vi:filetype=perl

# Deep pages by cursor: every answer's pagination.next opens the next page
# (null on the last one), after=<cursor> with the same filters gives the
# same page as page=N, with the same total, at any depth, and keeps its
# place while new events arrive; a bad or foreign cursor is a 400 naming
# "after".
#
# A scenario (SophonClient's use_scenarios) walks whole filter sets by
# their cursors, checking each page against SophonTest's oracle (which
# reads the cursor's documented format: README, "The API") and against
# the page= page of the same number:
#   --- scenario: walk        the filter sets of @Walks
#   --- scenario: inserts     one walk while a writer adds newer events

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;
use SophonClient qw(:all);
use JSON::PP ();

repeat_each(1);
no_shuffle();
no_long_string();

SophonTest::use_standard_location();
use_scenarios();

my $json = JSON::PP->new->utf8->canonical;

# per_page and filters: plain, counted filters (window, cameras, types),
# counted rows (score, name), top_k cutting a page, one page only
our @Walks = (
    'per_page=50',
    'per_page=7&userType=1,2&datetime_gte=1607400000',
    'per_page=9&streams=8c40fd85-0321-4220-9120-09482088d092',
    'per_page=13&score_min=50&with_feature=0',
    'per_page=5&name=a',
    'per_page=10&top_k=37',
    'per_page=1000',
);

# (status, decoded body or undef, raw) of one GET
sub get_json {
    my ($qs) = @_;
    my $c = http_send($qs) or die "connect: $!\n";
    http_pump([$c], 20);
    my $r = parse_http($c->{buf});
    my $data = eval { $json->decode($r->{body} // '') };
    return ($r->{status} // 0, $data, $c->{buf});
}

sub walk {
    my ($name, $qs) = @_;
    my ($status, $d, $raw) = get_json($qs);
    is($status, 200, "$name - $qs: page 0");
    return [] if !$d;

    my @seen = map { $_->{_id} } @{ $d->{data} };
    my $total = $d->{pagination}{total_count};
    my ($n, @bad) = (0);

    while (defined(my $next = $d->{pagination}{next})) {
        $n++;
        my $aqs = "$qs&after=$next";
        ($status, $d, $raw) = get_json($aqs);
        my $why = check_page($raw, $aqs);
        push @bad, "page $n: $why" if $why ne '';

        my ($s2, $byoffset) = get_json("$qs&page=$n");
        push @bad, "page $n differs from page=$n"
            if !$byoffset || !$d
               || $json->encode($byoffset) ne $json->encode($d);

        last if !$d || @bad > 5 || $n > 2000;
        push @seen, map { $_->{_id} } @{ $d->{data} };
    }

    my $want = SophonTest::expected($qs);
    my $capped = $want->{pagination}{total_count};

    is(scalar @bad, 0, "$name - $qs: every page by cursor is the oracle's"
                       . " and page=N's ($n cursors)")
        or diag(join "\n", @bad);
    is(scalar @seen, $capped, "$name - $qs: the cursors walk all"
                              . " $capped events, each once");
    my %once;
    is(scalar(grep { $once{$_}++ } @seen), 0, "$name - $qs: no event twice");
    is($n, $want->{pagination}{num_pages} - ($capped ? 1 : 0),
       "$name - $qs: a cursor for every page but the last");

    return \@seen;
}

sub scenario_walk {
    my ($block) = @_;
    walk($block->name, $_) for @Walks;
}

# new events, newer than every fixture, while a walk goes on
sub scenario_inserts {
    my ($block) = @_;
    my $name = $block->name;
    my $qs = 'per_page=25&with_feature=0';

    my $before = [ map { $_->{doc}{_id} } @{ SophonTest::fixtures() } ];

    my $set = start_clients(1, sub {
        my ($id, $stop) = @_;
        my $n = 0;
        for my $i (1 .. 60) {
            last if -e $stop;
            SophonTest::psql("INSERT INTO sophon_events (doc) SELECT"
                . " jsonb_build_object('_id', 'cursor-new-' || g,"
                . " 'timestamp', 1900000000 + g, 'common',"
                . " jsonb_build_object('ep_info', jsonb_build_object("
                . "'device_id', 'dev-cursor-new'), 'identity_name', '',"
                . " 'score', 50)) FROM generate_series($i * 5, $i * 5 + 4) g");
            $n += 5;
            Time::HiRes::sleep(0.05);
        }
        return { inserted => $n };
    });

    # page 0 first: it holds the newest, which the writer then outnumbers
    my ($status, $d) = get_json($qs);
    my @seen = grep { !/^cursor-new-/ } map { $_->{_id} } @{ $d->{data} };
    my $first_new = grep { /^cursor-new-/ } map { $_->{_id} } @{ $d->{data} };
    my $n = 0;

    while ($d && defined(my $next = $d->{pagination}{next})) {
        ($status, $d) = get_json("$qs&after=$next");
        last if $status != 200 || ++$n > 500;
        push @seen, map { $_->{_id} } @{ $d->{data} };
    }

    my $res = stop_clients($set, 10);
    ok(($res->{inserted} // 0) > 0, "$name - the writer added events meanwhile"
                                    . " (" . ($res->{inserted} // 0) . ")");

    my @new = grep { /^cursor-new-/ } @seen;
    is(scalar @new, 0, "$name - no event newer than page 0 comes after it"
                       . " ($first_new were on page 0)");
    is_deeply(\@seen, [ grep { !/^cursor-new-/ } @$before ],
              "$name - the walk gives every event of the start once, in"
              . " order, while the offsets move under it");

    SophonTest::psql("DELETE FROM sophon_events"
                     . " WHERE id LIKE 'cursor-new-%'");
}

# the cursor of one query string, tried with others
sub scenario_foreign {
    my ($block) = @_;
    my $name = $block->name;
    my $c = next_of('per_page=5&userType=1,2');
    ok($c, "$name - a cursor to try");

    for my $qs ('per_page=5', 'per_page=6&userType=1,2',
                'per_page=5&userType=1', 'per_page=5&userType=1,2&top_k=100',
                'per_page=5&userType=1,2&name=a',
                'per_page=5&userType=1,2&datetime_gte=1')
    {
        my ($status, $d, $raw) = get_json("$qs&after=$c");
        is($status, 400, "$name - $qs: 400");
        is(parse_http($raw)->{body}, $main::Foreign,
           "$name - $qs: the cursor of other filters");
    }

    for my $qs ('per_page=5&userType=1,2', 'userType[]=1&userType[]=2&per_page=5',
                'per_page=5&userType=[1,2]&with_feature=0',
                'per_page=5&userType=1,2&page=7')
    {
        my ($status, $d, $raw) = get_json("$qs&after=$c");
        is(check_page($raw, "$qs&after=$c"), '', "$name - $qs: page 1 by"
                                                 . " the cursor");
        is($d && $d->{pagination}{page}, 1, "$name - $qs: numbered 1");
    }

    my $h = http_send("per_page=5&userType=1,2&after=$c", method => 'HEAD')
        or die "connect: $!\n";
    http_pump([$h], 10);
    my $r = parse_http($h->{buf});
    is($r->{status}, 200, "$name - HEAD with the cursor: 200");
    is($r->{body} // '', '', "$name - ... and no body");
}

# a cursor made as README says, for tests of the refusals
sub cursor {
    my ($fingerprint, $page, $ts, $id, %o) = @_;
    my $b = pack('C N N C', $o{version} // 1, $fingerprint, $page,
                 length $ts) . $ts . $id;
    return unpack 'H*', $b;
}

# a real cursor: page 0's next of this query string
sub next_of {
    my ($qs) = @_;
    my ($status, $d) = get_json($qs);
    return $d->{pagination}{next};
}

our $Bad = '{"error":{"code":40000,"message":"after: is not a cursor of this'
         . ' API","status":"BAD_REQUEST"}}';
our $Foreign = '{"error":{"code":40000,"message":"after: is the cursor of'
             . ' other filters, per_page or top_k","status":"BAD_REQUEST"}}';

run_tests();

__DATA__

=== TEST 1: every filter set walked by its cursors: the oracle's pages, page=N's pages, every event once
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?per_page=3
--- error_code: 200
--- scenario: walk
--- timeout: 120
--- no_error_log
[error]



=== TEST 2: a walk by cursor keeps its place while newer events arrive
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?per_page=2
--- error_code: 200
--- scenario: inserts
--- timeout: 60
--- no_error_log
[error]



=== TEST 3: page 0 and the last page: next is a cursor, then null
--- request eval
["GET /SophonFace/api/events?per_page=10",
 "GET /SophonFace/api/events?per_page=1000&page=1",
 "GET /SophonFace/api/events?per_page=10&streams=no-such-camera"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"next":"01[0-9a-f]+"\}\}$', '"next":null\}\}$', '"next":null\}\}$']



=== TEST 4: malformed cursors are a 400 naming after
--- request eval
[map { "GET /SophonFace/api/events?after=$_" }
 'zz', '0', '011', '01AB', ('01' x 9), 'x' x 3000,
 main::cursor(0, 1, '1607394496.5', 'a', version => 2),
 main::cursor(0, 0, '1607394496.5', 'a'),
 main::cursor(0, 1, 'abc', 'a'),
 main::cursor(0, 1, '1607394496.', 'a'),
 main::cursor(0, 1, 'NaN', 'a'),
 main::cursor(0, 1, '1607394496.5', ''),
 main::cursor(0, 1, '1607394496.5', "a\0b"),
 main::cursor(0, 1, '1607394496.5', "\xff\xfe"),
 main::cursor(0, 1, '1607394496.5', "\xed\xa0\x80")]
--- error_code eval
[(400) x 15]
--- response_body eval
[($main::Bad) x 15]



=== TEST 5: a cursor of other filters, per_page or top_k is foreign; the same filters in another spelling, with_feature, page and HEAD take it
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events?per_page=5&userType=1,2
--- error_code: 200
--- scenario: foreign
--- timeout: 30
--- no_error_log
[error]
