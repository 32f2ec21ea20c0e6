# vi:filetype=perl

# Each filter of the contract alone, then in the combinations the
# dashboards send.  SophonTest::check_body computes every expected page
# from the request's own query string over the fixtures; the
# response_body_like lines only prove that a block is not vacuous (the
# filter selects something) or pin the exact count a case is about.
#
# The blocks with a room come last: SophonTest::room() autovivifies
# identity_info.ext_info = {} in the shared fixture documents it reads
# (strangers, and events that keep the room in identity_info), which
# would make every later comparison of those documents fail.  Reported.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest;

repeat_each(2);
no_shuffle();

SophonTest::use_standard_location();

# Helpers for "--- request eval" (Test::Base evaluates those outside of
# main, hence the main:: prefix in the blocks).

# the fixture documents, newest first
sub docs {
    return map { $_->{doc} } @{ SophonTest::fixtures() };
}

# the most frequent non-empty value $get gives over the fixtures
sub most_common {
    my ($get, $skip) = @_;
    my %n;

    for my $d (docs()) {
        my $v = $get->($d);
        $n{$v}++ if defined $v && $v ne '';
    }

    my @v = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    @v = grep { $_ ne $skip } @v if defined $skip;
    die "most_common: nothing in the fixtures\n" if !@v;

    return $v[0];
}

# (the fixture documents are shared with SophonTest: never autovivify)
sub ext_room {
    my ($d) = @_;
    my $info = $d->{common}{identity_info};
    my $ext = ref $info eq 'HASH' ? $info->{ext_info} : undef;
    return ref $ext eq 'HASH' ? $ext->{room} : undef;
}

sub top_room {
    my ($d) = @_;
    my $info = $d->{common}{identity_info};
    return ref $info eq 'HASH' ? $info->{room} : undef;
}

sub room_of {
    my ($d) = @_;
    return ext_room($d) // top_room($d);
}

sub device_named {
    my ($re) = @_;

    for my $d (docs()) {
        my $ep = $d->{common}{ep_info};
        return $ep->{device_id} if $ep->{ep_name} =~ $re;
    }

    die "device_named: no device named $re in the fixtures\n";
}

# the first fixture document (newest first) for which $test is true
sub first_doc {
    my ($test) = @_;

    for my $d (docs()) {
        return $d if $test->($d);
    }

    die "first_doc: no such document in the fixtures\n";
}

# the "timestamp" of an event exactly as its fixture line wrote it (Perl
# would print only 15 significant digits of the number)
sub ts_text {
    my ($id) = @_;

    for my $f (@{ SophonTest::fixtures() }) {
        next if $f->{doc}{_id} ne $id;
        $f->{line} =~ /"timestamp":(-?[0-9][0-9.eE+-]*)/
            or die "ts_text: no timestamp in $id\n";
        return $1;
    }

    die "ts_text: no event $id in the fixtures\n";
}

# GET /SophonFace/api/events?k=v&... with each value percent-encoded
sub events {
    my @kv = @_;
    my @q;

    while (my ($k, $v) = splice @kv, 0, 2) {
        utf8::upgrade($v);              # "\x{DC}" too goes out as UTF-8
        push @q, "$k=" . SophonTest::uri($v);
    }

    return 'GET /SophonFace/api/events?' . join '&', @q;
}

run_tests();

__DATA__

=== TEST 1: datetime_gte alone: the hand-written events after 2023-11-14
--- request
GET /SophonFace/api/events?datetime_gte=1700000000&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 2: datetime_lte alone: the first events of the generated day
--- request
GET /SophonFace/api/events?datetime_lte=1607370000&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 3: datetime_gte = datetime_lte with a fraction selects exactly that event
--- request
GET /SophonFace/api/events?datetime_gte=1700000014.25&datetime_lte=1700000014.25
--- error_code: 200
--- response_body_like: "_id":\s*"1700000014\.250100".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 4: datetime_gte = datetime_lte on two events with the same timestamp: both, _id descending
--- request
GET /SophonFace/api/events?datetime_gte=1700000008.5&datetime_lte=1700000008.5
--- error_code: 200
--- response_body_like: "_id":\s*"1700000008\.500200".*"_id":\s*"1700000008\.500100".*"total_count":2,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 5: datetime_gte = datetime_lte on a generated timestamp with 17 significant digits
--- request eval
my $id = SophonTest::fixtures()->[-1]{doc}{_id};
my $ts = main::ts_text($id);
"GET /SophonFace/api/events?datetime_gte=$ts&datetime_lte=$ts"
--- error_code: 200
--- response_body_like: "total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 6: a bound a hair above an event's timestamp excludes it
--- request
GET /SophonFace/api/events?datetime_gte=1700000014.2501&datetime_lte=1700000014.26
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 7: a window with fractional bounds
--- request
GET /SophonFace/api/events?datetime_gte=1607385600.5&datetime_lte=1607389199.75&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 8: datetime_gte later than datetime_lte matches nothing
--- request
GET /SophonFace/api/events?datetime_gte=1607389200&datetime_lte=1607385600
--- error_code: 200
--- response_body_like: ^\{"data":\[\],"pagination":\{"num_pages":0,"page":0,"per_page":10,"total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 9: name, Latin, lower case matches any case
--- request
GET /SophonFace/api/events?name=frank&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 10: name, Latin, upper case matches any case
--- request
GET /SophonFace/api/events?name=FRANK&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 11: name, a substring in the middle of the name, mixed case
--- request
GET /SophonFace/api/events?name=xEd%20cA&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 12: name, case-insensitive beyond ASCII (MÜLLER finds Müller)
--- request eval
main::events(name => "M\x{DC}LLER", per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 13: name, case-insensitive beyond ASCII (élodie ångström finds ÉLODIE Ångström)
--- request eval
main::events(name => "\x{E9}lodie \x{E5}ngstr\x{F6}m")
--- error_code: 200
--- response_body_like: "total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 14: name, Chinese surname
--- request eval
main::events(name => "\x{6B27}\x{9633}", per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 15: name, a whole Chinese name
--- request
GET /SophonFace/api/events?name=%E7%8E%8B%E5%B0%8F%E6%98%8E
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000005".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 16: name, an emoji
--- request
GET /SophonFace/api/events?name=%F0%9F%98%80
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000012".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 17: name=%25 matches only names with a literal %
--- request
GET /SophonFace/api/events?name=%25&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 18: name=_ matches only names with a literal underscore
--- request
GET /SophonFace/api/events?name=_&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 19: name=\ matches only names with a literal backslash
--- request
GET /SophonFace/api/events?name=%5C&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 20: name=%_ is the two characters, in that order
--- request
GET /SophonFace/api/events?name=%25_&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 21: name=\_ is a backslash then an underscore, not an escaped underscore
--- request
GET /SophonFace/api/events?name=%5C_&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 22: name=%% matches no name (no name has two percent signs)
--- request
GET /SophonFace/api/events?name=%25%25
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 23: name=__ matches no name (no name has two underscores)
--- request
GET /SophonFace/api/events?name=__
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 24: name with a single quote
--- request
GET /SophonFace/api/events?name=O%27&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 25: name with a double quote
--- request
GET /SophonFace/api/events?name=%22Bob%22
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000004".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 26: name with a control character (a tab)
--- request
GET /SophonFace/api/events?name=%09tab%0Aline
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000011".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 27: name keeps its spaces ("+Chen" is " Chen", not "Chen,")
--- request
GET /SophonFace/api/events?name=+Chen&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 28: identity_id, exact
--- request eval
main::events(identity_id => main::most_common(sub { $_[0]{common}{identity_id} }),
             per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 29: identity_id is no prefix match (9100002 is not 91000021)
--- request
GET /SophonFace/api/events?identity_id=9100002
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100002".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 30: identity_id, a part of an id matches nothing
--- request eval
my $id = main::most_common(sub { $_[0]{common}{identity_id} });
main::events(identity_id => substr($id, 0, length($id) - 1))
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 31: score_min at the exact score of an event keeps it (82)
--- request
GET /SophonFace/api/events?score_min=82&datetime_gte=1700000000&per_page=50
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000011"
--- no_error_log
[error]



=== TEST 32: score_max at the exact score of an event keeps it (82.5)
--- request
GET /SophonFace/api/events?score_max=82.5&datetime_gte=1700000000&per_page=50
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000012"
--- no_error_log
[error]



=== TEST 33: score_min = score_max = 82 keeps the events that scored exactly 82
--- request
GET /SophonFace/api/events?score_min=82&score_max=82&per_page=50
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000011".*"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 34: score_min = score_max = 82.5 keeps the one event that scored 82.5
--- request
GET /SophonFace/api/events?score_min=82.5&score_max=82.5
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000012".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 35: score_min alone
--- request
GET /SophonFace/api/events?score_min=95&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 36: score_max alone (the low scores: mostly strangers)
--- request
GET /SophonFace/api/events?score_max=10.5&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 37: a score window just inside 82 and 82.5 excludes both
--- request
GET /SophonFace/api/events?score_min=82.0000001&score_max=82.4999999&datetime_gte=1700000000
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 38: userType=1, employees
--- request
GET /SophonFace/api/events?userType=1&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 39: userType=2, visitors
--- request
GET /SophonFace/api/events?userType=2&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 40: userType=3, blacklist
--- request
GET /SophonFace/api/events?userType=3&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 41: userType=4, strangers
--- request
GET /SophonFace/api/events?userType=4&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 42: userType=5, VIP
--- request
GET /SophonFace/api/events?userType=5&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 43: an event without person_type counts as userType=1
--- request
GET /SophonFace/api/events?userType=1&identity_id=9000006
--- error_code: 200
--- response_body_like: "identity_name":\s*"NoType Person".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 44: an event without person_type is of no other userType
--- request
GET /SophonFace/api/events?userType=2,3,4,5&identity_id=9000006
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 45: the newest employees include the one without person_type
--- request
GET /SophonFace/api/events?userType=1&datetime_gte=1700000000
--- error_code: 200
--- response_body_like: "identity_name":\s*"NoType Person"
--- no_error_log
[error]



=== TEST 46: groups, one group
--- request eval
main::events(groups => main::most_common(sub { $_[0]{common}{group_id} }),
             per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 47: groups, the edge group
--- request
GET /SophonFace/api/events?groups=g-edge&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 48: streams, one camera
--- request eval
main::events(streams => main::device_named(qr/^Main Gate/), per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 49: streams, a device id in Chinese
--- request eval
main::events(streams => "\x{95E8}\x{7981}-1")
--- error_code: 200
--- response_body_like: "identity_id":\s*"91000021".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 50: who passed the main gate between 08:00 and 09:00 (UTC+8), employees only
--- request eval
main::events(streams => main::device_named(qr/^Main Gate/),
             datetime_gte => 1607385600, datetime_lte => 1607389200,
             userType => 1, per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 51: all strangers today (UTC+8)
--- request
GET /SophonFace/api/events?userType=4&datetime_gte=1607356800&datetime_lte=1607443199.999999&per_page=100&page=2
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 52: every VIP event on these two cameras
--- request eval
main::events(userType => 5,
             streams => main::device_named(qr/^Main Gate/) . ','
                        . main::device_named(qr/^Lobby/),
             per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 53: everything for one identity in a time window
--- request eval
my $id = main::most_common(sub { $_[0]{common}{identity_id} });
main::events(identity_id => $id, datetime_gte => 1607385600, per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 54: a score window + userType=4: strangers that came close
--- request
GET /SophonFace/api/events?score_min=40&score_max=60&userType=4&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 55: high scores of one group on one camera
--- request eval
main::events(groups => main::most_common(sub { $_[0]{common}{group_id} }),
             streams => main::device_named(qr/^Lobby/),
             score_min => 83, per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 56: filters that contradict each other match nothing
--- request
GET /SophonFace/api/events?userType=4&name=a
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 57: empty values are no filter
--- request
GET /SophonFace/api/events?name=&identity_id=&room=&score_min=&score_max=&datetime_gte=&datetime_lte=&groups=&streams=&userType=&per_page=20
--- error_code: 200
--- response_body_like eval
'"total_count":' . scalar(@{ SophonTest::fixtures() }) . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 58: a key without "=" is an empty value, no filter
--- request
GET /SophonFace/api/events?name&room&userType&groups&per_page=20
--- error_code: 200
--- response_body_like eval
'"total_count":' . scalar(@{ SophonTest::fixtures() }) . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 59: an empty name next to a real filter leaves that filter alone
--- request
GET /SophonFace/api/events?name=&userType=3&per_page=50
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 60: datetime_gte with an exponent: 1.6e9 is every event
--- request
GET /SophonFace/api/events?datetime_gte=1.6e9
--- error_code: 200
--- response_body_like eval
'"total_count":' . scalar(@{ SophonTest::fixtures() }) . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 61: exponents with a sign and in upper case (08:00 to 09:00 UTC+8)
--- request
GET /SophonFace/api/events?datetime_gte=1.6073856e%2B9&datetime_lte=16073892E2&per_page=100
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 62: an exponent and trailing zeros select one exact timestamp
--- request
GET /SophonFace/api/events?datetime_gte=1.700000014250E9&datetime_lte=170000001425e-2
--- error_code: 200
--- response_body_like: "_id":\s*"1700000014\.250100".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 63: scores with exponents (82 .. 82.5)
--- request
GET /SophonFace/api/events?score_min=8.2e1&score_max=8.25E%2B1&per_page=50
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000012".*"total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 64: negative and zero bounds are numbers like any other
--- request
GET /SophonFace/api/events?score_min=-1e3&datetime_gte=0&per_page=5
--- error_code: 200
--- response_body_like eval
'"total_count":' . scalar(@{ SophonTest::fixtures() }) . ',"next":(?:null|"[0-9a-f]+")\}\}$'
--- no_error_log
[error]



=== TEST 65: room, from identity_info.ext_info.room
--- request eval
main::events(room => main::most_common(\&main::ext_room),
             per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 66: room, from identity_info.room (edge event)
--- request
GET /SophonFace/api/events?room=3003
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000007".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 67: room, from identity_info.room when ext_info has no room
--- request
GET /SophonFace/api/events?room=R+3
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100002".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 68: room, from identity_info.room (generated events)
--- request eval
main::events(room => main::most_common(\&main::top_room),
             per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 69: room is exact: A%1 is that room only
--- request
GET /SophonFace/api/events?room=A%251
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000001".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 70: room is exact: A_1 is that room only, no pattern
--- request
GET /SophonFace/api/events?room=A_1
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000002".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 71: room with a backslash
--- request
GET /SophonFace/api/events?room=B%5C2
--- error_code: 200
--- response_body_like: "identity_id":\s*"9000003".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 72: room is a string, not a list: a comma is part of it
--- request
GET /SophonFace/api/events?room=R,1
--- error_code: 200
--- response_body_like: "identity_id":\s*"9100001".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 73: room with braces
--- request
GET /SophonFace/api/events?room=R%7B2%7D
--- error_code: 200
--- response_body_like: "identity_id":\s*"91000021".*"total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 74: room is no prefix match
--- request eval
my $room = main::most_common(\&main::ext_room);
main::events(room => substr($room, 0, length($room) - 1) . 'X')
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 75: strangers never match a room
--- request eval
main::events(room => main::most_common(sub { main::room_of($_[0]) }), userType => 4)
--- error_code: 200
--- response_body_like: "total_count":0,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 76: name + room
--- request eval
my $d = main::first_doc(sub {
    $_[0]{common}{identity_name} =~ /chen/i && defined main::room_of($_[0])
});
main::events(name => 'CHEN', room => main::room_of($d), per_page => 100)
--- error_code: 200
--- response_body_like: "total_count":[1-9]\d*,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]



=== TEST 77: all ten filters at once, taken from one generated event
--- request eval
my $d = main::first_doc(sub {
    my $c = $_[0]{common};
    $_[0]{_id} lt '17' && $c->{identity_name} =~ /^[A-Za-z]{4}/
        && defined main::room_of($_[0]) && defined $c->{person_type}
});
my $c = $d->{common};
my $ts = main::ts_text($d->{_id});
main::events(datetime_gte => $ts, datetime_lte => $ts,
             name => uc substr($c->{identity_name}, 1, 3),
             identity_id => $c->{identity_id},
             score_min => $c->{score}, score_max => $c->{score},
             userType => $c->{person_type},
             room => main::room_of($d),
             groups => $c->{group_id},
             streams => $c->{ep_info}{device_id})
--- error_code: 200
--- response_body_like: "total_count":1,"next":(?:null|"[0-9a-f]+")\}\}$
--- no_error_log
[error]
