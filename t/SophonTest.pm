package SophonTest;

# The test suite's own reading of the contract (doc/events-api.md),
# written independently of the module: it parses a request's query string,
# filters and orders the fixture events ($TEST_NGINX_FIXTURES, the JSON
# Lines that util/run-tests loaded) in Perl, and compares an answer with
# what it computed.  Every JSON body is also run through a JSON parser.
#
#   use lib 't';
#   use SophonTest;
#   add_response_body_check(\&SophonTest::check_body);
#
# It also holds what test files share about data: the database through
# psql, events inserted there, JSON text, UTF-8 bytes and percent-encoding
# (uri, pct_decode), joins for "eval" sections, and how a long list of
# failures becomes one check (ok_none); and about blocks: the standard
# location and JSON headers a block gets unless it says otherwise
# (default_location, default_json_headers), the contract's error bodies
# (error_body) and the shape of a page ($Page).

use strict;
use warnings;

use Encode qw(decode);
use File::Temp ();
use POSIX ();
use Time::HiRes ();
use JSON::PP;
use Test::More;
use Exporter 'import';

our @EXPORT_OK = qw(fixtures expected check_body parse_query uri
                    pct_decode js bytes_of csv joined insert_events
                    insert_sql first_difference ok_none newest_first
                    error_body);

# JSON::XS (libjson-xs-perl) when it is there: the fixtures are ~15 MB
my $JSON = eval { require JSON::XS; 'JSON::XS' } || 'JSON::PP';
my $json = $JSON->new->utf8->canonical;

my $fixtures;

# all fixture events, newest first: [{ doc => {...}, line => '...' }, ...]
sub fixtures {
    return $fixtures if $fixtures;

    my $file = $ENV{TEST_NGINX_FIXTURES}
        or die "TEST_NGINX_FIXTURES is not set: run the suite with make test\n";

    open my $fh, '<', $file or die "$file: $!\n";

    my @events;
    while (my $line = <$fh>) {
        chomp $line;
        next if $line eq '';
        push @events, { doc => $json->decode($line), line => $line };
    }

    close $fh;

    $fixtures = [ sort by_newest @events ];
    return $fixtures;
}

sub by_newest { newest_first($a->{doc}, $b->{doc}) }

# the contract's order of two documents, as sort's block gives it:
# negative when X comes first (newest first: timestamp desc, then _id
# desc, compared as bytes: PostgreSQL's "C" collation)
sub newest_first {
    my ($x, $y) = @_;
    return $y->{timestamp} <=> $x->{timestamp} || $y->{_id} cmp $x->{_id};
}

my %lists = map { $_ => 1 } qw(userType groups streams);

sub unescape {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return decode('UTF-8', $s, Encode::FB_CROAK);
}

# the query string as the contract reads it: { name => value,
# groups => [items], ... }; dies on what the contract calls malformed
sub parse_query {
    my ($qs) = @_;
    my %q;

    for my $pair (split /&/, $qs // '') {
        next if $pair eq '';
        my ($k, $v) = split /=/, $pair, 2;
        $k = unescape($k);
        $v = unescape($v // '');
        $k =~ s/\[\]$//;

        if ($lists{$k}) {
            next if $v =~ /^\s*$/;
            my @items = $v =~ /^\s*\[/
                      ? @{ JSON::PP->new->decode($v) }
                      : map { s/^ +| +$//gr } split /,/, $v, -1;
            push @{ $q{$k} }, @items;
            next;
        }

        die "$k: given more than once\n" if exists $q{$k};
        $q{$k} = $v;
    }

    # an empty value or an empty list is no filter
    for my $k (keys %q) {
        delete $q{$k} if ref $q{$k} ? !@{ $q{$k} } : $q{$k} eq '';
    }

    return \%q;
}

sub person_type {
    my ($c) = @_;
    return $c->{person_type} // 1;
}

sub room {
    my ($c) = @_;
    my $info = $c->{identity_info};
    return undef if ref $info ne 'HASH';

    # no autovivification: the fixture documents must stay as they are
    my $ext = ref $info->{ext_info} eq 'HASH' ? $info->{ext_info} : {};
    return $ext->{room} // $info->{room};
}

sub matches {
    my ($d, $q) = @_;
    my $c = $d->{common};

    return 0 if defined $q->{datetime_gte} && $d->{timestamp} < $q->{datetime_gte};
    return 0 if defined $q->{datetime_lte} && $d->{timestamp} > $q->{datetime_lte};
    return 0 if defined $q->{score_min} && $c->{score} < $q->{score_min};
    return 0 if defined $q->{score_max} && $c->{score} > $q->{score_max};
    return 0 if defined $q->{identity_id} && $c->{identity_id} ne $q->{identity_id};

    if (defined $q->{name}) {
        return 0 if index(lc $c->{identity_name}, lc $q->{name}) < 0;
    }

    if (defined $q->{room}) {
        my $room = room($c);
        return 0 if !defined $room || $room ne $q->{room};
    }

    if ($q->{userType}) {
        my $t = person_type($c);
        return 0 if !grep { $_ == $t } @{ $q->{userType} };
    }

    if ($q->{groups}) {
        return 0 if !grep { $_ eq $c->{group_id} } @{ $q->{groups} };
    }

    if ($q->{streams}) {
        return 0 if !grep { $_ eq $c->{ep_info}{device_id} } @{ $q->{streams} };
    }

    return 1;
}

# what the answer to this query string must be
sub expected {
    my ($qs) = @_;
    my $q = ref $qs ? $qs : parse_query($qs);

    my $per_page = $q->{per_page} // 10;
    my $page = $q->{page} // 0;

    # after=: the page that follows the cursor's event, numbered by it
    my $after;
    if (defined $q->{after}) {
        $after = decode_cursor($q->{after})
            or die "after: not a cursor: $q->{after}\n";
        $page = $after->{page};
    }

    my @match = grep { matches($_->{doc}, $q) } @{ fixtures() };

    if (defined $q->{top_k} && @match > $q->{top_k}) {
        $#match = $q->{top_k} - 1;
    }

    my $total = @match;
    my $first = $page * $per_page;
    my @page;

    if ($after) {
        my @rest = grep { older($_->{doc}, $after) } @match;
        my $n = _min($per_page, scalar @rest);
        @page = @rest[0 .. $n - 1];

    } else {
        @page = $first < $total
              ? @match[$first .. _min($first + $per_page, $total) - 1]
              : ();
    }

    # the next page's cursor: its page, and the last event of this one
    my $next;
    if (@page == $per_page && ($page + 1) * $per_page < $total) {
        $next = { page => $page + 1, ts => $page[-1]{doc}{timestamp},
                  id => $page[-1]{doc}{_id} };
    }

    my @events = map { $_->{doc} } @page;
    my @lines = map { $_->{line} } @page;

    # with_feature=0|false: each event without its feature vector
    if (defined $q->{with_feature} && $q->{with_feature} =~ /^(?:0|false)$/) {
        @events = map { without_feature($_) } @events;
        @lines = map { line_without_feature($_) } @lines;
    }

    return {
        events => \@events,
        lines => \@lines,
        pagination => {
            num_pages => int(($total + $per_page - 1) / $per_page),
            page => $page + 0,
            per_page => $per_page + 0,
            total_count => $total,
        },
        next => $next,
    };
}

# is the event after the cursor's in the answer's order (timestamp desc,
# _id desc, the _id compared as bytes: PostgreSQL's "C" collation)?
sub older {
    my ($d, $after) = @_;
    return $d->{timestamp} < $after->{ts}
        || ($d->{timestamp} == $after->{ts} && $d->{_id} lt $after->{id});
}

# pagination.next as README's cursor format gives it: { page, ts, id }, or
# undef if it is not one
sub decode_cursor {
    my ($hex) = @_;
    return undef if $hex !~ /\A(?:[0-9a-f]{2})+\z/;
    my $b = pack 'H*', $hex;
    return undef if length $b < 10;
    my ($version, $fp, $page, $tslen) = unpack 'C N N C', $b;
    return undef if $version != 1 || length $b < 10 + $tslen;
    my $ts = substr $b, 10, $tslen;
    my $id = eval { decode('UTF-8', substr($b, 10 + $tslen),
                           Encode::FB_CROAK) };
    return undef if !defined $id || $ts !~ /\A-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\z/;
    return { page => $page, ts => $ts + 0, id => $id, fingerprint => $fp };
}

sub _min { $_[0] < $_[1] ? $_[0] : $_[1] }

# a copy of the document without common.recognize_face_attr.feature, where
# that is an object's key; the fixture documents stay as they are
sub without_feature {
    my ($doc) = @_;
    my $attr = ref $doc->{common} eq 'HASH'
             ? $doc->{common}{recognize_face_attr} : undef;

    return $doc if ref $attr ne 'HASH' || !exists $attr->{feature};

    my %attr = %$attr;
    delete $attr{feature};

    return { %$doc, common => { %{ $doc->{common} },
                                recognize_face_attr => \%attr } };
}

# a fixture line without its feature vector, as with_feature=0 sends it:
# the fixtures' one "feature" is always a later member, with the comma
# before it
sub line_without_feature {
    my ($line) = @_;
    my $n = () = $line =~ /"feature"/g;

    die "a fixture line has $n \"feature\" keys: line_without_feature"
        . " knows only lines with one\n" if $n > 1;

    return $line if $n == 0;

    (my $cut = $line) =~ s/,"feature":\[[^\]]*\]//
        or die "a fixture line's \"feature\" is not a later member\n";

    return $cut;
}

# add_response_body_check's callback: every body is JSON; a 200 from the
# events location is exactly the page the fixtures give for its query, and
# each event the bytes of its fixture line
sub check_body {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run;

    my $name = $block->name;
    my $request = ref $block->request ? $block->request->[$req_idx]
                                      : $block->request;

    # a --- raw_request block has no request section: its bytes are its own
    $request //= ($block->can('raw_request') && $block->raw_request) // '';
    $request = '' if ref $request;

    return if !defined $body || $body eq '';
    return if $request =~ /^HEAD /;

    my $data = eval { $JSON->new->utf8->decode($body) };
    ok(defined $data, "$name - the body is valid JSON")
        or diag("$@: " . substr($body, 0, 300));

    return if !$data || !ref $data || !exists $data->{pagination};
    return if $request !~ m{^GET /SophonFace/api/events(?:\?(\S*))?(?:\s|$)};

    my $qs = $1 // '';
    my $want = expected($qs);

    my %got = %{ $data->{pagination} };
    my $next = delete $got{next};

    is_deeply(\%got, $want->{pagination},
              "$name - pagination as the fixtures give");

    check_next($name, $next, $want->{next}, exists $data->{pagination}{next});

    is_deeply([ map { $_->{_id} } @{ $data->{data} } ],
              [ map { $_->{_id} } @{ $want->{events} } ],
              "$name - the events and their order as the fixtures give");

    is_deeply($data->{data}, $want->{events},
              "$name - each event is the stored document");

    check_bytes($name, $body, $want->{lines});
}

# the body's "data" is the lines, byte for byte, in order
sub check_bytes {
    my ($name, $body, $lines) = @_;
    my $want = '{"data":[' . join(',', @$lines) . '],"pagination":';
    my $got = substr $body, 0, length $want;

    return if ok($got eq $want,
                 "$name - each event is its fixture line, byte for byte");

    my $at = first_difference($got, $want);

    diag("first difference at byte $at: got "
         . substr($got, $at > 40 ? $at - 40 : 0, 80) . "\n   expected "
         . substr($want, $at > 40 ? $at - 40 : 0, 80));
}

# pagination.next: null on the last page, else the cursor of this page's
# last event, opening the next page
sub check_next {
    my ($name, $got, $want, $present) = @_;

    ok($present, "$name - pagination has \"next\"");

    if (!$want) {
        is($got, undef, "$name - pagination.next is null: the last page");
        return;
    }

    my $c = defined $got ? decode_cursor($got) : undef;
    ok($c, "$name - pagination.next is a cursor")
        or diag('next: ' . ($got // 'null'));
    return if !$c;

    is_deeply([ @$c{qw(page ts id)} ], [ @$want{qw(page ts id)} ],
              "$name - pagination.next opens the next page after the last"
              . " event");
}

# the events location every block gets unless it brings its own config
our $Location = <<'_EOC_';
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_DB";
    }
_EOC_

# for a block preprocessor: the standard location, when the block brings
# no config of its own
sub default_location {
    my ($block) = @_;
    $block->set_value("config", $Location) if !defined $block->config;
}

# the Content-Type header of a JSON answer (a response_headers line)
our $JsonType = 'Content-Type: application/json; charset=utf-8';

# for a block preprocessor: the answers of a block that says nothing of
# their headers are JSON, each
sub default_json_headers {
    my ($block) = @_;

    return if defined $block->response_headers
              || defined $block->response_headers_like;

    my $reqs = $block->pipelined_requests // $block->request;
    $block->set_value("response_headers",
                      ref $reqs ? [ ($JsonType) x @$reqs ] : $JsonType);
}

# for a test file: the standard location, and every body checked
sub use_standard_location {
    Test::Nginx::Socket::add_response_body_check(\&check_body);
    Test::Nginx::Socket::add_block_preprocessor(\&default_location);
}

# a whole page as the contract shapes it (a response_body_like): at least
# one event, and its pagination
our $Page = qr/^\{"data":\[\{.*\}\],"pagination":\{"num_pages":\d+,"page":\d+,"per_page":\d+,"total_count":\d+,"next":(?:null|"[0-9a-f]+")\}\}$/s;

# the contract's error bodies when the database fails, by status
our %Error = (
    500 => '{"error":{"code":50000,"message":"the database answered with an unexpected error","status":"INTERNAL_ERROR"}}',
    503 => '{"error":{"code":50300,"message":"the database is unavailable","status":"SERVICE_UNAVAILABLE"}}',
    504 => '{"error":{"code":50400,"message":"the database did not answer in time","status":"GATEWAY_TIMEOUT"}}',
);

sub error_body {
    my ($status) = @_;
    return $Error{$status} // die "no error body for $status\n";
}

# psql(SQL): the output of SQL run as the superuser
# ($TEST_NGINX_SOPHON_ADMIN_DB), rows joined by newlines and columns by
# "|"; dies on an error; never waits for long on a stuck server
sub psql {
    my ($sql) = @_;

    local $ENV{PGCONNECT_TIMEOUT} = 5;
    local $ENV{PGOPTIONS} = '-c statement_timeout=60s';

    open my $fh, '-|', 'psql', $ENV{TEST_NGINX_SOPHON_ADMIN_DB}, '-X', '-q',
         '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', $sql
        or die "psql: $!\n";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "psql failed ($?): $sql\n";
    chomp $out;

    return $out;
}

# psql_script(SQL, [ROLE]): runs a script of several statements in one
# session, as ROLE (the admin conninfo with another user: the test cluster
# trusts every role) or as the superuser, stopping at the first error.
# Returns (ok, stdout, stderr): a test that expects a statement to fail
# reads stderr.  Rows as in psql().
sub psql_script {
    my ($sql, $role) = @_;

    my $conninfo = $ENV{TEST_NGINX_SOPHON_ADMIN_DB};
    $conninfo =~ s/\buser=\S+/user=$role/ if defined $role;

    local $ENV{PGCONNECT_TIMEOUT} = 5;
    local $ENV{PGOPTIONS} = '-c statement_timeout=120s';

    my ($in, $file) = File::Temp::tempfile('sophon-psql-XXXXXX', TMPDIR => 1,
                                           SUFFIX => '.sql', UNLINK => 1);
    binmode $in;
    print $in $sql;
    close $in or die "$file: $!\n";

    my $err = File::Temp->new(TEMPLATE => 'sophon-psql-XXXXXX', TMPDIR => 1);
    my $pid = open my $fh, '-|';
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        open STDERR, '>', $err->filename or POSIX::_exit(127);
        exec('psql', $conninfo, '-X', '-q', '-A', '-t',
             '-v', 'ON_ERROR_STOP=1', '-f', $file) or POSIX::_exit(127);
    }

    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my $ok = $? == 0;
    chomp $out;

    my $stderr = do { local (@ARGV, $/) = ($err->filename); <> } // '';
    unlink $file;

    return ($ok, $out, $stderr);
}

# psql_sessions([SQL, ROLE], ...): runs the scripts each in its own
# session, as ROLE (undef: the superuser), all at once (they start
# together, half a second from now); returns [ok, stdout, stderr] of each,
# in order, as psql_script() does
sub psql_sessions {
    my @scripts = @_;
    my $start = Time::HiRes::time() + 0.5;
    my (@pids, @files);

    for my $script (@scripts) {
        my $file = File::Temp->new(TEMPLATE => 'sophon-session-XXXXXX',
                                   TMPDIR => 1);
        my $pid = fork;
        die "fork: $!\n" if !defined $pid;

        if ($pid == 0) {
            my $wait = $start - Time::HiRes::time();
            Time::HiRes::sleep($wait) if $wait > 0;
            my ($ok, $out, $err) = psql_script(@$script);
            open my $fh, '>', $file->filename or POSIX::_exit(127);
            print $fh join("\0", $ok ? 1 : 0, $out, $err);
            close $fh;
            POSIX::_exit(0);
        }

        push @pids, $pid;
        push @files, $file;
    }

    waitpid $_, 0 for @pids;

    return map {
        my $text = do { local (@ARGV, $/) = ($_->filename); <> } // '';
        [ split /\0/, $text, 3 ];
    } @files;
}

# percent-encodes a query value (UTF-8)
sub uri {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# the bytes of a percent-encoded string: every %XX decoded, nothing else
# ("+" stays a "+"); uri()'s inverse, as bytes
sub pct_decode {
    my ($s) = @_;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

# the JSON text of a value (a string too), UTF-8 bytes (not \u escapes)
sub js { JSON::PP->new->utf8->allow_nonref->encode($_[0]) }

# the UTF-8 bytes of a Perl string
sub bytes_of { Encode::encode('UTF-8', $_[0]) }

# join() for "eval" sections, where Test::Base has a join of its own:
# csv(LIST) joins with commas, joined(SEP, LIST) with SEP
sub csv { join ',', @_ }
sub joined { my $sep = shift; join $sep, @_ }

# insert_sql(DOC, ...): the statement that inserts the documents (JSON
# text, bytes) into sophon_events, one row each
sub insert_sql {
    my @docs = @_;

    die "insert_sql: a document holds \$doc\$\n"
        if grep { index($_, '$doc$') >= 0 } @docs;

    return "INSERT INTO sophon_events (doc) VALUES "
           . join(', ', map { "(\$doc\$$_\$doc\$)" } @docs) . ";\n";
}

# insert_events(DOC, ...): the documents into sophon_events in one
# statement, as the superuser; dies with psql's message
sub insert_events {
    my ($ok, undef, $err) = psql_script(insert_sql(@_));
    die "insert_events: $err\n" if !$ok;
}

# the offset of the first byte where two strings differ (the length of
# the shorter when one starts the other)
sub first_difference {
    my ($got, $want) = @_;
    my $at = 0;
    $at++ while $at < length $got && $at < length $want
                && substr($got, $at, 1) eq substr($want, $at, 1);
    return $at;
}

# ok_none(NAME, [FAILURE, ...], WHAT): one check, "NAME - WHAT", that
# passes when the list of failures is empty; else its diagnostics show the
# first five, and how many there are
sub ok_none {
    my ($name, $bad, $what) = @_;
    ok(!@$bad, "$name - $what")
        or diag(join "\n", @$bad[0 .. ($#$bad < 4 ? $#$bad : 4)],
                           @$bad > 5 ? ('... ' . @$bad . ' in all') : ());
}

1;
