# vi:filetype=perl

# Totals stay exact while events are written.  A background writer (psql,
# started when TEST 2 starts) inserts $Rows small events of the device
# "dev-live-consistency", one INSERT (one transaction) at a time, while the
# blocks page through that device again and again.  Each answer must be
# consistent in itself (one snapshot): as many events as total_count leaves
# for the page, num_pages = ceil(total_count / per_page), newest first,
# every id once, every event the document that was written; totals never
# go down from one request to the next.  Once the writer is done, a block
# sees exactly the rows it wrote.  The live rows are deleted before the
# first block, after the last one and at exit, however the script ends.
#
# Then the same under inserts, deletes and updates at once: two psql
# "churners" on the device "dev-churn-consistency", one inserting batches
# and deleting older batches by id, the other deleting and re-typing random
# rows (so both may delete the same row at the same moment), with events
# over several hours so that time windows count partial hours.  At most a
# few hundred rows live at a time, so a page of 1000 holds them all: its
# length must be its total_count, whatever the writers do; once they are
# done, every total and page is what the rows left in the database give.
#
# The live rows are not in the fixtures: SophonTest::check_body is not
# used here.  Sections of this file:
#   --- start_writer   start the writer before the block
#   --- wait_writer    wait for the writer to finish before the block
#   --- delete_live    delete the live rows before the block
#   --- written        the database holds every written row: totals and
#                      pages are checked against the written documents
#   --- all_ids        (with --- written) the pages of the block's requests
#                      hold every written row
#   --- start_churn    start the churners before the block
#   --- churn          the block reads the churners' device
#   --- wait_churn     wait for the churners, then read the rows they left
#                      (with --- churn, --- written checks against those)

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(psql_start reap);
use JSON::PP ();

repeat_each(2);
no_shuffle();

our $Device = 'dev-live-consistency';
our $Rows = 2000;
our $ChurnDevice = 'dev-churn-consistency';
our $ChurnRows = 1200;
our $ChurnBase = 1800100000;    # its events: 4 hours from here

my $MainPid = $$;
my $json = JSON::PP->new->utf8->canonical;

# --------------------------------------------------------------------------
# The database, through psql

sub live_rows_in_db {
    return SophonTest::psql("SELECT count(*) FROM sophon_events"
                            . " WHERE device_id = '$Device'");
}

sub delete_live_rows {
    SophonTest::psql("DELETE FROM sophon_events"
                     . " WHERE device_id IN ('$Device', '$ChurnDevice')");
}

# --------------------------------------------------------------------------
# The events the writer inserts: small valid documents, made up front
# (srand is fixed: the same every run).  Timestamps collide on purpose so
# that "_id" breaks ties.

srand(20201204);

my @Written;
for my $i (1 .. $Rows) {
    my $sec = 1800000000 + int(rand(700));
    my $ts = $sec + (0, 0.25, 0.5)[int rand 3];
    my $type = 1 + int rand 5;

    push @Written, {
        _id => sprintf('%d.%06d', $sec, $i),
        timestamp => $ts,
        common => {
            ep_info => { device_id => $Device },
            person_type => $type,
            score => $type == 4 ? 12.5 : 82 + int(rand(36)) / 2,
            identity_id => $type == 4 ? '' : "live-$i",
            identity_name => $type == 4 ? '' : "Live $i",
            group_id => $type == 4 ? '' : 'g-live-' . ($i % 3),
            identity_info => {},
        },
    };
}

my %WrittenById = map { $_->{_id} => $_ } @Written;

# --------------------------------------------------------------------------
# The churners' events: the same kind, over 4 hours, in batches of 12

my @Churn;
for my $i (1 .. $ChurnRows) {
    my $sec = $ChurnBase + int(rand(4 * 3600));
    my $type = 1 + int rand 5;

    push @Churn, {
        _id => sprintf('%d.%06d', $sec, $i),
        timestamp => $sec + (0, 0.5)[int rand 2],
        common => {
            ep_info => { device_id => $ChurnDevice },
            person_type => $type,
            score => 50 + int(rand(100)) / 2,
            identity_id => "churn-$i",
            identity_name => "Churn $i",
            group_id => 'g-churn',
            identity_info => {},
        },
    };
}

my %ChurnById = map { $_->{_id} => $_ } @Churn;
my @ChurnLeft;      # the churners' rows left in the database, once done

sub insert_sql {
    return SophonTest::insert_sql(map { $json->encode($_) } @_);
}

# the first churner: inserts batch b, deletes batch b - 20 by id
sub churn_insert_script {
    my $sql = '';
    my @batches;
    push @batches, [ @Churn[12 * $_ .. 12 * $_ + 11] ]
        for 0 .. $ChurnRows / 12 - 1;

    for my $b (0 .. $#batches) {
        $sql .= insert_sql(@{ $batches[$b] });

        if ($b >= 20) {
            $sql .= "DELETE FROM sophon_events WHERE id = ANY ('{"
                    . join(',', map { $_->{_id} } @{ $batches[$b - 20] })
                    . "}');\n";
        }

        $sql .= "SELECT pg_sleep(0.08);\n";
    }

    return $sql;
}

# the second: deletes random rows (racing the first for the same rows) and
# moves others to another person type, one row a statement (two statements
# that each lock several rows in their own order can deadlock on the rows
# themselves, counters or not)
sub churn_delete_script {
    my $row = "(SELECT id FROM sophon_events WHERE device_id = '$ChurnDevice'"
              . " ORDER BY random() LIMIT 1)";
    my $delete = "DELETE FROM sophon_events WHERE id = $row;\n";
    my $retype = "UPDATE sophon_events SET doc = jsonb_set(doc::jsonb,"
                 . " '{common,person_type}', to_jsonb(person_type % 5 + 1))"
                 . " WHERE id = $row;\n";

    return ($delete x 3 . $retype x 2 . "SELECT pg_sleep(0.1);\n") x 80;
}

# --------------------------------------------------------------------------
# Writers: psql processes running a script (SophonClient's psql_start),
# reaped by this script: their exit status, or 'killed' past a time bound

my $Writer;          # the inserting writer's pid while it runs
my $WriterStatus;    # its exit status ($?) once reaped
my @Churners;        # the churners' pids while they run

# one INSERT (one transaction) per row, about 15 s in all: longer than
# the live blocks
sub start_writer {
    return if $Writer || defined $WriterStatus;

    $Writer = psql_start(join '', map {
        insert_sql($_) . "SELECT pg_sleep(0.006);\n"
    } @Written);
}

sub reap_writer {
    my ($timeout) = @_;
    return $WriterStatus if !$Writer;

    $WriterStatus = reap($Writer, $timeout);
    undef $Writer;

    return $WriterStatus;
}

END {
    if ($$ == $MainPid) {
        local $?;
        reap($_, 0) for grep { $_ } $Writer, @Churners;
        eval { delete_live_rows() };
        warn "007-consistency: cannot delete the live rows: $@" if $@;
    }
}

# a previous run that died may have left rows behind
delete_live_rows();

# --------------------------------------------------------------------------
# The checks

my %LastTotal;      # filter => the last total seen (totals never go down)
my %TotalsSeen;     # distinct totals seen while the writer ran
my %ChurnTotalsSeen;    # ... and while the churners ran
my %PageIds;        # rep => { id => 1 } over the pages of an --- all_ids block

# the filters of a query string, as given: its pairs with a value, but
# the page's (an empty value is no filter)
sub filter_of {
    my ($qs) = @_;
    return join '&', sort grep { /=./ && !/^(?:page|per_page)=/ }
                          split /&/, $qs;
}

# a churner's row may have another person type than written
sub untyped {
    my ($doc) = @_;
    return $json->encode({ %$doc, common => { %{ $doc->{common} },
                                               person_type => 0 } });
}

sub check_live {
    my ($block, $body, $req_idx, $rep) = @_;
    my $name = $block->name;
    my $request = ref $block->request ? $block->request->[$req_idx]
                                      : $block->request;
    my $what = "$name (repeated req $rep, req $req_idx)";
    my $churn = defined $block->churn;

    my ($qs) = $request =~ m{^GET /SophonFace/api/events\?(\S*)}
        or return;
    my $q = SophonTest::parse_query($qs);

    my $data = eval { JSON::PP->new->utf8->decode($body // '') };
    ok($data && ref $data eq 'HASH' && ref $data->{data} eq 'ARRAY'
       && ref $data->{pagination} eq 'HASH', "$what - a page")
        or return diag("$@: " . substr($body // '', 0, 300));

    my $p = $data->{pagination};
    my $events = $data->{data};
    my $per_page = $q->{per_page} // 10;
    my $page = $q->{page} // 0;
    my $total = $p->{total_count};

    ok(defined $total && $total =~ /^\d+$/, "$what - total_count")
        or return;

    is($p->{page}, $page, "$what - page");
    is($p->{per_page}, $per_page, "$what - per_page");
    is($p->{num_pages}, int(($total + $per_page - 1) / $per_page),
       "$what - num_pages = ceil(total_count / per_page) ($total)");

    my $left = $total - $page * $per_page;
    my $want = $left < 0 ? 0 : $left < $per_page ? $left : $per_page;
    is(scalar @$events, $want, "$what - the events the total leaves "
       . "for page $page of $per_page ($total)");

    if (defined $q->{top_k}) {
        ok($total <= $q->{top_k}, "$what - total_count <= top_k");
    }

    my (@bad, %seen);
    for my $i (0 .. $#$events) {
        my $ev = $events->[$i];
        my $id = $ev->{_id} // '(none)';

        push @bad, "$id twice" if $seen{$id}++;

        my $doc = $churn ? $ChurnById{$id} : $WrittenById{$id};
        if (!$doc) {
            push @bad, "$id was not written";
            next;
        }

        # the event as it is now: a churner may have changed its type
        push @bad, "$id does not match the filters"
            if !SophonTest::matches($ev, $q);
        push @bad, "$id is not the document written"
            if $churn ? untyped($ev) ne untyped($doc)
                      : $json->encode($ev) ne $json->encode($doc);

        if ($i > 0 && SophonTest::newest_first($events->[$i - 1], $ev) >= 0) {
            push @bad, "$events->[$i - 1]{_id} ($events->[$i - 1]{timestamp})"
                       . " before $id ($ev->{timestamp})";
        }
    }

    ok(!@bad, "$what - newest first, each id once, each the written document")
        or diag(join "\n", @bad[0 .. ($#bad < 5 ? $#bad : 5)]);

    # the same filters, a later snapshot: never fewer rows (rows are only
    # inserted, unless churners run)
    my $filter = filter_of($qs);
    if ($churn) {
        $ChurnTotalsSeen{$total} = 1 if @Churners;

    } elsif (defined $LastTotal{$filter}) {
        ok($total >= $LastTotal{$filter}, "$what - the total does not "
           . "go down ($LastTotal{$filter} before, $total now)");
    }
    $LastTotal{$filter} = $total;
    $TotalsSeen{$total} = 1 if $Writer && $filter eq "streams=$Device";

    return if !defined $block->written;

    # the writers are done: exact totals, and every row on some page
    my @match = sort { SophonTest::newest_first($a, $b) }
                grep { SophonTest::matches($_, $q) }
                     $churn ? @ChurnLeft : @Written;
    $#match = $q->{top_k} - 1 if defined $q->{top_k} && @match > $q->{top_k};

    is($total, scalar @match, "$what - total_count is every row "
       . ($churn ? "left" : "written"));

    my $first = $page * $per_page;
    my @ids = map { $_->{_id} } @match[$first .. $first + $want - 1];
    is_deeply([ map { $_->{_id} } @$events ], \@ids,
              "$what - the page of the rows written");

    return if !defined $block->all_ids;

    $PageIds{$rep}{$_->{_id}} = 1 for @$events;
    return if $req_idx < $#{ $block->request };

    is(scalar keys %{ $PageIds{$rep} }, $Rows,
       "$what - every row written was on one of the pages");
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run;
    check_live($block, $body, $req_idx, $repeated_req_idx);
});

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->name;

    SophonTest::default_location($block);

    %PageIds = ();

    if (defined $block->delete_live) {
        delete_live_rows();
        %LastTotal = ();
    }

    start_writer() if defined $block->start_writer;

    if (defined $block->wait_writer) {
        my $status = reap_writer(120);

        is($status, 0, "$name - the writer inserted its $Rows rows");
        is(live_rows_in_db(), $Rows, "$name - the database holds them");
        ok(keys %TotalsSeen >= 3, "$name - the pages were read while rows "
           . "were written (" . scalar(keys %TotalsSeen) . " totals seen)");
    }

    if (defined $block->start_churn && !@Churners) {
        @Churners = (psql_start(churn_insert_script()),
                     psql_start(churn_delete_script()));
    }

    if (defined $block->wait_churn && @Churners) {
        my @status = map { reap($_, 120) } @Churners;
        @Churners = ();

        is_deeply(\@status, [0, 0], "$name - the churners ran to the end");
        ok(keys %ChurnTotalsSeen >= 3, "$name - the pages were read while "
           . "rows were inserted, deleted and updated ("
           . scalar(keys %ChurnTotalsSeen) . " totals seen)");

        @ChurnLeft = map { $json->decode($_) } split /\n/, SophonTest::psql(
            "SELECT doc FROM sophon_events WHERE device_id = '$ChurnDevice'");

        ok(@ChurnLeft > 0 && @ChurnLeft < $ChurnRows, "$name - the "
           . "churners left some of their rows (" . @ChurnLeft . ")");

        for my $counts (qw(sophon_event_totals sophon_event_counts)) {
            is(SophonTest::psql("SELECT coalesce(sum(n), 0) FROM $counts"
                                . " WHERE device_id = '$ChurnDevice'"),
               scalar @ChurnLeft, "$name - $counts counts them");
        }
    }
});

# the requests of a churn block: the device's rows all in one page, alone,
# with person types, with time windows that cut hours, with a filter
# whose rows are counted; and pages of 7
sub churn_requests {
    my ($n) = @_;
    my @filters = ('', '&userType=1,3',
                   '&datetime_gte=' . ($ChurnBase + 1800.5)
                   . '&datetime_lte=' . ($ChurnBase + 3 * 3600 + 1234),
                   '&datetime_gte=' . ($ChurnBase + 5000) . '&userType=2,4,5',
                   '&score_min=70');
    my @pages = ([1000, 0], [1000, 0], [7, 0], [7, 5], [7, 30]);
    my @reqs;

    for my $i (0 .. $n - 1) {
        my ($pp, $page) = @{ $pages[int($i / @filters) % @pages] };
        push @reqs, "GET /SophonFace/api/events?streams=$ChurnDevice"
                    . $filters[$i % @filters] . "&per_page=$pp&page=$page";
    }

    return \@reqs;
}

# the requests of a live block: offsets spread over the rows being written
sub live_requests {
    my ($extra, $n) = @_;
    my @per_page = (1, 7, 10, 25, 100, 333, 1000);
    my @reqs;

    for my $i (0 .. $n - 1) {
        my $pp = $per_page[$i % @per_page];
        my $page = int((($i * 241) % 1000) / $pp);
        push @reqs, "GET /SophonFace/api/events?streams=$Device$extra"
                    . "&per_page=$pp&page=$page";
    }

    return \@reqs;
}

run_tests();

__DATA__

=== TEST 1: before the writer, the device has no events
--- request
GET /SophonFace/api/events?streams=dev-live-consistency&per_page=10&page=0
--- error_code: 200
--- response_body_like: ^\{"data":\[\],"pagination":\{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: pages read while rows are inserted are consistent in themselves
--- start_writer
--- request eval
main::live_requests('', 50)
--- error_code eval
[(200) x 50]
--- no_error_log
[error]



=== TEST 3: the same with filters, list notations and top_k
--- request eval
[@{ main::live_requests('&userType=1,3,5', 15) },
 @{ main::live_requests('&score_min=90&userType=', 10) },
 @{ main::live_requests('&top_k=500', 15) },
 map { s/streams=dev-live-consistency/streams=%5B%22dev-live-consistency%22%5D/r }
     @{ main::live_requests('', 10) }]
--- error_code eval
[(200) x 50]
--- no_error_log
[error]



=== TEST 4: once the writer is done, the total is exactly the rows it wrote
--- wait_writer
--- written
--- request eval
["GET /SophonFace/api/events?streams=dev-live-consistency&per_page=1000&page=0",
 "GET /SophonFace/api/events?streams=dev-live-consistency&per_page=1000&page=1",
 "GET /SophonFace/api/events?streams=dev-live-consistency&per_page=1000&page=2",
 "GET /SophonFace/api/events?streams=dev-live-consistency&per_page=7&page=285",
 "GET /SophonFace/api/events?streams=dev-live-consistency&per_page=7&page=286",
 "GET /SophonFace/api/events?streams=dev-live-consistency&userType=1,3,5&per_page=100&page=3",
 "GET /SophonFace/api/events?streams=dev-live-consistency&score_min=90&per_page=50",
 "GET /SophonFace/api/events?streams=dev-live-consistency&top_k=500&per_page=30&page=16"]
--- error_code eval
[(200) x 8]
--- no_error_log
[error]



=== TEST 5: no event is skipped nor repeated across the pages
--- written
--- all_ids
--- request eval
["GET /SophonFace/api/events?streams=dev-live-consistency&per_page=1000&page=0",
 "GET /SophonFace/api/events?streams=dev-live-consistency&per_page=1000&page=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
["\"total_count\":$main::Rows,\"next\":(?:null|\"[0-9a-f]+\")\\}\\}\$", "\"total_count\":$main::Rows,\"next\":(?:null|\"[0-9a-f]+\")\\}\\}\$"]
--- no_error_log
[error]



=== TEST 6: pages read while rows are inserted, deleted and updated at once
--- start_churn
--- churn
--- request eval
main::churn_requests(50)
--- error_code eval
[(200) x 50]
--- no_error_log
[error]



=== TEST 7: the same, later in the churn
--- churn
--- request eval
main::churn_requests(50)
--- error_code eval
[(200) x 50]
--- no_error_log
[error]



=== TEST 8: once the churners are done, every total is the rows they left
--- wait_churn
--- churn
--- written
--- request eval
main::churn_requests(25)
--- error_code eval
[(200) x 25]
--- no_error_log
[error]



=== TEST 9: the live rows are gone again
--- delete_live
--- request
GET /SophonFace/api/events?streams=dev-live-consistency&per_page=10&page=0
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]
