# vi:filetype=perl

# The live stream, GET /SophonFace/api/events/stream (README, "The live
# stream"), against an oracle read from the database: every event a stream
# delivers is compared byte for byte with its stored document (SELECT
# doc::text), and what a stream must deliver is computed from the documents
# this file inserted (SophonTest's reading of the filters).
#
#   TEST 1-3   HEAD, POST, and the 400s: bad cursors (garbage, bad hex, odd
#              length, tampered snapshots...) named after where they came
#              from, the list's own filter errors, the header first
#   TEST 4     live inserts within a second of commit, only those after the
#              start; deletes (any _id) and updates; increasing ids; the
#              heartbeat comment every second when idle
#   TEST 5     the filters and with_feature=0: exactly the matching events
#   TEST 6     datetime_gte: the past in (timestamp, _id) order, then live,
#              with writers racing the start; resumes inside the past
#   TEST 7     loss-free resume: 8 writers a round commit in another order
#              than they began (pg_sleep inside the transaction), a rolled
#              back one and a rolled back savepoint, a 300-row transaction;
#              the client leaves at random points and resumes with
#              Last-Event-ID, last_event_id= or since=: it gets every
#              committed event exactly once; then resumes from inside a
#              burst of 10 and of 300 rows committed together
#   TEST 8     sophon_events_max_streams 2: the third is a 503
#   TEST 9     200 idle streams cost at most the pool's connections + 1
#              backends, and all get the next event
#   TEST 10    a client that does not read holds its stream back until
#              send_timeout cuts it (logged), and resumes
#   TEST 11    a reload ends a stream with its last chunk, the client
#              resumes on the new worker and misses nothing written around
#              it; a graceful stop ends it the same way
#
# The events of this file are on cameras stream-cam-* with timestamps from
# $T0 to $T0 + 100000, far from the fixtures'; they are deleted (and their
# deletions' rows) at the start and at exit.  SOPHON_026_SEED replays
# TEST 7's random disconnections.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient qw(:all);
use JSON::PP ();
use List::Util qw(shuffle max);
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();
master_on();
workers(1);
worker_connections(1024);
log_level('info');

$SophonClient::AppName = 'sophon_026_check';

our $T0 = 1400000000;
our $Cam = 'stream-cam';

my $MainPid = $$;
my $Json = JSON::PP->new->utf8->canonical;

# SQL as the superuser: its output; dies on an error (a script of any
# length: psql reads it from a file)
sub admin {
    my ($sql) = @_;
    my ($ok, $out, $err) = SophonTest::psql_script($sql);
    die "psql: $err\n" if !$ok;
    return $out;
}

sub clean {
    my $mine = "device_id LIKE '$Cam-%' AND ts BETWEEN $T0 AND $T0 + 100000";
    admin("DELETE FROM sophon_events WHERE $mine");
    admin("DELETE FROM sophon_event_deletions WHERE $mine");
}

# SophonClient's stop_helpers: after each scenario, and first at the end
END {
    if ($$ == $MainPid) {
        local $?;
        stop_helpers();
        eval { clean() };
        warn "026-live-stream: cannot clean up: $@" if $@;
    }
}

use_scenarios(\&stop_helpers);

SophonTest::fixtures();
clean();

our $Config = <<'_EOC_';
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }

    location = /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_stream_heartbeat 1s;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("config", $Config) if !defined $block->config;
});


# --------------------------------------------------------------------------
# Documents, and the database's copy of them

# one event document, as text: fields in this order, every filter's field
# present (an event without person_type counts as 1: type => undef)
sub doc {
    my (%f) = @_;
    my @common;
    push @common, "\"person_type\":$f{type}" if defined $f{type};
    push @common, '"score":' . ($f{score} // 90),
                  "\"ep_info\":{\"device_id\":\"$f{cam}\","
                  . '"ep_type":"rtsp"}',
                  '"identity_id":"' . ($f{iid} // 'iid-0') . '"',
                  '"identity_name":"' . ($f{name} // 'Nobody') . '"',
                  '"group_id":"' . ($f{group} // 'g0') . '"',
                  '"identity_info":' . ($f{info} // '{}');
    push @common, '"recognize_face_attr":{"age":"30","feature":['
                  . $f{feature} . ']}' if defined $f{feature};

    return "{\"_id\":\"$f{id}\",\"timestamp\":$f{ts},\"common\":{"
           . join(',', @common) . '}' . ($f{extra} // '') . '}';
}

sub insert_sql {
    return "INSERT INTO sophon_events (doc) VALUES "
           . join(",\n", map { "('" . s/'/''/gr . "')" } @_) . ";\n";
}

sub insert { admin(insert_sql(@_)) }

# { _id => the stored document's text } (bytes) of the rows WHERE ...
sub stored {
    my ($where) = @_;
    my %d;
    my $out = admin("SELECT encode(convert_to(id, 'UTF8'), 'hex') || ' '"
                    . " || encode(convert_to(doc::text, 'UTF8'), 'hex')"
                    . " FROM sophon_events WHERE $where");
    for my $line (split /\n/, $out) {
        my ($id, $doc) = split / /, $line;
        $d{ pack 'H*', $id } = pack 'H*', $doc;
    }
    return \%d;
}

# the _id of an event or a deletion (bytes), from its data; undef if its
# data is not a JSON object with one
sub ev_id {
    my ($ev) = @_;
    my $d = eval { $Json->decode($ev->{data}) };
    return undef if ref $d ne 'HASH' || !defined $d->{_id};
    my $id = $d->{_id};
    utf8::encode($id);
    return $id;
}

# the block an event of this stored document must be, byte for byte: its
# data is the document on one line (each CR or LF byte a space), without
# its feature with with_feature=0
sub event_block {
    my ($id, $doc, $no_feature) = @_;
    (my $line = $doc) =~ tr/\r\n/  /;
    $line = SophonTest::line_without_feature($line) if $no_feature;
    return "id: $id\nevent: event\ndata: $line\n\n";
}

# '' or what is wrong with these events (all of them "event"s of stored
# documents, each block byte for byte)
sub check_blocks {
    my ($events, $stored, $no_feature) = @_;
    my @bad;
    for my $ev (@$events) {
        my $id = ev_id($ev);
        if ($ev->{event} ne 'event' || !defined $id || !exists $stored->{$id}) {
            push @bad, "not an event of a stored document: "
                       . substr($ev->{raw}, 0, 200);
            next;
        }
        push @bad, "event $id differs from its stored document:\n"
                   . substr($ev->{raw}, 0, 300) . "\n   expected\n"
                   . substr(event_block($ev->{id}, $stored->{$id},
                                        $no_feature), 0, 300)
            if $ev->{raw} ne event_block($ev->{id}, $stored->{$id},
                                         $no_feature);
    }
    return join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
}

# '' or why these ids are not what a stream's ids must be: each 16 hex
# digits and a hex cursor, each greater than the one before (and than
# $after, the cursor the stream resumed from)
sub check_ids {
    my ($after, @ids) = @_;
    my $prev = $after;
    for my $id (@ids) {
        return "no id" if !defined $id;
        return "an id that is not 16 hex digits and a hex cursor: $id"
            if $id !~ /\A[0-9a-f]{16}(?:[0-9a-f]{2})+\z/;
        return "an id not greater than the one before it: $prev then $id"
            if defined $prev && $id le $prev;
        $prev = $id;
    }
    return '';
}

# missing / repeated / unexpected, of the _ids of what came against the
# _ids wanted; '' when each wanted one came exactly once and nothing else
sub compare_sets {
    my ($got, $want) = @_;
    my %n;
    $n{$_}++ for @$got;
    my %want = map { $_ => 1 } @$want;
    my @missing = grep { !$n{$_} } sort @$want;
    my @dup = map { "$_ x$n{$_}" } grep { $n{$_} > 1 } sort keys %n;
    my @extra = grep { !$want{$_} } sort keys %n;
    my $few = sub { join ' ', @_[0 .. ($#_ > 9 ? 9 : $#_)] };
    my @why;
    push @why, @missing . " missing: " . $few->(@missing) if @missing;
    push @why, @dup . " more than once: " . $few->(@dup) if @dup;
    push @why, @extra . " not expected: " . $few->(@extra) if @extra;
    return join '; ', @why;
}

# a stream, once its 200 (or its error) and first block are in
sub open_stream {
    my ($qs, %opt) = @_;
    my $c = sse_open($qs, %opt) or die "cannot connect: $!\n";
    sse_read($c, 5, sub { defined $c->{status} && ($c->{status} != 200
                                                   || @{ $c->{blocks} }) });
    return $c;
}

# '' or what is wrong with the start of a stream's answer
sub check_start {
    my ($c) = @_;
    return "no response" if !defined $c->{status};
    return "status $c->{status}: $c->{body}" if $c->{status} != 200;
    my $h = $c->{headers};
    return "Content-Type: " . ($h->{'content-type'} // '-')
        if ($h->{'content-type'} // '') ne 'text/event-stream';
    return "not chunked" if ($h->{'transfer-encoding'} // '') ne 'chunked';
    return "Cache-Control: " . ($h->{'cache-control'} // '-')
        if ($h->{'cache-control'} // '') ne 'no-cache';
    return "the first block is not retry: 1000: "
           . ($c->{blocks}[0] // '(none)')
        if ($c->{blocks}[0] // '') ne "retry: 1000\n\n";
    return "bad framing: @{ $c->{bad} }" if @{ $c->{bad} };
    return '';
}

# the error JSON of a status
sub error_json {
    my ($http, $status, $message) = @_;
    return $Json->encode({ error => { code => $http * 100,
                                      message => $message,
                                      status => $status } });
}


# --------------------------------------------------------------------------
# TEST 3: bad cursors, and the list's filter errors

sub scenario_bad_cursors {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-c";

    # a real cursor, to tamper with
    my $s = open_stream("streams=$cam");
    is(check_start($s), '', "$name - a stream starts");
    insert(doc(id => 'c-1', ts => $T0 + 1, cam => $cam),
           doc(id => 'c-2', ts => $T0 + 2, cam => $cam));
    ok(sse_wait($s, 2, 5), "$name - it gets the two events");
    sse_close($s);
    my ($id1, $id2) = map { $_->{id} } @{ $s->{events} };
    my ($seq, $text) = ($id2 // '') =~ /\A([0-9a-f]{16})((?:[0-9a-f]{2})+)\z/;
    $text = pack 'H*', $text // '';
    my @f = split /\|/, $text, 5;
    ok(@f == 5 && $f[0] =~ /^F\d+:\d+:/, "$name - a cursor, to tamper"
                                          . " with: $text");

    my ($xmin, $xmax) = $f[0] =~ /^F(\d+):(\d+):/;
    $xmin //= 1;
    $xmax //= 1;
    my $hex = sub { $seq . unpack 'H*', $_[0] };
    my $f = sub {    # the cursor with fields replaced
        my (%r) = @_;
        my @g = @f;
        $g[$_] = $r{$_} for keys %r;
        return $hex->(join '|', @g);
    };

    my %bad = (
        'garbage' => 'garbage',
        'empty-ish' => '0',
        'the counter alone' => $seq,
        'a non-hex digit' => substr($id2, 0, 20) . 'g' . substr($id2, 21),
        'a non-hex counter' => 'z' . substr($id2, 1),
        'odd length' => substr($id2, 0, -1),
        'hex of nothing known' => $seq . unpack('H*', 'X1:1:|1:1:|1|1|x'),
        'xmin > xmax' => $f->(0 => 'F' . ($xmax + 5) . ":$xmax:"),
        'B: xmin > xmax' => $f->(1 => ($xmax + 5) . ":$xmax:"),
        'xmin 0' => $f->(0 => "F0:$xmax:"),
        'an xip beyond xmax' => $f->(0 => "F$xmin:" . ($xmin + 2) . ':'
                                          . ($xmin + 5)),
        'xips not ascending' => $f->(0 => "F$xmin:" . ($xmin + 9) . ':'
                                          . ($xmin + 5) . ',' . ($xmin + 3)),
        'a snapshot with junk' => $f->(0 => "F$xmin:${xmax}x:"),
        'an xid with a leading zero' => $f->(2 => "0$xmin"),
        'an xid not a number' => $f->(2 => "-$xmin"),
        'kind 2' => $f->(3 => '2'),
        'a field missing' => $hex->(join '|', @f[0 .. 3]),
        'an id not UTF-8' => $f->(4 => "c-\xff"),
        'an id with a NUL' => $f->(4 => "c-\0"),
        'history: ts nan' => $hex->("H$xmin:$xmax:|nan|c-1"),
        'history: ts 1e999' => $hex->("H$xmin:$xmax:|1e999|c-1"),
        'history: ts empty' => $hex->("H$xmin:$xmax:||c-1"),
    );

    for my $what (sort keys %bad) {
        my $cur = $bad{$what};
        my @how = (['Last-Event-ID', "streams=$cam", last_event_id => $cur],
                   ['last_event_id', "streams=$cam&last_event_id=$cur"],
                   ['since', "since=$cur&streams=$cam"]);
        for my $how (@how) {
            my ($param, $qs, %opt) = @$how;
            my $c = open_stream($qs, %opt, close => 1);
            sse_read($c, 5);
            is("$c->{status} $c->{body}",
               '400 ' . error_json(400, 'BAD_REQUEST',
                                   "$param: is not a cursor of this stream"),
               "$name - $what, as $param: 400 naming $param");
            sse_close($c);
        }
    }

    # the header first: a bad parameter is not read
    my $c = open_stream("streams=$cam&last_event_id=garbage",
                        last_event_id => $id1);
    is(check_start($c), '', "$name - Last-Event-ID wins over a bad"
                            . " last_event_id=");
    ok(sse_wait($c, 1, 5), "$name - ... and resumes from it");
    is(ev_id($c->{events}[0] // {}), 'c-2', "$name - ... with the event"
                                             . " after it");
    sse_close($c);

    # the list's errors, word for word
    for my $qs ('userType=9', 'userType=abc', 'score_min=1x',
                'datetime_gte=yesterday', 'name=a&name=b', 'groups=%5B%22a',
                'streams=%ff', 'room=%zz', 'score_max=') {
        my $l = http_send($qs) or die "connect: $!\n";
        http_pump([$l], 5);
        my $list = parse_http($l->{buf});
        my $c = open_stream($qs, close => 1);
        sse_read($c, 5);
        if ($list->{status} == 400) {
            is("$c->{status} $c->{body}", "400 $list->{body}",
               "$name - ?$qs: the list's 400, word for word");
        } else {
            is(check_start($c), '', "$name - ?$qs: no error for the list,"
                                    . " none for the stream");
        }
        sse_close($c);
    }
}


# --------------------------------------------------------------------------
# TEST 4: live inserts, deletes, updates, the heartbeat

sub scenario_live {
    my ($block) = @_;
    my $name = $block->name;
    my ($a, $b) = ("$Cam-a", "$Cam-b");

    # before the start: never sent as an event
    insert(doc(id => 'a-before', ts => $T0 + 100, cam => $a));

    my $all = open_stream('');
    my $sa = open_stream("streams=$a");
    my $sb = open_stream("streams=$b");
    is(check_start($_), '', "$name - a stream starts: ?$_->{qs}")
        for $all, $sa, $sb;

    # one at a time: each arrives within a second of its commit
    my (@late, @took);
    for my $k (1 .. 5) {
        insert(doc(id => "a-$k", ts => $T0 + 100 + $k, cam => $a),
               ($k % 2 ? doc(id => "b-$k", ts => $T0 + 100 + $k, cam => $b)
                       : ()));
        my $committed = now();
        sse_wait($sa, $k, 3);
        my $ev = $sa->{events}[$k - 1];
        my $took = $ev ? $ev->{at} - $committed : 99;
        push @late, sprintf "a-$k %.3f s", $took if $took >= 1;
        push @took, sprintf '%.3f', $took;
        Time::HiRes::sleep(0.1);
    }
    diag("$name: each insert came after its commit in: @took s");
    is("@late", '', "$name - each insert arrives within a second of its"
                    . " commit");

    # an _id with a quote, a backslash, a control character and UTF-8
    my $odd = '{"_id":"a-odd \"q\\\\ \\u0001 \\u00e9 ' . "\x{e9}"
              . '","timestamp":' . ($T0 + 110) . ',"common":{"ep_info":'
              . '{"device_id":"' . $a . '"},"identity_name":"x",'
              . '"identity_id":"y","score":1,"group_id":"g"}}';
    utf8::encode($odd);
    insert($odd);
    my $odd_id = pack 'H*', admin("SELECT encode(convert_to(id, 'UTF8'),"
                                  . " 'hex') FROM sophon_events"
                                  . " WHERE id LIKE 'a-odd%'");
    is($odd_id, "a-odd \"q\\ \x01 \xc3\xa9 \xc3\xa9", "$name - the odd _id"
                                                      . " as stored");

    # the documents as they are before the deletes and the update
    my $before = stored("device_id IN ('$a', '$b')");

    # deletes (one of them of an event never sent: a-before), an update
    admin("DELETE FROM sophon_events WHERE id IN ('a-2', 'a-before')");
    admin("DELETE FROM sophon_events WHERE id = 'b-1'");
    admin("UPDATE sophon_events SET doc = '"
          . doc(id => 'a-3', ts => $T0 + 103, cam => $a, score => 33,
                extra => ',"updated":  true')
          . "' WHERE id = 'a-3'");
    my $after = stored("device_id IN ('$a', '$b')");
    admin("DELETE FROM sophon_events WHERE id LIKE 'a-odd%'");

    sse_read([$all, $sa, $sb], 5, sub {
        @{ $sa->{events} } >= 10 && @{ $sb->{events} } >= 4
        && @{ $all->{events} } >= 14
    });
    sse_read([$all, $sa, $sb], 1);

    # what each must get, transaction by transaction (the rows of one may
    # come in any order)
    my %want = (
        $sa => [ map({ ["event a-$_"] } 1 .. 5), ["event $odd_id"],
                 ['deleted a-2', 'deleted a-before'], ['event a-3'],
                 ["deleted $odd_id"] ],
        $sb => [ ['event b-1'], ['event b-3'], ['event b-5'],
                 ['deleted b-1'] ],
        $all => [ (map { [ "event a-$_", $_ % 2 ? "event b-$_" : () ] } 1 .. 5),
                  ["event $odd_id"], ['deleted a-2', 'deleted a-before'],
                  ['deleted b-1'], ['event a-3'], ["deleted $odd_id"] ],
    );

    for my $c ($sa, $sb, $all) {
        my $qs = $c->{qs} eq '' ? '(no filter)' : "?$c->{qs}";
        my @got = map { "$_->{event} " . (ev_id($_) // '?') } @{ $c->{events} };

        is(by_transaction(\@got, $want{$c}), '', "$name - $qs: exactly its"
                                                 . " inserts, deletes and"
                                                 . " update, in commit order");
        is(check_ids(undef, map { $_->{id} } @{ $c->{events} }), '',
           "$name - $qs: the ids increase");

        # each event is the stored document: as it was, then as updated
        my @events = grep { $_->{event} eq 'event' } @{ $c->{events} };
        my ($update) = grep { ev_id($_) eq 'a-3' } reverse @events;
        is(check_blocks([ grep { $_ != ($update // 0) } @events ], $before)
           . check_blocks([ $update // () ], $after), '',
           "$name - $qs: each event is its stored document, byte for byte");

        my @bad = grep {
            my $d = eval { $Json->decode($_->{data}) };
            $_->{raw} !~ /\Aid: [0-9a-f]+\nevent: deleted\n/
            || $_->{raw} !~ /\ndata: \{"_id":"[^\n]*"\}\n\n\z/
            || ($_->{raw} =~ tr/\n//) != 4
            || ref $d ne 'HASH' || join(',', keys %$d) ne '_id'
        } grep { $_->{event} eq 'deleted' } @{ $c->{events} };
        is(scalar(@bad), 0, "$name - $qs: each deletion is id, event:"
                            . " deleted, data {\"_id\":...} alone")
            or diag($bad[0]{raw});
    }

    # two streams leave (one with a reset): the third goes on, on the same
    # connection and worker
    my @workers = worker_pids();
    sse_close($sb);
    sse_close($all, rst => 1);
    Time::HiRes::sleep(0.3);
    my $had = @{ $sa->{events} };
    insert(doc(id => 'a-6', ts => $T0 + 106, cam => $a));
    sse_wait($sa, $had + 1, 3);
    is(ev_id($sa->{events}[$had] // {}) // '-', 'a-6', "$name - when two"
       . " streams leave, the third goes on");
    ok(!$sa->{eof}, "$name - ... on its connection");
    is(join(' ', worker_pids()), "@workers", "$name - ... in the same"
                                             . " worker");

    # idle: a heartbeat every second (a comment, or an id alone where the
    # stream moved), and nothing else
    my $start = now();
    my $blocks = @{ $sa->{blocks} };
    sse_read($sa, 3.3);
    my @at = @{ $sa->{block_at} }[$blocks .. $#{ $sa->{block_at} }];
    my @gaps = map { $at[$_] - ($_ ? $at[$_ - 1] : $start) } 0 .. $#at;
    diag(sprintf "$name: idle for 3.3 s: heartbeats after %s s", join ', ',
         map { sprintf '%.2f', $_ } @gaps);
    my @beats = @{ $sa->{blocks} }[$blocks .. $#{ $sa->{blocks} }];
    my @places = grep { /^id: [0-9a-f]+\n\n\z/ } @beats;
    ok(@beats >= 3 && max(@gaps) < 1.75, "$name - idle, a heartbeat"
       . " about every second (" . @beats . ")");
    is_deeply([ grep { $_ ne ":\n\n" && !/^id: [0-9a-f]+\n\n\z/ } @beats ],
              [], "$name - ... each a block \":\" alone, or an id alone"
                  . " (where the stream stands)");

    # an id alone is a cursor: a client that resumes from it gets what
    # came after, and nothing before
    my ($place) = @places ? $places[-1] =~ /^id: ([0-9a-f]+)/ : ();
    if (defined $place) {
        my $r = open_stream("streams=$a", last_event_id => $place);
        insert(doc(id => 'a-7', ts => $T0 + 107, cam => $a));
        sse_wait($r, 1, 3);
        sse_read($r, 0.5);
        is(join(' ', map { ev_id($_) // '?' } @{ $r->{events} }), 'a-7',
           "$name - resumed from an id alone: the next event, and nothing"
           . " before it");
        sse_close($r);
    }

    sse_close($_) for $all, $sa, $sb;
}

# '' when @$got is the transactions of @$want in order, each transaction's
# rows in any order
sub by_transaction {
    my ($got, $want) = @_;
    my $i = 0;
    for my $t (@$want) {
        my @g = @$got[$i .. $i + $#$t];
        $i += @$t;
        next if join("\0", sort map { $_ // '(end)' } @g)
                eq join("\0", sort @$t);
        return "got " . join(', ', @$got) . "\n   expected "
               . join(', ', map { '(' . join(', ', @$_) . ')' } @$want);
    }
    return $i == @$got ? '' : "more than expected: "
                              . join(', ', @$got[$i .. $#$got]);
}


# --------------------------------------------------------------------------
# TEST 5: the filters

our @FilterQueries = (
    "streams=$Cam-f1",
    'streams=' . SophonTest::uri("[\"$Cam-f1\",\"$Cam-f2\"]"),
    "streams=$Cam-f3&streams=$Cam-f2&userType=2,5",
    'userType=4',
    'score_min=85&score_max=95',
    'name=ALI',
    'name=50%25',
    'identity_id=iid-7',
    'room=R101',
    'groups[]=g1&groups[]=g2',
    'datetime_lte=' . ($T0 + 220),
    "streams=$Cam-f2&userType=1&name=a",
    "with_feature=0&streams=$Cam-f3",
    "streams=$Cam-f3",
);

sub filter_docs {
    my @names = ('Alice', 'Kalina', 'Bob', '50% Off', '5000 Cats', 'zed_');
    my @docs;
    for my $j (0 .. 47) {
        my $type = $j % 7 == 0 ? undef : 1 + $j % 5;
        my $room = "R10" . $j % 3;
        my $info = ($type // 1) == 4 ? '{}'
                 : $j % 2 ? "{\"ext_info\":{\"room\":\"$room\"}}"
                 : "{\"room\":\"$room\",\"name\":\"n$j\"}";
        push @docs, doc(id => sprintf('f-%02d', $j), ts => $T0 + 200 + $j,
                        cam => "$Cam-f" . (1 + $j % 3), type => $type,
                        score => 70 + ($j * 7) % 30 + ($j % 4) * 0.25,
                        iid => 'iid-' . $j % 9,
                        name => ($type // 1) == 4 ? '' : $names[$j % @names],
                        group => 'g' . $j % 4, info => $info,
                        feature => $j % 3 == 2 ? join(',', map { $_ / 8 - 0.5 }
                                                           1 .. 8)
                                               : undef,
                        extra => $j == 5 ? ",\n\"note\":\r\"two lines\"\n"
                                         : '');
    }
    return @docs;
}

sub scenario_filters {
    my ($block) = @_;
    my $name = $block->name;

    my @s = map { open_stream($_) } @FilterQueries;
    is(check_start($_), '', "$name - a stream starts: ?$_->{qs}") for @s;

    # four transactions of twelve
    my @docs = filter_docs();
    admin(join '', map { insert_sql(@docs[$_ * 12 .. $_ * 12 + 11]) } 0 .. 3);

    my $stored = stored("device_id LIKE '$Cam-f%'");
    is(scalar keys %$stored, 48, "$name - 48 events stored");

    my %want;
    for my $c (@s) {
        my $q = SophonTest::parse_query($c->{qs});
        $want{$c} = [ sort grep {
            SophonTest::matches($Json->decode($stored->{$_}), $q)
        } keys %$stored ];
    }

    sse_read(\@s, 5, sub { !grep { @{ $_->{events} } < @{ $want{$_} } } @s });
    sse_read(\@s, 1);

    for my $c (@s) {
        my $n = @{ $want{$c} };
        ok($n > 0 && $n < 48, "$name - ?$c->{qs}: $n of the 48 match")
            if $c->{qs} !~ /^datetime_lte/;
        is(compare_sets([ map { ev_id($_) // '?' } @{ $c->{events} } ],
                        $want{$c}), '',
           "$name - ?$c->{qs}: exactly the matching events");
        is(check_blocks($c->{events}, $stored,
                        $c->{qs} =~ /with_feature=0/), '',
           "$name - ?$c->{qs}: each its stored document, byte for byte");
        is(check_ids(undef, map { $_->{id} } @{ $c->{events} }), '',
           "$name - ?$c->{qs}: the ids increase");
    }

    sse_close($_) for @s;
}


# --------------------------------------------------------------------------
# TEST 6: the past first, from datetime_gte

sub scenario_history {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-h";
    my ($gte, $lte) = ($T0 + 50005, $T0 + 50030);
    my $qs = "datetime_gte=$gte&datetime_lte=$lte&streams=$cam&userType=1,2";

    # 600 past events, 3 a timestamp, _ids in another order than time; a
    # few after datetime_lte, and some of another camera
    my @past;
    for my $j (0 .. 599) {
        push @past, doc(id => sprintf('h-%05d', ($j * 7919) % 10007),
                        ts => $T0 + 50000 + int($j / 3) * 0.1,
                        cam => $cam, type => 1 + $j % 3);
    }
    push @past, map { doc(id => "h-late-$_", ts => $T0 + 50031 + $_,
                          cam => $cam, type => 1) } 1 .. 5;
    push @past, map { doc(id => "h-other-$_", ts => $T0 + 50010 + $_,
                          cam => "$Cam-h2", type => 1) } 1 .. 5;
    insert(@past);

    # writers race the start: 20 events after all the past ones, 5 that
    # do not match, committed one by one while the stream reads the past
    my $race = start_clients(1, sub {
        my $sql = '';
        for my $k (0 .. 24) {
            my $ts = $k < 20 ? $T0 + 50020 + $k * 0.1 : $T0 + 50040 + $k;
            $sql .= insert_sql(doc(id => sprintf('h-race-%02d', $k), ts => $ts,
                                   cam => $cam, type => $k % 7 == 3 ? 3 : 1))
                    . "SELECT pg_sleep(0.03);\n";
        }
        my ($ok, $out, $err) = SophonTest::psql_script($sql);
        return { failures => $ok ? [] : [ $err ] };
    });

    my $s = open_stream($qs);
    is(check_start($s), '', "$name - the stream starts");
    wait_clients($race, 20);
    my $res = stop_clients($race, 2);
    is("@{ $res->{failures} }", '', "$name - the racing writer wrote");

    my $stored = stored("device_id LIKE '$cam%'");
    my $q = SophonTest::parse_query($qs);
    my @want = sort { by_time($stored, $a, $b) }
               grep { SophonTest::matches($Json->decode($stored->{$_}), $q) }
               keys %$stored;
    diag("$name: " . @want . " past and racing events match");

    sse_wait($s, scalar @want, 10);
    sse_read($s, 1);

    my @got = map { ev_id($_) // '?' } @{ $s->{events} };
    is(first_diff(\@got, \@want), '', "$name - the past, then the racing"
                                      . " writes, exactly, by (timestamp,"
                                      . " _id) ascending");
    is(check_blocks($s->{events}, $stored), '',
       "$name - each its stored document, byte for byte");
    is(check_ids(undef, map { $_->{id} } @{ $s->{events} }), '',
       "$name - the ids increase");

    # then live: matching or not
    my @live = map { doc(id => "h-live-$_->[0]", ts => $T0 + $_->[1],
                         cam => $cam, type => $_->[2]) }
               [1, 50006, 2], [2, 50004, 2], [3, 50029, 3], [4, 50029, 1],
               [5, 50031, 1];
    insert($_) for @live;
    my $n = @got;
    sse_wait($s, $n + 2, 5);
    sse_read($s, 1);
    $stored = stored("device_id LIKE '$cam%'");
    my @more = map { ev_id($_) // '?' }
               @{ $s->{events} }[$n .. $#{ $s->{events} }];
    is("@more", 'h-live-1 h-live-4', "$name - then the live ones that match,"
                                     . " in commit order");
    is(check_blocks($s->{events}, $stored), '',
       "$name - each its stored document, byte for byte");
    sse_close($s);

    # resumes inside the past: the rest of it, then everything after
    my @all = (@want, 'h-live-1', 'h-live-4');
    my @ids = map { $_->{id} } @{ $s->{events} };
    my @r;
    for my $at (0, 150, 151, $#want) {
        for my $how ('header', 'since') {
            my $c = open_stream($how eq 'header' ? $qs : "$qs&since=$ids[$at]",
                                $how eq 'header'
                                    ? (last_event_id => $ids[$at]) : ());
            push @r, [ $c, $at, $how ];
        }
    }
    my $c = open_stream("$qs&last_event_id=$ids[$#all]");
    push @r, [ $c, $#all, 'last_event_id' ];

    sse_read([ map { $_->[0] } @r ], 10, sub {
        !grep { @{ $_->[0]{events} } < $#all - $_->[1] } @r
    });
    sse_read([ map { $_->[0] } @r ], 1);

    for my $r (@r) {
        my ($c, $at, $how) = @$r;
        my @got = map { ev_id($_) // '?' } @{ $c->{events} };
        is(check_start($c), '', "$name - resumed from event $at ($how)");
        is(first_diff(\@got, [ @all[$at + 1 .. $#all] ]), '',
           "$name - ... exactly the " . ($#all - $at) . " after it, in order");
        is(check_ids($ids[$at], map { $_->{id} } @{ $c->{events} }), '',
           "$name - ... with ids greater than the cursor");
        is(check_blocks($c->{events}, $stored), '',
           "$name - ... each its stored document, byte for byte");
        sse_close($c);
    }
}

sub by_time {
    my ($stored, $x, $y) = @_;
    my $tx = $Json->decode($stored->{$x})->{timestamp};
    my $ty = $Json->decode($stored->{$y})->{timestamp};
    return $tx <=> $ty || $x cmp $y;
}

# '' when the lists are equal, else where they first differ
sub first_diff {
    my ($got, $want) = @_;
    for my $i (0 .. max($#$got, $#$want)) {
        my ($g, $w) = ($got->[$i] // '(end)', $want->[$i] // '(end)');
        return "at $i: got $g, expected $w (got " . @$got . ", expected "
               . @$want . ")" if $g ne $w;
    }
    return '';
}


# --------------------------------------------------------------------------
# TEST 7: resume under writers that commit out of order

our $Rounds = 5;
our $Writers = 8;

# a writer's script: it waits $begin s, BEGINs and INSERTs at once (its
# xid is taken), inserts more half way, COMMITs at $commit s
sub writer_script {
    my ($r, $w, $begin, $commit, @docs) = @_;
    my $hold = ($commit - $begin) / 2;
    my $half = int(@docs / 2);
    return "SELECT pg_sleep($begin);\nBEGIN;\n"
           . insert_sql(@docs[0 .. $half - 1])
           . "SELECT 'xid $r $w ' || pg_current_xact_id();\n"
           . "SELECT pg_sleep($hold);\n"
           . insert_sql(@docs[$half .. $#docs])
           . "SELECT pg_sleep($hold);\nCOMMIT;\n"
           . "SELECT 'committed $r $w ' || extract(epoch FROM"
           . " clock_timestamp());\n";
}

# a document of camera d$dev: each writer its own camera and identity, so
# that no two writers' transactions wait for each other on the counters
# (sql/schema.sql: they lock them row by row; two transactions that share
# counters and write them in two statements can deadlock)
sub resume_doc {
    my ($id, $k, $dev) = @_;
    return doc(id => $id, ts => $T0 + 10000 + $k * 0.01, cam => "$Cam-d$dev",
               type => 1 + $k % 5, score => 80 + $k % 20,
               iid => "iid-d$dev", name => "Writer $dev");
}

our $ResumeQs = 'streams=' . join ',', map { "$Cam-d$_" } 1 .. 12;
our $ResumeWhere = "device_id LIKE '$Cam-d%'";

# the rounds, each writer committing at its place in $orders->[round]
# (writer numbers, first to commit first); returns the sessions' outputs
sub resume_writers {
    my ($orders) = @_;
    my (@out, @failures);
    my $k = 0;

    for my $r (1 .. $Rounds) {
        my @order = @{ $orders->[$r - 1] };
        my %slot = map { $order[$_] => $_ } 0 .. $#order;
        my @scripts;

        for my $w (1 .. $Writers) {
            my $n = ($r == 2 && $w == 3) ? 300 : 8;
            my @docs = map { resume_doc(sprintf('d-%d-%d-%03d', $r, $w, $_),
                                        $k++, $w) } 1 .. $n;
            push @scripts, [ writer_script($r, $w, 0.05 * ($w - 1),
                                           0.45 + 0.12 * $slot{$w}, @docs) ];
        }

        # a transaction that rolls back, and one whose savepoint does
        push @scripts, [
            "BEGIN;\n"
            . insert_sql(map { resume_doc("rb-$r-$_", $k++, 10) } 1 .. 5)
            . "SELECT pg_sleep(0.7);\nROLLBACK;\n" ];

        if ($r == 4) {
            push @scripts, [
                "BEGIN;\n" . insert_sql(resume_doc("d-sp-1", $k++, 11))
                . "SAVEPOINT s;\n"
                . insert_sql(map { resume_doc("rb-sp-$_", $k++, 11) } 1 .. 3)
                . "SELECT pg_sleep(0.5);\nROLLBACK TO SAVEPOINT s;\n"
                . insert_sql(resume_doc("d-sp-2", $k++, 11))
                . "SELECT pg_sleep(0.3);\nCOMMIT;\n" ];
        }

        # round 3: one event a transaction meanwhile
        if ($r == 3) {
            push @scripts, [ join '', map {
                insert_sql(resume_doc("d-ac-$_", $k++, 9))
                . "SELECT pg_sleep(0.1);\n" } 1 .. 10 ];
        }

        for my $res (SophonTest::psql_sessions(@scripts)) {
            my ($ok, $stdout, $stderr) = @$res;
            push @failures, $stderr // 'no result' if !$ok;
            push @out, grep { /^(?:xid|committed) / } split /\n/, $stdout // '';
        }
    }

    return { out => \@out, failures => \@failures };
}

sub scenario_resume {
    my ($block) = @_;
    my $name = $block->name;
    my $qs = $ResumeQs;

    my $seed = $ENV{SOPHON_026_SEED} // int(rand(2**31));
    diag("$name: SOPHON_026_SEED=$seed");
    srand($seed);

    my @conns = ({ c => open_stream($qs), after => undef, how => 'start' });
    is(check_start($conns[0]{c}), '', "$name - the stream starts");

    # round 1: the writer that begins first commits last; then any order
    my @orders = map { $_ == 1 ? [ reverse 1 .. $Writers ]
                               : [ shuffle 1 .. $Writers ] } 1 .. $Rounds;
    my $set = start_clients(1, sub { resume_writers(\@orders) });
    my $writer = $set->{pids}[0];
    my ($last, $first);
    my %how;
    my @how = qw(header last_event_id since header+older);
    my $deadline = now() + 60;

    while (now() < $deadline) {
        my $conn = $conns[-1];
        my $c = $conn->{c};

        if (waitpid($writer, POSIX::WNOHANG()) != 0) {
            # the writers are done: read everything, and a quiet second
            my $want = stored($ResumeWhere);
            my $have = sub {
                my %got = map { (ev_id($_) // '?') => 1 }
                          map { @{ $_->{c}{events} }[0 .. $_->{kept} - 1] }
                          @conns[0 .. $#conns - 1];
                $got{ ev_id($_) // '?' } = 1 for @{ $c->{events} };
                !grep { !$got{$_} } keys %$want;
            };
            sse_read($c, 10, $have);
            sse_quiet($c, 1, 3);
            $conn->{kept} = @{ $c->{events} };
            last;
        }

        # read up to k events or t seconds; a client that stops there
        my $k = 1 + int rand 40;
        my $t = rand 0.8;
        sse_read($c, $t, sub { @{ $c->{events} } >= $k });
        my $n = @{ $c->{events} };
        $n = $k if $n > $k;
        $conn->{kept} = $n;

        # a stream opened without a cursor starts now: never leave it
        # before its first event
        next if !defined $last && $n == 0;

        $last = $c->{events}[$n - 1]{id} if $n;
        $first //= $c->{events}[0]{id};
        sse_close($c, rst => rand() < 0.3);
        Time::HiRes::sleep(rand 0.3) if rand() < 0.5;

        my $how = $how[ int rand @how ];
        $how{$how}++;
        my %opt;
        my $q = $qs;
        if ($how eq 'header') {
            %opt = (last_event_id => $last);
        } elsif ($how eq 'last_event_id') {
            $q = "last_event_id=$last&$qs";
        } elsif ($how eq 'since') {
            $q = "$qs&since=$last";
        } else {
            # an older cursor in the query, the last one in the header
            %opt = (last_event_id => $last);
            $q = "$qs&last_event_id=$first";
        }
        push @conns, { c => sse_open($q, %opt), after => $last, how => $how };
        die "cannot connect: $!\n" if !$conns[-1]{c};
    }

    $_->{kept} //= 0 for @conns;
    my $res = stop_clients($set, 60);
    is(scalar @{ $res->{failures} || [] }, 0, "$name - every writer's"
                                              . " session ran")
        or diag(join "\n", @{ $res->{failures} });

    # the commits came in another order than the transactions began
    my (%xid, %commit);
    for (@{ $res->{out} || [] }) {
        $xid{"$1 $2"} = $3 if /^xid (\d+) (\d+) (\d+)/;
        $commit{"$1 $2"} = $3 if /^committed (\d+) (\d+) (\S+)/;
    }
    my $swapped = 0;
    for my $x (keys %xid) {
        for my $y (keys %xid) {
            my ($rx, $ry) = map { (split / /)[0] } $x, $y;
            $swapped++ if $rx == $ry && $xid{$x} < $xid{$y}
                          && ($commit{$x} // 0) > ($commit{$y} // 0) + 0.05;
        }
    }
    diag("$name: " . @conns . " connections; " . join(', ', map {
         "$_ $how{$_}" } sort keys %how) . "; $swapped pairs of"
         . " transactions committed in the other order than they began");
    ok($swapped >= $Rounds, "$name - transactions committed out of order"
                            . " ($swapped pairs)");
    is(scalar(grep { ($how{$_} // 0) == 0 } @how), 0,
       "$name - each way of resuming was used");
    ok(@conns >= 20, "$name - the client left and resumed at least 20"
                     . " times (" . @conns . ")");

    my $stored = stored($ResumeWhere);
    my @kept = map { @{ $_->{c}{events} }[0 .. $_->{kept} - 1] } @conns;
    my @why;
    for my $conn (@conns) {
        my $c = $conn->{c};

        # one the client left before its answer came: a cut like another
        next if !defined $c->{status} && $c->{closed} && $conn != $conns[-1];

        my $why = check_start($c);
        $why ||= check_ids($conn->{after},
                           map { $_->{id} } @{ $c->{events} });
        push @why, "resumed ($conn->{how}) from "
                   . ($conn->{after} // 'nothing') . ": $why" if $why;
    }
    is($why[0] // '', '', "$name - each connection is a 200 stream whose"
                          . " ids increase from its cursor"
                          . (@why ? ' (' . @why . ' not)' : ''));
    is(check_ids(undef, map { $_->{id} } @kept), '',
       "$name - the ids increase over every resume");
    is(check_blocks(\@kept, $stored), '',
       "$name - each event is its stored document, byte for byte");

    my @got = map { ev_id($_) // '?' } @kept;
    my @want = keys %$stored;
    ok(@want >= 600, "$name - " . @want . " events committed");
    is(compare_sets(\@got, \@want), '', "$name - every committed event"
                                        . " came exactly once: no gap, no"
                                        . " duplicate");
    is(join(' ', grep { /^rb-/ } @got), '', "$name - none of a rolled back"
                                            . " transaction or savepoint");

    # resumes from inside a burst committed at once
    my $s = open_stream($qs, last_event_id => $kept[-1]{id});
    is(check_start($s), '', "$name - a stream resumes after the last one");
    sse_read($s, 1);
    is(scalar @{ $s->{events} }, 0, "$name - ... with nothing left to send");

    for my $burst ([10, 2], [300, 2], [300, 269]) {
        my ($n, $at) = @$burst;
        my $base = @{ $s->{events} };
        insert(map { resume_doc(sprintf("d-burst$n-$at-%03d", $_), $_, 12) }
               1 .. $n);
        sse_wait($s, $base + $n, 10);
        my @b = @{ $s->{events} }[$base .. $#{ $s->{events} }];
        my $stored = stored($ResumeWhere);
        is(compare_sets([ map { ev_id($_) // '?' } @b ],
                        [ grep { /^d-burst$n-$at-/ } keys %$stored ]), '',
           "$name - a burst of $n in one transaction comes whole");
        is(check_blocks(\@b, $stored), '', "$name - ... byte for byte");

        my $cur = $b[$at]{id};
        my @r = (open_stream($qs, last_event_id => $cur),
                 open_stream("$qs&last_event_id=$cur"),
                 open_stream("since=$cur&$qs"));
        sse_read(\@r, 10, sub {
            !grep { @{ $_->{events} } < $n - $at - 1 } @r
        });
        sse_read(\@r, 1);
        my @after = map { ev_id($_) } @b[$at + 1 .. $#b];
        for my $i (0 .. 2) {
            my @got = map { ev_id($_) // '?' } @{ $r[$i]{events} };
            my $how = (qw(Last-Event-ID last_event_id= since=))[$i];
            is(compare_sets(\@got, \@after), '',
               "$name - resumed ($how) from event " . ($at + 1) . " of $n:"
               . " exactly the " . ($n - $at - 1) . " after it");
            is(first_diff(\@got, \@after), '', "$name - ... in the order"
                                               . " the stream sent them");
            is(check_ids($cur, map { $_->{id} } @{ $r[$i]{events} }), '',
               "$name - ... ids greater than the cursor");
            sse_close($r[$i]);
        }
    }
    sse_close($s);
    sse_close($_->{c}) for @conns;
}


# --------------------------------------------------------------------------
# TEST 8: sophon_events_max_streams 2

sub scenario_max_streams {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-m";

    my @s = map { open_stream("streams=$cam&_=$_") } 1 .. 2;
    is(check_start($_), '', "$name - stream $_->{qs} starts") for @s;

    my $third = open_stream("streams=$cam&_=3", close => 1);
    sse_read($third, 5);
    is("$third->{status} " . ($third->{headers}{'content-type'} // '')
       . " $third->{body}",
       '503 application/json; charset=utf-8 '
       . error_json(503, 'SERVICE_UNAVAILABLE',
                    'sophon_events_max_streams streams are open in this'
                    . ' worker'),
       "$name - a third is a 503");

    my ($code) = full_request('per_page=1&datetime_gte=1500000000', 5);
    is($code, '', "$name - the list still answers");

    insert(doc(id => 'm-1', ts => $T0 + 300, cam => $cam));
    sse_read(\@s, 5, sub { !grep { !@{ $_->{events} } } @s });
    is(join(' ', map { ev_id($_->{events}[0] // {}) // '-' } @s), 'm-1 m-1',
       "$name - the two streams get the next event");

    # one leaves: there is room again
    sse_close($s[0]);
    my ($room, $took) = wait_until(5, 0.2, sub {
        my $c = open_stream("streams=$cam&_=4");
        my $ok = ($c->{status} // 0) == 200;
        sse_close($c) if !$ok;
        $s[0] = $c if $ok;
        $ok;
    });
    ok($room, sprintf "$name - once one is closed, a new one starts (%.1f s)",
       $took);
    insert(doc(id => 'm-2', ts => $T0 + 301, cam => $cam));
    sse_read(\@s, 5, sub {
        !grep { !grep { ev_id($_) eq 'm-2' } @{ $_->{events} } } @s
    });
    is(join(' ', map { ev_id($_->{events}[-1] // {}) // '-' } @s), 'm-2 m-2',
       "$name - both streams get the next event");
    sse_close($_) for @s;
}


# --------------------------------------------------------------------------
# TEST 12: a pool with no connection to spare (connections=2: one listens,
# the other held by a list request that waits on a table lock), its queue
# full (queue=0) or too slow (queue_timeout=1s): a woken stream waits a
# second and reads again, it is not cut; once the connection is free its
# events come

sub scenario_busy_pool {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-p";
    my $pos = (-s errlog()) // 0;
    my @ports = listen_ports('reuseport');
    my $i = 0;

    for my $port (@ports) {
        my $what = $i++ ? "queue_timeout=1s" : "queue=0";
        my $s = open_stream("streams=$cam", port => $port);
        is(check_start($s), '', "$name ($what) - the stream starts");
        sse_read($s, 1);

        lock_table(15);

        # the pool's other connection: a list request, waiting on the lock
        my $list = http_send('per_page=1', port => $port)
            or die "cannot connect: $!\n";
        Time::HiRes::sleep(0.5);

        # a notification wakes the stream: no connection for it
        admin("NOTIFY sophon_events");
        my ($waited) = wait_until(6, 0.2, sub {
            grep { /a stream waits a second/ } @{ log_since(errlog(), $pos) }
        });
        ok($waited, "$name ($what) - the stream waits for a connection,"
                    . " and the log says so");
        sse_read($s, 1.5);
        ok(!$s->{eof}, "$name ($what) - ... and is not cut");

        unlock_table();
        http_pump([$list], 10);
        like($list->{buf}, qr{^HTTP/1\.1 200 }, "$name ($what) - the list"
                                                 . " request is answered");

        insert(doc(id => "p-$i", ts => $T0 + 700 + $i, cam => $cam));
        sse_wait($s, 1, 5);
        is(join(' ', map { ev_id($_) // '?' } @{ $s->{events} }), "p-$i",
           "$name ($what) - the next event comes");
        sse_close($s);
        $pos = (-s errlog()) // 0;
    }

    is(scalar @ports, 2, "$name - both pools were tried");
}


# --------------------------------------------------------------------------
# TEST 9: 200 idle streams

our $Idle = 200;

sub scenario_idle {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-i";
    my $pool = 4;

    # the module's backends, counted every 0.1 s while something waits
    my ($peak, $next) = (0, 0);
    my $count = sub {
        return if now() < $next;
        my $n = @{ module_backends() };
        $peak = $n if $n > $peak;
        $next = now() + 0.1;
    };

    my @s;
    for my $i (1 .. $Idle) {
        my $c = sse_open("streams=$cam&_=$i") or die "connect $i: $!\n";
        push @s, $c;
    }
    sse_read(\@s, 20, sub { $count->(); !grep { !@{ $_->{blocks} } } @s });
    is(scalar(grep { check_start($_) eq '' } @s), $Idle,
       "$name - $Idle streams start");

    sse_read(\@s, 1.5, sub { $count->(); 0 });
    ok($peak <= $pool + 1, "$name - $Idle streams opened and idle: at most"
                           . " $peak backends, the pool's $pool + 1")
        or diag(describe_backends(module_backends()));

    # the next event wakes them all: each reads, on the same few backends
    insert(doc(id => 'i-1', ts => $T0 + 400, cam => $cam));
    my $at = now();
    sse_read(\@s, 15, sub { $count->(); !grep { !@{ $_->{events} } } @s });
    my $got = grep { @{ $_->{events} } == 1
                     && ev_id($_->{events}[0]) eq 'i-1' } @s;
    is($got, $Idle, sprintf "$name - every stream gets the event (%.1f s)",
       now() - $at);
    my ($list) = full_request('per_page=1&datetime_gte=1500000000', 5);
    is($list, '', "$name - the list answers meanwhile");
    $next = 0;
    $count->();
    ok($peak <= $pool + 1, "$name - at most $peak backends all along");

    sse_close($_) for @s;
}


# --------------------------------------------------------------------------
# TEST 10: a client that does not read

sub scenario_slow {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-s";
    my $qs = "streams=$cam";
    my $pos = (-s errlog()) // 0;
    my $total = 400;

    my ($slow) = listen_ports('sndbuf=');
    my $c = sse_open($qs, rcvbuf => 4096, port => $slow)
        or die "cannot connect: $!\n";
    sse_read($c, 5, sub { @{ $c->{blocks} } });
    is(check_start($c), '', "$name - the stream starts");

    # 2 KB each: far more than the kernel's and the worker's buffers
    my $feature = join ',', map { sprintf '%.15f', sin $_ } 1 .. 100;
    my @docs = map { doc(id => sprintf('s-%03d', $_), ts => $T0 + 500 + $_,
                         cam => $cam, feature => $feature) } 1 .. $total;

    # the client reads the first few, then nothing
    insert(@docs[0 .. 99]);
    ok(sse_wait($c, 3, 5), "$name - the client reads its first events");
    insert(@docs[$_ * 100 .. $_ * 100 + 99]) for 1 .. 3;

    my ($cut) = wait_until(15, 0.2, sub {
        grep { /the client timed out/ } @{ log_since(errlog(), $pos) }
    });
    ok($cut, "$name - the stream waits for it, and is cut at send_timeout;"
             . " the log says why");

    sse_read($c, 10);
    ok($c->{eof} && !$c->{complete}, "$name - the connection ends, without"
                                     . " the last chunk");
    my $n = @{ $c->{events} };
    ok($n >= 3 && $n < $total, "$name - the client had $n of the $total"
                               . " events");

    my $r = open_stream($qs, last_event_id => $c->{last_id});
    sse_wait($r, $total - $n, 10);
    sse_read($r, 1);
    my $stored = stored("device_id = '$cam'");
    my @all = (@{ $c->{events} }, @{ $r->{events} });
    is(compare_sets([ map { ev_id($_) // '?' } @all ], [ keys %$stored ]), '',
       "$name - resumed from its last id, it has each of the $total once");
    is(check_blocks(\@all, $stored), '', "$name - byte for byte");
    is(check_ids(undef, map { $_->{id} } @all), '', "$name - the ids increase");
    sse_close($r);
}


# --------------------------------------------------------------------------
# TEST 11: reload, then graceful stop

sub scenario_reload {
    my ($block) = @_;
    my $name = $block->name;
    my $cam = "$Cam-r";
    my $qs = "streams=$cam";
    my $pos = (-s errlog()) // 0;
    my $master = master_pid() or die "no master pid\n";
    my ($worker) = worker_pids();

    my $s = open_stream($qs);
    is(check_start($s), '', "$name - the stream starts");

    # and one that nothing is written for
    my $idle = open_stream("streams=$cam-idle");
    is(check_start($idle), '', "$name - an idle stream starts");

    # one event every 30 ms around the reload
    my $set = start_clients(1, sub {
        my $sql = join '', map {
            insert_sql(doc(id => sprintf('r-%03d', $_), ts => $T0 + 600 + $_,
                           cam => $cam))
            . "SELECT pg_sleep(0.03);\n" } 1 .. 80;
        my ($ok, $out, $err) = SophonTest::psql_script($sql);
        return { failures => $ok ? [] : [ $err ] };
    });

    sse_read([$s, $idle], 1);
    my $hup = now();
    kill 'HUP', $master;
    sse_read([$s, $idle], 4);
    for my $c ($s, $idle) {
        my $what = $c == $s ? 'the stream' : 'the idle stream';
        ok($c->{complete}, sprintf "$name - the reload ends $what with its"
                                   . " last chunk (%.2f s after the HUP)",
           ($c->{complete} // now()) - $hup);
        ok(defined $c->{complete} && $c->{complete} - $hup < 2.5,
           "$name - ... within 2.5 s");
        is($c->{after} // '', '', "$name - ... and nothing after it");
        is("@{ $c->{bad} }", '', "$name - ... well framed");
    }
    my $n = @{ $s->{events} };
    ok($n > 0, "$name - it had $n events");

    # (a client that stays would keep the old worker)
    sse_close($idle);

    my $r = open_stream($qs, last_event_id => $s->{last_id});
    is(check_start($r), '', "$name - it resumes");
    my ($gone) = wait_until(5, 0.1, sub { !alive($worker) });
    ok($gone, "$name - the old worker is gone");
    my @new = worker_pids();
    ok(@new == 1 && $new[0] != $worker, "$name - a new worker (@new)");

    wait_clients($set, 20);
    my $res = stop_clients($set, 2);
    is("@{ $res->{failures} }", '', "$name - the writer wrote");

    my $stored = stored("device_id = '$cam'");
    sse_wait($r, 80 - $n, 10);
    sse_quiet($r, 1, 3);
    my @all = (@{ $s->{events} }, @{ $r->{events} });
    is(compare_sets([ map { ev_id($_) // '?' } @all ], [ keys %$stored ]), '',
       "$name - each of the 80 events written around the reload came once");
    is(check_blocks(\@all, $stored), '', "$name - byte for byte");
    is(check_ids(undef, map { $_->{id} } @all), '', "$name - the ids"
                                                    . " increase");
    ok(scalar(grep { /stream ended, nginx is shutting down/ }
                   @{ log_since(errlog(), $pos) }),
       "$name - the log says why the stream ended");

    # a graceful stop, the same
    my $quit = now();
    kill 'QUIT', $master;
    sse_read($r, 4);
    ok($r->{complete}, sprintf "$name - a graceful stop ends the idle stream"
                               . " with its last chunk (%.2f s)",
       ($r->{complete} // now()) - $quit);
    ok(defined $r->{complete} && $r->{complete} - $quit < 2.5,
       "$name - ... within 2.5 s");
    is("@{ $r->{bad} }", '', "$name - ... well framed");

    # (a client that stays would keep the worker)
    sse_close($r);
    my ($stopped, $took) = wait_until(10, 0.1, sub { !alive($master) });
    ok($stopped, sprintf "$name - nginx exits (%.1f s)", $took);

    my @lines = @{ log_since(errlog(), $pos) };
    is(scalar(grep { /exited on signal|exited with code [1-9]/ } @lines), 0,
       "$name - no worker died");
}

run_tests();

__DATA__

=== TEST 1: HEAD answers the stream's head and ends; POST is a 405 that allows GET and HEAD
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request eval
["HEAD /SophonFace/api/events/stream?streams=stream-cam-x",
 "POST /SophonFace/api/events/stream?streams=stream-cam-x\nx=1"]
--- error_code eval
[200, 405]
--- response_headers eval
["Content-Type: text/event-stream\nCache-Control: no-cache",
 "Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8"]
--- response_body eval
["",
 '{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}']
--- timeout: 5
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: a malformed filter or cursor in the query is a 400 before the stream starts
--- request eval
["GET /SophonFace/api/events/stream?userType=9",
 "GET /SophonFace/api/events/stream?score_min=abc",
 "GET /SophonFace/api/events/stream?last_event_id=garbage",
 "GET /SophonFace/api/events/stream?since=00000000000000000",
 "GET /SophonFace/api/events/stream?last_event_id=0000000000000000" . unpack('H*', 'F10:5:|5:5:|4|1|x')]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
['{"error":{"code":40000,"message":"userType: must be integers from 1 to 5","status":"BAD_REQUEST"}}',
 '{"error":{"code":40000,"message":"score_min: must be a number","status":"BAD_REQUEST"}}',
 '{"error":{"code":40000,"message":"last_event_id: is not a cursor of this stream","status":"BAD_REQUEST"}}',
 '{"error":{"code":40000,"message":"since: is not a cursor of this stream","status":"BAD_REQUEST"}}',
 '{"error":{"code":40000,"message":"last_event_id: is not a cursor of this stream","status":"BAD_REQUEST"}}']
--- timeout: 5
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: every tampered cursor is a 400 that names where it came from; the header wins; the list's filter errors
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: bad_cursors
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 4: live inserts within a second, deletes, updates, increasing ids, the heartbeat
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: live
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 5: the list's filters and with_feature=0: exactly the matching events, byte for byte
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: filters
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 6: datetime_gte: the past by (timestamp, _id) ascending, then live, with writers racing the start; resumes inside the past
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: history
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 7: writers commit out of order, the client leaves at random and resumes: every committed event exactly once; resumes from inside bursts
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: resume
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 8: sophon_events_max_streams 2: a third stream is a 503 while two are open
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }

    location = /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_max_streams 2;
        sophon_events_stream_heartbeat 1s;
    }
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: max_streams
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 9: 200 idle streams cost at most the pool's connections + 1 backends, and all get the next event
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- config
    sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=4;

    location = /SophonFace/api/events {
        sophon_events;
    }

    location = /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_stream_heartbeat 1s;
    }
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: idle
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 10: a client that does not read holds its stream back until send_timeout cuts it, and resumes from its last id
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 sndbuf=4k;

        location = /SophonFace/api/events/stream {
            sophon_events_stream;
            sophon_events_db "$TEST_NGINX_SOPHON_DB";
            sophon_events_buffers 2 4k;
            sophon_events_stream_heartbeat 1s;
            send_timeout 3s;
        }
    }
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }

    location = /SophonFace/api/events/stream {
        sophon_events_stream;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
        sophon_events_stream_heartbeat 1s;
    }
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: slow
--- timeout: 10
--- error_log
the client timed out
--- no_error_log
[alert]
[crit]
[emerg]
[error]



=== TEST 11: a reload ends the stream with its last chunk, the client resumes on the new worker and misses nothing; a graceful stop too
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: reload
--- timeout: 10
--- no_error_log
[alert]
[crit]
[emerg]
[error]
exited on signal



=== TEST 12: a pool with no connection to spare: a stream waits a second and reads again, it is not cut
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 reuseport;

        # one pool for both locations: one connection listens, one is left
        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2 queue=0;

        location = /SophonFace/api/events {
            sophon_events;
        }

        location = /SophonFace/api/events/stream {
            sophon_events_stream;
        }
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3 reuseport;

        sophon_events_db "$TEST_NGINX_SOPHON_DB" connections=2 queue=1
                         queue_timeout=1s;

        location = /SophonFace/api/events {
            sophon_events;
        }

        location = /SophonFace/api/events/stream {
            sophon_events_stream;
        }
    }
--- request
GET /SophonFace/api/events/stream?userType=9
--- error_code: 400
--- scenario: busy_pool
--- timeout: 30
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
