# vi:filetype=perl

# GET /SophonFace/api/events/stats: events per hour or per day (UTC), by
# camera and person type if asked, against an oracle of its own.
#
# The oracle is a plain GROUP BY over sophon_events (through psql, one
# statement for a whole batch of requests), written without the module's
# functions: an event's hour is the floor of the bigint floor(ts) divided
# by 3600, its day the floor of that hour divided by 24, both as exact
# integer floors; "stream" is the camera, null for an event without one
# (and for one whose camera is "": sql/schema.sql says the counts cannot
# tell them apart); rows ordered by start, camera ("C", null first), type.
# Each answer must be the oracle's JSON byte for byte, and its counts must
# add up to the list's total_count for the same filters (a second location
# of sophon_events in the same server).
#
# The windows: random ones over the fixtures' days; bounds on and a few
# ulps or microseconds either side of hours and days where events are
# (t/fixtures/hours.jsonl's, and this file's own, some of them before
# 1970); one bucket, a year, no bound, one bound, lte < gte; every
# group_by, both intervals, streams= and userType= in every list form,
# a camera that does not exist.
#
# This file's own events (ids "stats27-*") are in 1500000000..1500100000
# and -1000100000..-999900000, with cameras whose names JSON escapes, and
# a few far away (hour +-2^40, +-1e16 s, -5e18 s, -9.1e18 s); inserted by
# five sessions when it starts, so that their counts are in several slots,
# and deleted in END; fixture events are never touched.  "Ghosts" are
# inserted in 1500100000..1500300000 and deleted by a backend of another
# slot before the tests: their buckets must be left out.  TEST 18 adds
# events beyond hour 2^42, whose hour sophon_events_hour() gets wrong.
#
#   --- stats_cases: KIND N    after the block's first answer: N requests
#                              of main::cases_KIND(N), each compared with
#                              the oracle and with the list's total_count

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();
use SophonClient ();

use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();

my $MainPid = $$;

my $JSON = eval { require JSON::XS; 'JSON::XS' } || 'JSON::PP';
my $json = $JSON->new->utf8;
my $json_str = $JSON->new->utf8->allow_nonref;

our $Stats = '/SophonFace/api/events/stats';
our $List = '/SophonFace/api/events';

our $Config = <<'_EOC_';
    location = /SophonFace/api/events/stats {
        sophon_events_stats;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }

    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_

our $Json = 'Content-Type: application/json; charset=utf-8';

# --------------------------------------------------------------------------
# Numbers as text: bounds are decimal strings, the same double in the
# module (strtod), in PostgreSQL (float8in) and in the oracle

# $b seconds and $k microseconds, exactly, as a decimal
sub micro {
    my ($b, $k) = @_;
    my $m = $b * 1000000 + $k;
    my $sign = $m < 0 ? '-' : '';
    $m = -$m if $m < 0;
    my $s = int($m / 1000000);
    my $f = $m % 1000000;
    return $f ? sprintf('%s%d.%06d', $sign, $s, $f) : "$sign$s";
}

# $b seconds moved by $k ulps (the nearest doubles), as a decimal that
# reads back as that double
sub ulps {
    my ($b, $k) = @_;
    my $x = $b + 0.0;
    for (1 .. abs $k) {
        $x = POSIX::nextafter($x, $k > 0 ? 9**9**9 : -9**9**9);
    }
    my $s = sprintf '%.17g', $x;
    die "ulps($b, $k): $s does not read back\n" if $s + 0 != $x;
    return $s;
}

# a boundary moved by one of the offsets the windows are drawn with
sub offset {
    my ($b, $o) = @_;
    return $o =~ /^([-+]\d+)u$/ ? ulps($b, $1)
         : $o =~ /^([-+]\d+)us$/ ? micro($b, $1)
         : $o =~ /^([-+]\d+(?:\.\d+)?)s$/ ? micro($b, $1 * 1000000)
         : die "offset $o\n";
}

# --------------------------------------------------------------------------
# This file's own events: on two days' and two hours' first second, and one
# and two ulps, one microsecond and half a second either side of them,
# after 1970 and before; and a few in between.  Cameras of their own, none,
# and "" (counted as none); person types 1 to 5 and none (1).

our $Range = "(id LIKE 'stats27-%')";

# hour 2^40, in seconds: exact in a double
our $FarHour = 1099511627776 * 3600;

our @OwnBoundaries = (1500076800, 1500001200, -1000080000, -999997200);
our @OwnOffsets = qw(-0.5s -1us -2u -1u +0u +1u +2u +1us +0.5s);
our @OwnCams = ('dev-stats-1', 'dev-stats-B', undef, 'dev-stats-a', '',
                'dev-stats-1', "\x{95E8}-stats", 'dev-stats-B', undef);
our @OwnTypes = (1, 2, undef, 3, 5, 4, 2, 1, 5);
our @SpecialCams = ("dev\tstats/\x{2603}\x{1F600}\x7f\"\\", 'x' x 300,
                    'Dev-stats', 'dev-stats-1 ', "\x{e9}-stats");

sub own_events {
    my @ev;
    my $n = 0;

    for my $b (@OwnBoundaries) {
        for my $i (0 .. $#OwnOffsets) {
            push @ev, [ offset($b, $OwnOffsets[$i]),
                        $OwnCams[($i + $n) % @OwnCams],
                        $OwnTypes[($i * 2 + $n) % @OwnTypes] ];
        }
        $n++;
    }

    # scattered: 60 in each range, some sharing a timestamp
    for my $k (0 .. 59) {
        for my $base (1500000000, -1000100000) {
            my $t = micro($base, (($k * 7919 * 1000003) % 200000) * 500000
                                 + ($k % 7) * 3);
            push @ev, [ $t, $OwnCams[$k % @OwnCams],
                        $OwnTypes[($k * 5) % @OwnTypes] ];
            push @ev, [ $t, 'dev-stats-a', 3 ] if $k % 11 == 0;
        }
    }

    # cameras whose names JSON escapes, or long, or that sort by bytes
    my @special = @SpecialCams;
    for my $j (0 .. $#special) {
        push @ev, [ micro(1500090000, $j * 1000003), $special[$j], 1 + $j % 5 ],
                  [ micro(-999950000, $j * 7), $special[$j], 2 ];
    }

    # far: an ulp either side of hour +-2^40 (where an hour's start stops
    # being exact in a double), an hour and a day off it, and as far as a
    # day's start in seconds stays a bigint
    my $i = 0;
    for my $t ((map { (ulps($_, -1), ulps($_, 0), ulps($_, 1),
                       sprintf('%.17g', $_ + 3600), sprintf('%.17g', $_ - 86400.5))
                    } $FarHour, -$FarHour),
               '1e16', '-1e16', '-9.1e18', '-5e18') {
        push @ev, [ $t, $OwnCams[$i % @OwnCams], $OwnTypes[$i % @OwnTypes] ];
        $i++;
    }

    return docs('stats27-', @ev);
}

# the documents of [timestamp, camera, type] events
sub docs {
    my ($prefix, @ev) = @_;
    my $i = 0;
    return map {
        my ($ts, $cam, $type) = @$_;
        my %common = (identity_name => 'Stats', score => 80);
        $common{person_type} = $type if defined $type;
        $common{ep_info} = { device_id => $cam, ep_name => 'stats' }
            if defined $cam;
        sprintf '{"_id":"%s%03d","timestamp":%s,"common":%s}',
                $prefix, $i++, $ts, $JSON->new->canonical->encode(\%common);
    } @ev;
}

# events whose hour is beyond 2^42: TEST 18 adds them (the other blocks
# must not see them)
our @Beyond = docs('stats27-beyond-', [ '5e18', 'dev-stats-1', 1 ],
                   [ '9.1e18', 'dev-stats-1', 2 ], [ '9.1e18', undef, 3 ]);

# events inserted and deleted before the tests: the counts of their hours
# and days go back to 0, and those buckets must be left out.  Hours and
# days of their own (1500100000..1500300000), and one of a live event's.
our @Ghosts = docs('stats27-gone-',
    [ '1500150000.5', 'dev-stats-1', 1 ], [ '1500150000.5', undef, 2 ],
    [ '1500153600', 'dev-stats-B', 3 ], [ '1500163200', '', 1 ],
    [ '1500250000.25', 'dev-stats-a', 5 ], [ '1500076800', 'dev-stats-1', 5 ],
    [ ulps(1500076800, 1), 'dev-stats-1', 2 ], [ '-999900000.5', undef, 4 ]);

sub sql_str {
    my ($s) = @_;
    $s =~ s/'/''/g;
    return "'$s'";
}

sub psql_utf8 {
    my ($sql) = @_;
    utf8::encode($sql);
    my ($ok, $out, $err) = SophonTest::psql_script($sql);
    die "psql: $err" if !$ok;
    utf8::decode($out);
    return $out;
}

sub delete_own {
    psql_utf8("DELETE FROM sophon_events WHERE $Range;");
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { delete_own() };
        warn "027-stats: cannot delete its events: $@" if $@;
    }
}

our @Own = own_events();

# inserted in 5 sessions: the counts of their keys are spread over the
# slots of 5 backends (sql/schema.sql: pg_backend_pid() % slots)
delete_own();
for my $k (0 .. 4) {
    my @chunk = @Own[grep { $_ % 5 == $k } 0 .. $#Own];
    psql_utf8("INSERT INTO sophon_events (doc) VALUES "
              . join(",\n", map { '(' . sql_str($_) . ')' } @chunk) . ";\n");
}

# the ghosts: deleted by a backend of another slot than the one that
# inserted them, so that each of their keys is a slot of n and one of -n
{
    my $slot = psql_utf8("INSERT INTO sophon_events (doc) VALUES "
                         . join(",\n", map { '(' . sql_str($_) . ')' } @Ghosts)
                         . ";\nSELECT pg_backend_pid() % sophon_events_slots();\n");
    my $left;
    for (1 .. 20) {
        $left = psql_utf8("DELETE FROM sophon_events WHERE id LIKE 'stats27-gone-%'"
                          . " AND pg_backend_pid() % sophon_events_slots() <> $slot;\n"
                          . "SELECT count(*) FROM sophon_events"
                          . " WHERE id LIKE 'stats27-gone-%';\n");
        last if $left == 0;
    }
    is($left, 0, 'the ghosts are deleted, by a backend of another slot');
}

# (by key: a rerun on the same database adds slots, never a key whose
# slots do not add up to 0)
is(psql_utf8("SELECT count(*) FILTER (WHERE s = 0 AND neg AND pos) || ' '"
             . " || count(*) FILTER (WHERE s <> 0)"
             . " FROM (SELECT sum(n) AS s, bool_or(n < 0) AS neg,"
             . " bool_or(n > 0) AS pos FROM sophon_event_counts"
             . " WHERE hour BETWEEN 416695 AND 416750"
             . " GROUP BY hour, device_id, person_type) k"),
   '5 0', "the ghosts' hours: 5 keys, each slots of -1 and +1 that add up"
          . " to 0, and nothing else");

my $slots = psql_utf8("SELECT count(DISTINCT slot) FROM sophon_event_counts"
                      . " WHERE hour BETWEEN 416666 AND 416695");
ok($slots >= 2, "the own events' counts are in several slots: $slots");

is(psql_utf8("SELECT count(*) FROM sophon_events WHERE $Range"
             . " AND (ts BETWEEN 1500000000 AND 1500100000"
             . " OR ts BETWEEN -1000100000 AND -999900000"
             . " OR abs(ts) >= $FarHour - 86401)"),
   scalar @Own, 'the own events are in the database, in their ranges: '
                . scalar @Own);

# every own timestamp is the same double in the database as in Perl
{
    my %db = map { split /\|/ } split /\n/, psql_utf8(
        "SELECT id, encode(float8send(ts), 'hex') FROM sophon_events"
        . " WHERE $Range");
    my %perl = map { /"_id":"([^"]+)","timestamp":([^,]+),/
                     ? ($1 => unpack('H*', pack('d>', $2))) : () } @Own;
    is_deeply(\%db, \%perl,
              'the own timestamps are the same doubles in PostgreSQL and Perl');
}

# --------------------------------------------------------------------------
# HTTP: SophonClient's keep-alive client, one connection for every request

my $Conn;

sub http {
    my ($method, $uri) = @_;
    my ($path, $qs) = split /\?/, $uri, 2;

    $Conn //= SophonClient::ka_open();

    my $r = eval { SophonClient::ka_request($Conn, $qs // '',
                                            method => $method,
                                            path => $path) };
    return $r // { error => $@ };
}

# --------------------------------------------------------------------------
# Cases: { gte, lte (decimal strings or undef), day (0 or 1), by_dev,
# by_type, streams, types (arrays or undef), and how the query string
# spells them }

our @Cams = (
    'ee2cf4e1-a3cf-4f98-9d10-a3e8edbc874e', 'eb528df7-1001-430b-aef2-3a3fd42863cc',
    '8c40fd85-0321-4220-9120-09482088d092', 'f7d6c1e2-5939-492e-b944-7407d61634d6',
    'dev-hours-1', 'dev-hours-2', 'dev-edge-1', 'dev-edge-2',
    'cam "A" \\ 1', ' cam-space ', "\x{95E8}\x{7981}-1",
    'dev-stats-1', 'dev-stats-B', 'dev-stats-a', "\x{95E8}-stats",
    'no-such-camera', @SpecialCams[0, 2, 3, 4],
);

# hours and days where events are (the fixtures' and this file's), and
# days around them
our @Near = (1607385600, 1607418000, 1607432400, 1607436000, 1607356800,
             1607443200, 1700000000 - 1700000000 % 3600, @OwnBoundaries,
             1500080400, -999993600, -1000083600);

our @NearOffsets = qw(+0u +0u +1u -1u +2u -2u +3u -3u +1us -1us +2us -2us
                      +4us -4us +10us -10us +11us -11us +0.5s -0.5s
                      +3599.999999s -3599.999999s);

my $Seed = 27;

sub rnd { rand($_[0]) }
sub pick { $_[ int rand @_ ] }

# another spelling of the same double, now and then
sub spell {
    my ($s) = @_;
    my $r = rand;
    return $s if $r < 0.8 || $s =~ /e/i;
    return "${s}0" if $r < 0.87 && $s =~ /\./;
    return "$s.000" if $r < 0.87;
    return sprintf('%.16e', $s) if $r < 0.94 && sprintf('%.16e', $s) + 0 == $s;
    return "+$s" if $s !~ /^-/;
    return $s;
}

sub random_filters {
    my ($c, $p, $cams) = @_;
    $p //= 0.4;
    $cams //= \@Cams;

    if (rand() < $p) {
        my @s = map { pick(@$cams) } 1 .. 1 + int rand 3;
        $c->{streams} = \@s;
    }

    if (rand() < $p) {
        my @t = grep { rand() < 0.45 } 1 .. 5;
        @t = (1 + int rand 5) if !@t;
        push @t, $t[0] if rand() < 0.1;
        $c->{types} = \@t;
    }

    return $c;
}

sub random_shape {
    my ($c) = @_;
    $c->{day} //= rand() < 0.5 ? 1 : 0;
    my $g = int rand 4;
    $c->{by_dev} //= $g & 1;
    $c->{by_type} //= ($g >> 1) & 1;
    return $c;
}

# random windows over the fixtures' days (and now and then their other end)
sub cases_random {
    my ($n) = @_;
    srand($Seed + 1);
    my @cases;

    for (1 .. $n) {
        my $gte = 1607350000 + rnd(100000);
        my $span = exp(rnd(log(200000)));
        $span = -rnd(5000) if rand() < 0.05;
        my $lte = $gte + $span;
        $lte = 1700000000 + rnd(200) if rand() < 0.05;
        my $c = { gte => spell(sprintf '%.6f', $gte),
                  lte => spell(sprintf '%.6f', $lte) };
        delete $c->{gte} if rand() < 0.05;
        delete $c->{lte} if rand() < 0.05;
        push @cases, random_shape(random_filters($c, 0.4,
                                                  [ @Cams[0 .. 5], pick(@Cams) ]));
    }

    return \@cases;
}

# bounds on an hour or a day where events are, or ulps or microseconds
# off it; the other bound too, or another boundary, or none
sub cases_near {
    my ($n) = @_;
    srand($Seed + 2);
    my @cases;

    for (1 .. $n) {
        if (rand() < 0.08) {
            # hour +-2^40, where an ulp is half a second
            my $b1 = pick($FarHour, -$FarHour);
            my $b2 = $b1 + pick(0, 3600, 7200, 86400, 3600 * int rnd(100));
            my $c = { gte => ulps($b1, int(rnd(7)) - 3),
                      lte => ulps($b2, int(rnd(7)) - 3) };
            delete $c->{gte} if rand() < 0.1;
            delete $c->{lte} if rand() < 0.1;
            push @cases, random_shape(random_filters($c, 0.2));
            next;
        }

        my $b1 = pick(@Near);
        my $gte = offset($b1, pick(@NearOffsets));
        my $k = rand;
        my $b2 = $k < 0.3 ? $b1 + 3600 * int(rnd(3))
               : $k < 0.6 ? $b1 + 86400 * int(rnd(3))
               : $k < 0.75 ? $b1 + 3600 * int(rnd(60))
               : $k < 0.85 ? pick(@Near)
               : $b1;
        my $lte = offset($b2, pick(@NearOffsets));

        # now and then the other way round: lte < gte, mostly
        my $c = rand() < 0.9 ? { gte => spell($gte), lte => spell($lte) }
              : { gte => spell($lte), lte => spell($gte) };
        delete $c->{gte} if rand() < 0.08;
        delete $c->{lte} if rand() < 0.08;
        push @cases, random_shape(random_filters($c, 0.3, [
            @Cams[4, 5, 11 .. 14], pick(@Cams) ]));
    }

    return \@cases;
}

# windows of one kind each, every interval and group_by
sub cases_windows {
    my ($n) = @_;
    srand($Seed + 3);
    my @w;

    # one bucket: an hour or a day where events are, to its last microsecond
    # or ulp, or to the next one's first second (inclusive)
    for my $b (@Near) {
        my $h = $b - $b % 3600;
        my $d = $b - $b % 86400;
        push @w, [ "$h", micro($h + 3600, -1) ], [ "$h", ulps($h + 3600, -1) ],
                 [ "$h", "" . ($h + 3600) ],
                 [ "$d", ulps($d + 86400, -1) ], [ "$d", micro($d + 86400, -1) ];
    }

    # a year, around the fixtures, the own events and those of 1700000000
    push @w, [ 1607000000, 1607000000 + 365 * 86400 ],
             [ 1577836800, micro(1609459200, -1) ],
             [ 1672531200, micro(1704067200, -1) ],
             [ 1483228800, ulps(1514764800, -1) ],
             [ -1009843200, -1009843200 + 366 * 86400 ],
             [ 1600000000.25, 1631536000.75 ];

    # everything, one bound, none
    push @w, [ '-1e10', '1e10' ], [ '-2000000000', '2000000000' ],
             [ undef, undef ], [ '1607385600', undef ], [ undef, '1607385600' ],
             [ '1500076800', undef ], [ undef, '-1000080000' ],
             [ undef, '1500076800.000001' ], [ ulps(1607432400, 1), undef ],
             [ undef, ulps(-999997200, -1) ], [ '1700000000', undef ];

    # far and huge bounds, subnormal ones, and where the ghosts were
    push @w, [ '-1e300', '1e300' ], [ '1e300', undef ], [ undef, '-1e300' ],
             [ '4.9e-324', '1e-300' ], [ '-5e15', '5e15' ], [ '5e15', undef ],
             [ undef, '-5e15' ], [ "$FarHour", undef ],
             [ undef, ulps(-$FarHour, 1) ],
             [ ulps($FarHour, -1), sprintf('%.17g', $FarHour + 3600) ],
             [ '9e18', undef ], [ undef, '-9e18' ], [ '-1e17', '1e17' ],
             [ '1500100000', '1500300000' ], [ '1500076800', '1500076800.5' ];

    # lte < gte, and both bounds on one instant
    push @w, [ '1607400000', '1607399999.999999' ],
             [ ulps(1607385600, 1), '1607385600' ],
             [ '1500076800', ulps(1500076800, -1) ],
             [ '-999997200', '-999997200.000001' ], [ '1', '0' ],
             [ '1607385600', '1607385600' ], [ '1500076800', '1500076800' ],
             [ '-1000080000', '-1000080000' ],
             [ '1607357632.8043265', '1607357632.8043265' ];

    my @cases;
    for my $w (@w) {
        for my $day (0, 1) {
            for my $g (0 .. 3) {
                my $c = { day => $day, by_dev => $g & 1, by_type => $g >> 1 };
                $c->{gte} = "$w->[0]" if defined $w->[0];
                $c->{lte} = "$w->[1]" if defined $w->[1];
                push @cases, random_filters($c, 0.15);
            }
        }
    }

    die "cases_windows: $n wanted, " . scalar(@cases) . " made\n"
        if @cases != $n;
    return \@cases;
}

# the filters in every list form, over windows that hold most events
sub cases_filters {
    my ($n) = @_;
    srand($Seed + 4);
    my @cases;

    my @windows = ([ undef, undef ], [ '1607350000', '1607450000' ],
                   [ '-1e10', '1e10' ], [ '1500000000', '1500100000' ],
                   [ '-1000100000', '-999900000' ], [ '1700000000', undef ]);

    for my $i (1 .. $n) {
        my $w = $windows[$i % @windows];
        my $c = {};
        $c->{gte} = $w->[0] if defined $w->[0];
        $c->{lte} = $w->[1] if defined $w->[1];
        random_filters($c, 0.85);
        $c->{streams} = [ 'no-such-camera' ] if $i % 17 == 0;
        $c->{streams} = [ 'no-such-camera', 'dev-stats-B' ] if $i % 17 == 1;
        $c->{types} = [ 1 .. 5 ] if $i % 13 == 0;
        push @cases, random_shape($c);
    }

    return \@cases;
}

# --------------------------------------------------------------------------
# Query strings

# percent-encodes a query value, as UTF-8 (whatever Perl's flag on it)
sub uri {
    my ($s) = @_;
    utf8::encode($s);
    $s =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# a list in one of the contract's forms (a JSON array for items that the
# comma form would change)
sub list_params {
    my ($name, $items, $numbers) = @_;
    my $plain = !grep { /,|^\s|\s$|^\[/ } @$items;
    my $form = $plain ? pick(qw(comma comma repeat brackets json mixed))
                      : 'json';

    my $js = sub {
        my @i = @_;
        return '[' . join(',', map {
            $numbers && rand() < 0.7 ? $_ : $json_str->encode("$_")
        } @i) . ']';
    };

    if ($form eq 'comma') {
        return ("$name=" . join(',', map { uri($_) } @$items));
    }
    if ($form eq 'repeat') {
        return map { "$name=" . uri($_) } @$items;
    }
    if ($form eq 'brackets') {
        my $key = rand() < 0.5 ? "$name\[]" : "$name%5B%5D";
        return map { "$key=" . uri($_) } @$items;
    }
    if ($form eq 'json') {
        my $j = $js->(@$items);
        utf8::decode($j);
        return ("$name=" . uri($j));
    }

    # mixed: the first item in a JSON array, the others comma-separated
    my ($first, @rest) = @$items;
    my $j = $js->($first);
    utf8::decode($j);
    return ("$name=" . uri($j),
            @rest ? ("$name=" . join(',', map { uri($_) } @rest)) : ());
}

sub filter_params {
    my ($c) = @_;
    my @p;
    push @p, 'datetime_gte=' . uri($c->{gte}) if defined $c->{gte};
    push @p, 'datetime_lte=' . uri($c->{lte}) if defined $c->{lte};
    push @p, list_params('streams', $c->{streams}) if $c->{streams};
    push @p, list_params('userType', $c->{types}, 1) if $c->{types};
    return @p;
}

sub stats_qs {
    my ($c) = @_;
    my @p = filter_params($c);

    my $r = rand;
    if ($c->{day}) {
        push @p, 'interval=day';
    } elsif ($r < 0.5) {
        push @p, 'interval=hour';
    } elsif ($r < 0.6) {
        push @p, 'interval=';
    }

    my @g = (($c->{by_dev} ? 'streams' : ()), ($c->{by_type} ? 'userType' : ()));
    @g = reverse @g if rand() < 0.4;
    if (@g) {
        push @p, 'group_by=' . join(rand() < 0.1 ? '%2C' : ',', @g);
    } elsif (rand() < 0.3) {
        push @p, 'group_by=';
    }

    # the parameters in any order, a cache buster now and then
    push @p, '_=' . int rnd(1e6) if rand() < 0.1;
    @p = sort { $a->[0] <=> $b->[0] } map { [ rand, $_ ] } @p;
    return join '&', map { $_->[1] } @p;
}

sub list_qs {
    my ($c) = @_;
    return join '&', filter_params($c), 'per_page=1', 'with_feature=0';
}

# --------------------------------------------------------------------------
# The oracle: one statement for all cases, a line "i|json" each: the rows
# [start, camera, type, n] in the answer's order (an empty array when
# none), whether an event is within 10 microseconds of a bound, and the
# count(*) of the window

sub sql_float { defined $_[0] ? sql_str($_[0]) . '::float8' : 'NULL::float8' }

sub sql_array {
    my ($items, $type) = @_;
    return "NULL::$type\[]" if !$items;
    return 'ARRAY[' . join(',', map { sql_str($_) } @$items) . "]::$type\[]";
}

sub oracle {
    my ($cases) = @_;
    my $i = 0;
    my $values = join ",\n", map {
        sprintf '(%d, %s, %s, %d, %s, %s, %s, %s)', $i++,
                sql_float($_->{gte}), sql_float($_->{lte}),
                $_->{day} ? 24 : 1, sql_array($_->{streams}, 'text'),
                sql_array($_->{types}, 'smallint'),
                $_->{by_dev} ? 'true' : 'false',
                $_->{by_type} ? 'true' : 'false'
    } @$cases;

    my $out = psql_utf8(<<"_SQL_");
WITH c (i, gte, lte, hours, devices, types, by_dev, by_type) AS (
    VALUES $values
),
e AS MATERIALIZED (
    -- every event's hour: floor of the integer floor(ts) over 3600
    SELECT ts, device_id, person_type,
           (s - ((s % 3600) + 3600) % 3600) / 3600 AS hour
      FROM (SELECT ts, device_id, person_type, floor(ts)::bigint AS s
              FROM sophon_events) x
),
m AS (
    SELECT c.i, c.hours, c.by_dev, c.by_type, e.*
      FROM c JOIN e
        ON (c.gte IS NULL OR e.ts >= c.gte)
       AND (c.lte IS NULL OR e.ts <= c.lte)
       AND (c.devices IS NULL OR e.device_id = ANY (c.devices))
       AND (c.types IS NULL OR e.person_type = ANY (c.types))
),
g AS (
    SELECT i,
           CASE WHEN hours = 1 THEN hour
                ELSE (hour - ((hour % 24) + 24) % 24) / 24 END
           * (3600 * hours)::bigint AS start,
           CASE WHEN by_dev THEN nullif(device_id, '') END AS dev,
           CASE WHEN by_type THEN person_type END AS pt,
           count(*) AS n
      FROM m
     GROUP BY 1, 2, 3, 4
),
a AS (
    SELECT i, json_agg(json_build_array(start, dev, pt, n)
                       ORDER BY start, dev COLLATE "C" NULLS FIRST, pt)
              AS rows,
           sum(n) AS total
      FROM g
     GROUP BY i
)
SELECT c.i || '|' || json_build_array(
           coalesce(a.rows, '[]'),
           EXISTS (SELECT FROM sophon_events x
                    WHERE x.ts BETWEEN c.gte - 1e-5 AND c.gte + 1e-5
                       OR x.ts BETWEEN c.lte - 1e-5 AND c.lte + 1e-5),
           coalesce(a.total, 0))
  FROM c LEFT JOIN a ON a.i = c.i
 ORDER BY c.i;
_SQL_

    my %o;
    for my $line (split /\n/, $out) {
        my ($k, $j) = split /\|/, $line, 2;
        utf8::encode($j);
        $o{$k} = $json->decode($j);
    }
    return \%o;
}

# the answer the oracle's rows make, byte for byte
sub expected_body {
    my ($c, $rows) = @_;
    return '{"data":[' . join(',', map {
        my ($start, $dev, $pt, $n) = @$_;
        '{"start":' . $start
        . ($c->{by_dev} ? ',"stream":' . (defined $dev
                                          ? $json_str->encode($dev) : 'null')
                        : '')
        . ($c->{by_type} ? ',"userType":' . $pt : '')
        . ',"count":' . $n . '}'
    } @$rows) . ']}';
}

sub cut { my $s = shift; length $s > 700 ? substr($s, 0, 700) . '...' : $s }

sub run_cases {
    my ($block, $kind, $n) = @_;
    my $name = $block->name;
    my $make = main->can("cases_$kind") or die "no cases_$kind\n";
    my $cases = $make->($n);

    # nginx has restarted since the last block
    SophonClient::ka_close($Conn) if $Conn;
    undef $Conn;
    local $SIG{PIPE} = 'IGNORE';

    srand($Seed + 100);
    my @qs = map { stats_qs($_) } @$cases;
    my $t0 = Time::HiRes::time();
    my $oracle = oracle($cases);
    my $t1 = Time::HiRes::time();

    my (%bad, @diag, %cover);
    my $diag = sub {
        my ($what, $msg) = @_;
        push @diag, $msg if ++$bad{$what} <= 3;
    };

    for my $i (0 .. $#$cases) {
        my $c = $cases->[$i];
        my $o = $oracle->{$i} or die "the oracle has no case $i\n";
        my ($rows, $near, $total) = @$o;
        my $req = "GET $Stats?$qs[$i]";

        my $r = http('GET', "$Stats?$qs[$i]");
        if (($r->{status} // 0) != 200) {
            $diag->(status => "$req: status " . ($r->{status} // '-') . ' '
                              . ($r->{error} // cut($r->{body})));
            next;
        }

        $diag->(type => "$req: Content-Type " . ($r->{headers}{'content-type'} // '-'))
            if ($r->{headers}{'content-type'} // '') ne 'application/json; charset=utf-8';

        my $want = expected_body($c, $rows);
        my $got = $r->{body};

        if ($got ne $want) {
            my $d = eval { $json->decode($got) };
            my $w = $json->decode($want);
            my $same = $d && $JSON->new->canonical->encode($d)
                             eq $JSON->new->canonical->encode($w);
            $diag->($same ? 'bytes' : 'rows',
                    "$req\n  expected " . cut($want) . "\n  got      "
                    . cut($got));
        }

        my $data = eval { $json->decode($got)->{data} } || [];
        my $sum = 0;
        $sum += $_->{count} // 0 for @$data;

        # the list's total_count for the same filters
        my $lr = http('GET', "$List?" . list_qs($c));
        my $lt = eval { $json->decode($lr->{body})->{pagination}{total_count} };
        if (!defined $lt || $lt != $sum || $lt != $total) {
            $diag->(total => "$req: the counts add up to $sum, GET $List?"
                             . list_qs($c) . " says total_count "
                             . ($lt // '- (status ' . ($lr->{status} // '-') . ')')
                             . ", count(*) is $total");
        }

        $cover{nonempty}++ if @$rows;
        $cover{empty}++ if !@$rows;
        $cover{near}++ if $near && $total;
        $cover{multi}++ if @$rows > 1;
        $cover{nullcam}++ if grep { $c->{by_dev} && !defined $_->[1] } @$rows;
        $cover{"day$c->{day}"}++;
        $cover{"group" . ($c->{by_dev} ? 1 : 0) . ($c->{by_type} ? 1 : 0)}++;
        $cover{negative}++ if grep { $_->[0] < 0 } @$rows;
    }

    my $t2 = Time::HiRes::time();
    diag("$name: $n requests, the oracle in " . sprintf('%.1f', $t1 - $t0)
         . ' s, the requests in ' . sprintf('%.1f', $t2 - $t1) . ' s')
        if $ENV{TEST_VERBOSE};

    is($bad{status} // 0, 0, "$name - all $n answers are 200s");
    is($bad{type} // 0, 0, "$name - all of them application/json");
    is($bad{rows} // 0, 0, "$name - every answer has the oracle's rows,"
                           . " in its order");
    is($bad{bytes} // 0, 0, "$name - every answer is the oracle's JSON,"
                            . " byte for byte");
    is($bad{total} // 0, 0, "$name - every answer's counts add up to the"
                            . " list's total_count and to count(*)");
    diag(join "\n", @diag) if @diag;

    return \%cover;
}

# what the cases of a block must have covered: a run that drew none of
# them proves nothing
our %Cover = (
    random => { nonempty => 0.5, empty => 0.02, multi => 0.4, day0 => 0.3,
                day1 => 0.3, group00 => 0.15, group11 => 0.15,
                group10 => 0.15, group01 => 0.15 },
    near => { nonempty => 0.5, empty => 0.05, near => 0.3, nullcam => 0.01,
              negative => 0.05, group11 => 0.15 },
    windows => { nonempty => 0.5, empty => 0.1, negative => 0.05,
                 nullcam => 0.05, group00 => 0.24, group11 => 0.24 },
    filters => { nonempty => 0.5, empty => 0.03, nullcam => 0.02,
                 negative => 0.05 },
);

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run || $req_idx != 0;
    return if !defined $block->stats_cases;

    local $_;
    my ($kind, $n) = $block->stats_cases =~ /^\s*(\w+)\s+(\d+)\s*$/
        or die "stats_cases: KIND N\n";
    my $cover = run_cases($block, $kind, $n);

    for my $k (sort keys %{ $Cover{$kind} }) {
        my $least = int($Cover{$kind}{$k} * $n) || 1;
        ok(($cover->{$k} // 0) >= $least, $block->name . " - $k: "
           . ($cover->{$k} // 0) . " of the $n cases (at least $least)");
    }
});

add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->insert_beyond) {
        psql_utf8("DELETE FROM sophon_events WHERE id LIKE 'stats27-beyond-%';"
                  . " INSERT INTO sophon_events (doc) VALUES "
                  . join(', ', map { '(' . sql_str($_) . ')' } @Beyond) . ';');
    }

    if (!defined $block->config) {
        $block->set_value("config", $Config);
    }

    if (!defined $block->response_headers
        && !defined $block->response_headers_like)
    {
        my $reqs = $block->request;
        $block->set_value("response_headers",
                          ref $reqs ? [ ($Json) x @$reqs ] : $Json);
    }
});

# The exact body of a 400 with this message.
sub bad {
    my ($message) = @_;
    return '{"error":{"code":40000,"message":"' . $message
           . '","status":"BAD_REQUEST"}}';
}

sub get { [ map { "GET $Stats?$_" } @_ ] }

run_tests();

__DATA__

=== TEST 1: around a day's first second of this file's events: the hour before and the hour it starts
--- request
GET /SophonFace/api/events/stats?datetime_gte=1500076799.999999&datetime_lte=1500076800.000001
--- error_code: 200
--- response_body chomp
{"data":[{"start":1500073200,"count":3},{"start":1500076800,"count":4}]}
--- no_error_log
[error]



=== TEST 2: the same by day, one ulp after the day's first second, grouped
--- request
GET /SophonFace/api/events/stats?interval=day&group_by=streams,userType&datetime_gte=1500076800.0000002&datetime_lte=1500076800.000001
--- error_code: 200
--- response_body eval
'{"data":[{"start":1500076800,"stream":"dev-stats-1","userType":2,"count":1},'
. '{"start":1500076800,"stream":"dev-stats-B","userType":4,"count":1},'
. qq'{"start":1500076800,"stream":"\xe9\x97\xa8-stats","userType":3,"count":1}]}'
--- no_error_log
[error]



=== TEST 3: before 1970: a microsecond or an ulp before a day is the day before; "" and no camera are null
--- request
GET /SophonFace/api/events/stats?interval=day&group_by=streams&datetime_gte=-1000080000.000001&datetime_lte=-1000079999.999999
--- error_code: 200
--- response_body eval
'{"data":[{"start":-1000166400,"stream":null,"count":1},'
. '{"start":-1000166400,"stream":"dev-stats-1","count":1},'
. '{"start":-1000166400,"stream":"dev-stats-a","count":1},'
. '{"start":-1000080000,"stream":null,"count":1},'
. '{"start":-1000080000,"stream":"dev-stats-1","count":1},'
. '{"start":-1000080000,"stream":"dev-stats-B","count":1},'
. qq'{"start":-1000080000,"stream":"\xe9\x97\xa8-stats","count":1}]}'
--- no_error_log
[error]



=== TEST 4: random windows over the fixtures' days
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- stats_cases: random 800
--- request
GET /SophonFace/api/events/stats?streams=no-such-camera
--- error_code: 200
--- response_body chomp
{"data":[]}
--- no_error_log
[error]



=== TEST 5: bounds on hours and days where events are, and ulps and microseconds off them
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- stats_cases: near 1200
--- request
GET /SophonFace/api/events/stats?datetime_gte=1607385600&datetime_lte=1607385600&group_by=userType,streams
--- error_code: 200
--- response_body chomp
{"data":[{"start":1607385600,"stream":"dev-hours-1","userType":5,"count":1},{"start":1607385600,"stream":"dev-hours-2","userType":1,"count":1}]}
--- no_error_log
[error]



=== TEST 6: one bucket, a year, everything, one bound, no bound, lte < gte; each interval and group_by
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- stats_cases: windows 888
--- request
GET /SophonFace/api/events/stats?datetime_gte=1607400000&datetime_lte=1607399999.999999&interval=day&group_by=streams
--- error_code: 200
--- response_body chomp
{"data":[]}
--- no_error_log
[error]



=== TEST 7: streams= and userType= in every list form, a camera that does not exist
--- no_http2: its checks speak HTTP/1.1 to the server's port on raw sockets
--- skip_eval: 1: $ENV{TEST_NGINX_USE_HTTP2}
--- stats_cases: filters 400
--- request
GET /SophonFace/api/events/stats?streams=no-such-camera,dev-stats-B&userType=4&interval=day&datetime_gte=1500076800&datetime_lte=1500076801
--- error_code: 200
--- response_body chomp
{"data":[{"start":1500076800,"count":1}]}
--- no_error_log
[error]



=== TEST 8: deleted events leave no bucket behind, not even one of 0
--- request eval
main::get("datetime_gte=1500100000&datetime_lte=1500300000",
          "datetime_gte=1500100000&datetime_lte=1500300000&interval=day&group_by=streams,userType",
          "datetime_gte=1500100000.5&datetime_lte=1500299999.5&interval=day&group_by=streams",
          "datetime_gte=1500076800&datetime_lte=1500076800.5&group_by=streams",
          "datetime_gte=-999900001&datetime_lte=-999900000&group_by=streams")
--- error_code eval
[(200) x 5]
--- response_body eval
['{"data":[]}', '{"data":[]}', '{"data":[]}',
 '{"data":[{"start":1500076800,"stream":null,"count":2},'
 . '{"start":1500076800,"stream":"dev-stats-1","count":1},'
 . '{"start":1500076800,"stream":"dev-stats-B","count":1},'
 . qq'{"start":1500076800,"stream":"\xe9\x97\xa8-stats","count":1}]}',
 '{"data":[]}']
--- no_error_log
[error]



=== TEST 9: interval: only hour or day
--- request eval
main::get("interval=week", "interval=HOUR", "interval=Day", "interval=hours",
          "interval=minute", "interval=1", "interval=%20hour", "interval=day%20",
          "interval=hour,day", "interval=%5B%22day%22%5D", "interval=h%00our")
--- error_code eval
[(400) x 11]
--- response_body eval
[(main::bad("interval: must be hour or day")) x 9,
 main::bad("interval: must be hour or day"),
 main::bad("interval: contains a NUL byte")]
--- no_error_log
[error]



=== TEST 10: group_by: streams and userType, each at most once
--- request eval
main::get("group_by=stream", "group_by=Streams", "group_by=usertype",
          "group_by=streams,streams", "group_by=userType,userType",
          "group_by=streams,userType,streams", "group_by=streams,",
          "group_by=,streams", "group_by=streams,,userType",
          "group_by=streams%20", "group_by=%20streams",
          "group_by=streams%2C%20userType", "group_by=groups",
          "group_by=%5B%22streams%22%5D", "group_by=,", "group_by=day")
--- error_code eval
[(400) x 16]
--- response_body eval
[(main::bad("group_by: must be a list of streams and userType, each at most once")) x 16]
--- no_error_log
[error]



=== TEST 11: the filters the counts do not know
--- request eval
main::get("name=a", "identity_id=9300001", "score_min=10", "score_max=90",
          "room=H1", "groups=g-hours-1", "groups=a,b", "groups%5B%5D=a",
          "interval=day&name=Hour", "streams=dev-hours-1&room=H1")
--- error_code eval
[(400) x 10]
--- response_body eval
[main::bad("name: statistics take only time bounds, streams and userType"),
 main::bad("identity_id: statistics take only time bounds, streams and userType"),
 main::bad("score_min: statistics take only time bounds, streams and userType"),
 main::bad("score_max: statistics take only time bounds, streams and userType"),
 main::bad("room: statistics take only time bounds, streams and userType"),
 (main::bad("groups: statistics take only time bounds, streams and userType")) x 3,
 main::bad("name: statistics take only time bounds, streams and userType"),
 main::bad("room: statistics take only time bounds, streams and userType")]
--- no_error_log
[error]



=== TEST 12: an empty filter is no filter, an empty interval or group_by the default
--- request eval
main::get("name=&score_min=&room=&groups=&datetime_gte=1500076800&datetime_lte=1500076800",
          "interval=&group_by=&datetime_gte=1500076800&datetime_lte=1500076800",
          "groups=%5B%5D&identity_id=&datetime_gte=1500076800&datetime_lte=1500076800&interval=day")
--- error_code eval
[200, 200, 200]
--- response_body eval
['{"data":[{"start":1500076800,"count":1}]}',
 '{"data":[{"start":1500076800,"count":1}]}',
 '{"data":[{"start":1500076800,"count":1}]}']
--- no_error_log
[error]



=== TEST 13: the list's 400s: numbers, lists, encodings, repeats
--- request eval
main::get("datetime_gte=abc", "datetime_lte=1e999", "datetime_gte=1,2",
          "datetime_lte=0x10", "datetime_gte=1&datetime_gte=2",
          "interval=day&interval=day", "userType=6", "userType=1,x",
          "userType=" . SophonTest::uri('[1,'), "streams=a%2",
          "streams=" . SophonTest::uri('[{"a":1}]'), "datetime_gte=%ff",
          "datetime_lte=NaN", "datetime_gte=inf", "streams=" . ("x" x 300),
          "streams=" . CORE::join(",", 1 .. 101), "datetime_gte=" . ("1" x 300),
          "interval=" . ("h" x 300), "group_by=" . ("streams," x 40) . "userType")
--- error_code eval
[(400) x 19]
--- response_body eval
[main::bad("datetime_gte: must be a number"),
 main::bad("datetime_lte: is out of range"),
 main::bad("datetime_gte: must be a number"),
 main::bad("datetime_lte: must be a number"),
 main::bad("datetime_gte: is given more than once"),
 main::bad("interval: is given more than once"),
 main::bad("userType: must be integers from 1 to 5"),
 main::bad("userType: must be integers from 1 to 5"),
 main::bad("userType: is not a valid list"),
 main::bad("streams: bad percent-encoding"),
 main::bad("streams: is not a valid list"),
 main::bad("datetime_gte: is not valid UTF-8"),
 main::bad("datetime_lte: must be a number"),
 main::bad("datetime_gte: must be a number"),
 main::bad("streams: has an item longer than 256 bytes"),
 main::bad("streams: has more than 100 items"),
 main::bad("datetime_gte: is longer than 256 bytes"),
 main::bad("interval: is longer than 256 bytes"),
 main::bad("group_by: is longer than 256 bytes")]
--- no_error_log
[error]



=== TEST 14: group_by given twice is a 400 that names it
--- request eval
main::get("group_by=streams&group_by=userType", "group_by=streams&group_by=streams")
--- error_code eval
[400, 400]
--- response_body_like eval
[(qr/^\{"error":\{"code":40000,"message":"group_by: [^"]+","status":"BAD_REQUEST"\}\}$/) x 2]
--- no_error_log
[error]



=== TEST 15: HEAD: the headers of a GET, no body
--- request eval
["HEAD /SophonFace/api/events/stats?interval=day&group_by=streams,userType",
 "HEAD /SophonFace/api/events/stats?datetime_gte=1500076800&datetime_lte=1500076800",
 "HEAD /SophonFace/api/events/stats?streams=no-such-camera",
 "HEAD /SophonFace/api/events/stats?interval=week"]
--- error_code eval
[200, 200, 200, 400]
--- response_body eval
["", "", "", ""]
--- no_error_log
[error]



=== TEST 16: POST, PUT, DELETE, OPTIONS: 405 with Allow: GET, HEAD
--- no_http2: curl 7.88.1 drops an answer sent before the request body was read
--- request eval
["POST /SophonFace/api/events/stats?interval=day\n{\"interval\":\"day\"}",
 "PUT /SophonFace/api/events/stats\n{}",
 "DELETE /SophonFace/api/events/stats?event_id_list=stats27-000",
 "OPTIONS /SophonFace/api/events/stats",
 "PATCH /SophonFace/api/events/stats?interval=week"]
--- error_code eval
[(405) x 5]
--- response_headers eval
[("Allow: GET, HEAD\nContent-Type: application/json; charset=utf-8") x 5]
--- response_body eval
[('{"error":{"code":40500,"message":"method: only GET and HEAD are allowed","status":"METHOD_NOT_ALLOWED"}}') x 5]
--- no_error_log
[error]



=== TEST 17: the fixtures' two days in December 2020, by day
--- request
GET /SophonFace/api/events/stats?datetime_gte=1607000000&datetime_lte=1608000000&interval=day
--- error_code: 200
--- response_body chomp
{"data":[{"start":1607299200,"count":153},{"start":1607385600,"count":1379}]}
--- no_error_log
[error]



=== TEST 18: beyond 2^42 hours: an event's hour is still the floor of its time
sophon_events_hour() divides floor(ts) by 3600 in double precision: from
about 2^42 hours (1.6e16 s) on, the quotient can round up to the next
integer, and an event 5e18 s or 9.1e18 s away would be counted in a
bucket that starts after it (5000000000000000400, 9100000000000000800).
--- insert_beyond
--- request eval
main::get("datetime_gte=1e18", "datetime_gte=1e18&interval=day",
          "datetime_gte=1e18&group_by=streams,userType")
--- error_code eval
[200, 200, 200]
--- response_body eval
['{"data":[{"start":4999999999999996800,"count":1},{"start":9099999999999997200,"count":2}]}',
 '{"data":[{"start":4999999999999968000,"count":1},{"start":9099999999999993600,"count":2}]}',
 '{"data":[{"start":4999999999999996800,"stream":"dev-stats-1","userType":1,"count":1},'
 . '{"start":9099999999999997200,"stream":null,"userType":3,"count":1},'
 . '{"start":9099999999999997200,"stream":"dev-stats-1","userType":2,"count":1}]}']
--- no_error_log
[error]
