# vi:filetype=perl

# Totals are exact for every float bound, whole hours or not.
#
# sophon_events_total() adds the counts of the whole hours inside a window
# (by the hour near its ends, by the day and by 32 days in between: the
# windows drawn span up to a year, and either side of hour 0) and counts
# the events of the partial hours at its ends; a bound a few
# microseconds off an hour is where rounding would move an hour in or out
# of the window.  t/fixtures/hours.jsonl puts events on four hour
# boundaries and 1, 4 and 10 microseconds either side of them (cameras
# dev-hours-1 and dev-hours-2, their own), among the generated events.
#
# Sections of this file:
#   --- random_bounds N   before the block: sophon_events_total() equals
#                         count(*) of the same filter for N bounds drawn
#                         near hour boundaries (one SQL statement)
#   --- far_bounds N      the same, in a transaction rolled back, with
#                         events and bounds beyond the hours whose start
#                         is exact in a double (2^40 hours), infinities,
#                         NaN, 1e300 and subnormals
#   --- pages QS PER_PAGE (in a request eval, main::pages()) page 0, the
#                         last and the next-to-last page of QS
# Every 200 is checked against the fixtures by SophonTest::check_body, and
# every datetime_* value of a request must be the same double in
# PostgreSQL as in Perl, which computes the expected pages.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();

repeat_each(1);
no_shuffle();

SophonTest::use_standard_location();

# pseudo-random but the same every run: hashint8extended(i, salt) mod m
my $R = '((hashint8extended(i, %d) %% %s + %s) %% %s)';

sub r {
    my ($salt, $m) = @_;
    return sprintf($R, $salt, $m, $m, $m);
}

# One statement: N cases, each sophon_events_total(gte, lte, devices,
# types) against count(*) of the rows; returns "cases|mismatches|near|
# nonzero|first mismatches".  near counts the cases with an event within
# 10 microseconds of one of their bounds, nonzero those that count
# something: a run that drew no such cases proves nothing.
#   $hours: the hours drawn from; $offsets: seconds added to an hour's
#   start; $devices, $types: the filters (SQL arrays, NULL for none);
#   $extra: more bounds, as they are (SQL float8 array)
sub compare_sql {
    my (%o) = @_;
    my $n = $o{n};
    my $dk = @{ $o{devices} };
    my $tk = @{ $o{types} };
    my $devices = join ', ', map { "($_, $o{devices}[$_])" } 0 .. $dk - 1;
    my $types = join ', ', map { "($_, $o{types}[$_])" } 0 .. $tk - 1;

    return <<"_SQL_";
WITH p AS MATERIALIZED (
    SELECT ARRAY[$o{hours}]::bigint[] AS hs,
           ARRAY[$o{offsets}]::float8[] AS os,
           ARRAY[0, 0, 1, 1, 2, 3, -1, 24, 47, 769, 1560, -770,
                 8760]::bigint[] AS spans,
           ARRAY(SELECT ts FROM sophon_events ORDER BY id)
           || ARRAY[$o{extra}]::float8[] AS tss
),
dv(k, devices) AS (VALUES $devices),
ty(k, types) AS (VALUES $types),
raw AS (
    SELECT i,
           @{[ r(5, 7) ]} AS kind,
           (p.hs[1 + @{[ r(1, 'cardinality(p.hs)') ]}]::float8 * 3600)
           + p.os[1 + @{[ r(2, 'cardinality(p.os)') ]}] AS b1,
           ((p.hs[1 + @{[ r(1, 'cardinality(p.hs)') ]}]
             + p.spans[1 + @{[ r(3, 'cardinality(p.spans)') ]}])::float8
            * 3600)
           + p.os[1 + @{[ r(4, 'cardinality(p.os)') ]}] AS b2,
           p.tss[1 + @{[ r(6, 'cardinality(p.tss)') ]}] AS t,
           @{[ r(7, $dk) ]} AS dk,
           @{[ r(8, $tk) ]} AS tk
      FROM p, generate_series(1, $n) i
),
cases AS MATERIALIZED (
    SELECT i, devices, types,
           CASE kind WHEN 0 THEN b1 WHEN 1 THEN NULL WHEN 2 THEN b1
                     WHEN 3 THEN b1 WHEN 4 THEN t WHEN 5 THEN t
                     ELSE NULL END AS gte,
           CASE kind WHEN 0 THEN NULL WHEN 1 THEN b1 WHEN 2 THEN b2
                     WHEN 3 THEN b1 WHEN 4 THEN t WHEN 5 THEN NULL
                     ELSE t END AS lte
      FROM raw JOIN dv ON dv.k = raw.dk JOIN ty ON ty.k = raw.tk
),
checked AS MATERIALIZED (
    SELECT c.*,
           sophon_events_total(gte, lte, devices, types) AS got,
           (SELECT count(*) FROM sophon_events e
             WHERE (gte IS NULL OR e.ts >= gte)
               AND (lte IS NULL OR e.ts <= lte)
               AND (devices IS NULL OR e.device_id = ANY (devices))
               AND (types IS NULL OR e.person_type = ANY (types))) AS want,
           EXISTS (SELECT FROM sophon_events e
                    WHERE e.ts BETWEEN gte - 1e-5 AND gte + 1e-5
                       OR e.ts BETWEEN lte - 1e-5 AND lte + 1e-5) AS near
      FROM cases c
)
SELECT count(*),
       count(*) FILTER (WHERE got IS DISTINCT FROM want),
       count(*) FILTER (WHERE near),
       count(*) FILTER (WHERE want > 0),
       coalesce(string_agg(format('[gte %s lte %s devices %s types %s:'
                                  ' %s, count(*) %s]', gte, lte, devices,
                                  types, got, want), ' ')
                FILTER (WHERE got IS DISTINCT FROM want
                        AND i IN (SELECT i FROM checked
                                   WHERE got IS DISTINCT FROM want
                                   ORDER BY i LIMIT 5)), '')
  FROM checked;
_SQL_
}

# the hours of t/fixtures/hours.jsonl, hours of generated events, empty
# hours, and hours around 0
our $NearHours = '446496, 446505, 446509, 446510, 446488, 446494, 446497,'
               . ' 446500, 446511, 446470, 446540, 0, -1, -2';

# on the hour, 1 to 10 microseconds, one and two ulps (2^-22 s at 1.6e9)
# either side, and inside the hour
our $NearOffsets = join ', ', 0,
    (map { ("${_}e-6", "-${_}e-6") } 1, 2, 3, 4, 5, 7, 10),
    '2.384185791015625e-7', '-2.384185791015625e-7',
    '4.76837158203125e-7', '-4.76837158203125e-7', 0.5, -0.5, 1800;

our @Filters = (
    devices => ['NULL::text[]', "'{dev-hours-1}'",
                "'{dev-hours-1,dev-hours-2}'",
                "ARRAY[(SELECT device_id FROM sophon_events"
                . " WHERE device_id NOT LIKE 'dev-hours-%'"
                . " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)]",
                "'{nope}'"],
    types => ['NULL::smallint[]', "'{1}'", "'{2,4}'", "'{1,3,5}'",
              "'{1,2,3,4,5}'"],
);

# 2^40 hours: where an hour's start stops being exact in the function
my $D = 1099511627776 * 3600;

# events beyond it, at its edge, and as far as a bigint hour goes: the
# first second of hour -2^63 (whose day a numeric quotient once rounded
# into the next one), and 2^63 - 1024 hours, the last a double reaches
our @FarEvents = (map({ ($_, "-($_)") } (
    "$D - 3600", "$D - 0.5", $D, "$D + 0.5", "$D + 3599.5", "$D + 3600",
    "$D + 3601", '1e16', '9007199254740993', '1e17', '3.3e22', 0.5, 3600)),
    '-33204139332677191680000',
    '33204139332677187993600');

sub far_sql {
    my ($n) = @_;
    my $events = join ', ', @FarEvents;

    return "BEGIN;\n"
        . "INSERT INTO sophon_events (doc)"
        . " SELECT jsonb_build_object('_id', 'far-' || k, 'timestamp', t,"
        . " 'common', jsonb_build_object('person_type', 1 + k % 3,"
        . " 'ep_info', jsonb_build_object('device_id', 'dev-hours-far')))"
        . " FROM unnest(ARRAY[$events]::float8[]) WITH ORDINALITY u(t, k);\n"
        . compare_sql(
            n => $n,
            hours => join(', ', map { ($_, "-$_") } 1099511627776,
                          1099511627775, 1099511627777, 2777777777777,
                          27777777777777, 2**50, 446509),
            offsets => '0, 0.5, -0.5, 1, -1, 2, -2, 3600, -3600, 1e-6,'
                       . " 'Infinity', '-Infinity', 'NaN', 1e300, -1e300",
            extra => "$events, 'Infinity', '-Infinity', 'NaN', 1e300,"
                     . " -1e300, 1e-300, 4.9e-324, -4.9e-324, 1e-310,"
                     . " -1e-310, 0.25, -0.25",
            devices => ['NULL::text[]', "'{dev-hours-far}'",
                        "'{dev-hours-far,dev-hours-1}'"],
            types => ['NULL::smallint[]', "'{2}'", "'{1,3}'"])
        . "ROLLBACK;\n";
}

sub check_compare {
    my ($name, $what, $n, $ok, $out, $err) = @_;

    ok($ok, "$name - $what ran") or return diag($err);

    my ($cases, $bad, $near, $nonzero, $first) = split /\|/, $out, 5;
    is($cases, $n, "$name - $what: $n cases compared");
    ok($near >= $n / 10, "$name - $what: $near of them with an event"
       . " within 10 microseconds of a bound");
    ok($nonzero >= $n / 4, "$name - $what: $nonzero of them count events");
    is($bad, 0, "$name - $what: sophon_events_total() is count(*) every"
       . " time") or diag($first);
}

# [page 0, the last page, the next-to-last] of a query string, as requests
sub pages {
    my ($qs, $per_page) = @_;
    $qs .= "&per_page=$per_page";

    my $n = SophonTest::expected("$qs&page=0")->{pagination}{num_pages};
    die "pages($qs): fewer than 3 pages in the fixtures\n" if $n < 3;

    return [ map { "GET /SophonFace/api/events?$qs&page=$_" }
             0, $n - 1, $n - 2 ];
}

# the double PostgreSQL reads from a decimal, as hex: the same bits as
# Perl's, or the expected pages would be computed for another bound
sub same_double {
    my ($name, $text) = @_;

    my $pg = SophonTest::psql("SELECT encode(float8send('$text'), 'hex')");
    is($pg, unpack('H*', pack('d>', $text)),
       "$name - $text is the same double in PostgreSQL and in Perl");
}

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $n = $block->random_bounds)) {
        $n += 0;
        check_compare($name, 'bounds near hours', $n,
                      SophonTest::psql_script(compare_sql(
                          n => $n, hours => $NearHours,
                          offsets => $NearOffsets, extra => '0',
                          @Filters)));
    }

    if (defined(my $n = $block->far_bounds)) {
        $n += 0;
        check_compare($name, 'bounds beyond 2^40 hours', $n,
                      SophonTest::psql_script(far_sql($n)));
    }

    my $requests = $block->request;
    for my $r (ref $requests ? @$requests : $requests) {
        same_double($name, $_)
            for $r =~ /datetime_(?:gte|lte)=([-+0-9.eE]+)/g;
    }
});

# the timestamps of t/fixtures/hours.jsonl are the same doubles in the
# database as in the fixtures that SophonTest reads
my ($ok, $out, $err) = SophonTest::psql_script(
    "SELECT id, encode(float8send(ts), 'hex') FROM sophon_events"
    . " WHERE device_id LIKE 'dev-hours-%' ORDER BY id");
ok($ok, 'the hour fixtures are in the database') or diag($err);

my %db = map { split /\|/ } split /\n/, $out;
my @hours = grep { $_->{doc}{common}{ep_info}{device_id} =~ /^dev-hours-/ }
            @{ SophonTest::fixtures() };

is(scalar keys %db, scalar @hours, 'as many hour fixtures as the file has')
    and ok(@hours >= 32, 'the hour fixtures: ' . scalar @hours);
is_deeply(\%db, { map { $_->{doc}{_id}
                        => unpack('H*', pack('d>', $_->{doc}{timestamp})) }
                  @hours },
          'every timestamp is the same double in the database and in Perl');

run_tests();

__DATA__

=== TEST 1: sophon_events_total() is count(*) for 6000 bounds near hours
--- random_bounds: 6000
--- request
GET /SophonFace/api/events?datetime_gte=1607432400.000004&datetime_lte=1607432400.000004
--- error_code: 200
--- response_body_like: "total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: and for 3000 bounds beyond 2^40 hours, infinite, NaN or huge
--- far_bounds: 3000
--- request
GET /SophonFace/api/events?datetime_gte=-1e300&datetime_lte=1e300&streams=dev-hours-1
--- error_code: 200
--- response_body_like: "total_count":16,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 3: 4 microseconds after an hour to 4 microseconds before the next
--- request eval
main::pages('datetime_gte=1607432400.000004&datetime_lte=1607435999.999996', 7)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]



=== TEST 4: the same on the fixtures' cameras: what the hours' edges hold
--- request eval
main::pages('datetime_gte=1607432400.000004&datetime_lte=1607435999.999996'
            . '&streams=dev-hours-1,dev-hours-2', 1)
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[('"total_count":4,"next":(?:null|"[0-9a-f]+")\}\}$') x 3]
--- no_error_log
[error]



=== TEST 5: 1 microsecond before an hour to 1 microsecond after another, some types
--- request eval
main::pages('datetime_gte=1607385599.999999&datetime_lte=1607418000.000001'
            . '&userType=1,2,3', 10)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]



=== TEST 6: datetime_gte 1 microsecond after an hour, alone
--- request eval
main::pages('datetime_gte=1607385600.000001&streams=dev-hours-1', 3)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]



=== TEST 7: datetime_lte 4 microseconds after an hour, alone
--- request eval
main::pages('datetime_lte=1607436000.000004', 50)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]



=== TEST 8: datetime_lte 10 microseconds before an hour, a camera of the fixtures
--- request eval
main::pages('datetime_lte=1607435999.99999&streams=dev-hours-2', 3)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]



=== TEST 9: both bounds exactly on one hour: the two events on it
--- request
GET /SophonFace/api/events?datetime_gte=1607432400&datetime_lte=1607432400
--- error_code: 200
--- response_body_like: "total_count":2,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 10: 1 microsecond either side of an hour: four events
--- request
GET /SophonFace/api/events?datetime_gte=1607432399.999999&datetime_lte=1607432400.000001
--- error_code: 200
--- response_body_like: "total_count":4,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 11: an exponent, 4 microseconds after an hour
--- request eval
main::pages('datetime_gte=1.607432400000004e9&datetime_lte=16074359999999.96e-4'
            . '&userType=2,4,5', 2)
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]
