# vi:filetype=perl

# The error log stays nginx's: libpq's messages (which end in "\n", some
# with "\n\t" inside) never split a line, so every line of error.log starts
# with nginx's timestamp; the server's NOTICE and WARNING messages are
# logged by the module (a line with "sophon_events" and their text), not
# written to stderr (which is the error log file, raw, in a daemon).  And a
# host *name* in sophon_events_db, which libpq would resolve with a
# blocking getaddrinfo() in the worker, is refused at startup (nginx -t),
# unless hostaddr= gives it an address (position by position, in lists);
# addresses and Unix-socket directories are accepted.  gssencmode other
# than disable is refused at startup too, and an operator's
# fallback_application_name is kept.
#
# The lines are checked at log level info: at debug, nginx's own core
# logs the response header as it is, one line per header.
#
# The NOTICE comes from a database of its own in the test cluster,
# $NoticeDb, created here with sql/schema.sql and sql/roles.sql, whose
# sophon_events_total() raises NOTICE 'sophon-notice-marker' and then
# answers as before (the module calls it for a time window); it is dropped
# at the end (WITH (FORCE): nginx may still hold a connection to it).

use Test::Nginx::Socket 'no_plan';
use FindBin ();
use lib 't';
use SophonTest;
use SophonClient qw(:all);

repeat_each(1);
no_shuffle();
no_long_string();

$SophonClient::AppName = 'sophon_017_check';

my $MainPid = $$;
our $NoticeDb = 'sophon_notice';
($ENV{TEST_NGINX_SOPHON_NOTICE_DB} = $ENV{TEST_NGINX_SOPHON_DB} // '')
    =~ s/\bdbname=\S+/dbname=$NoticeDb/;

sub drop_notice_db {
    psql_rows("DROP DATABASE IF EXISTS $NoticeDb WITH (FORCE)",
              admin_conninfo('postgres'));
}

sub create_notice_db {
    drop_notice_db();
    psql_rows("CREATE DATABASE $NoticeDb", admin_conninfo('postgres'));

    local $ENV{PGCONNECT_TIMEOUT} = 5;
    for my $file ('schema.sql', 'roles.sql') {
        system('psql', admin_conninfo($NoticeDb), '-X', '-q', '-v',
               'ON_ERROR_STOP=1', '-f', "$FindBin::Bin/../sql/$file") == 0
            or die "psql -f sql/$file failed\n";
    }

    psql_rows(<<'_SQL_', admin_conninfo($NoticeDb));
ALTER FUNCTION sophon_events_total(double precision, double precision,
                                   text[], smallint[])
    RENAME TO sophon_events_total_quiet;
CREATE FUNCTION sophon_events_total(gte double precision,
    lte double precision, devices text[], types smallint[])
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE NOTICE 'sophon-notice-marker';
    RETURN sophon_events_total_quiet(gte, lte, devices, types);
END
$$;
_SQL_
}

create_notice_db();
END { if ($$ == $MainPid) { local $?; eval { drop_notice_db() } } }

use_scenarios();

our $Stamp = qr{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[};

# every line of the error log, since nginx started for this block
sub scenario_stamped {
    my ($block) = @_;
    my $name = $block->name;
    my @lines = @{ log_since(errlog(), 0) };
    my @bad = grep { $_ !~ $Stamp } @lines;
    ok(@lines > 0, "$name - the error log has lines (" . @lines . ")");
    is(scalar @bad, 0, "$name - every line of error.log starts with nginx's"
                       . " timestamp")
        or diag(join '', map { "  [$_]\n" } @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
}

# the module's backend carries the operator's fallback_application_name
sub scenario_app_name {
    my ($block) = @_;
    my $name = $block->name;
    my $q = "SELECT count(*) FROM pg_stat_activity"
            . " WHERE usename = 'sophon_reader' AND application_name = '%s'";

    my ($mine) = wait_until(3, 0.1, sub {
        psql_rows(sprintf($q, 'mine'), admin_conninfo('postgres'))->[0][0]
    });
    ok($mine, "$name - the module's backend shows application_name 'mine'");
}

run_tests();

__DATA__

=== TEST 1: the database refuses connections: 503, and libpq's message (two lines, "\n\t") does not split the error log's lines
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=1 dbname=sophon user=sophon_reader";
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /SophonFace/api/events?per_page=2"]
--- error_code eval
[503, 503]
--- log_level: info
--- scenario: stamped
--- error_log
Connection refused
--- no_error_log eval
[qr{^(?!\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[)}, "[alert]", "[crit]", "[emerg]"]



=== TEST 2: a server NOTICE goes to the error log, on an nginx line naming sophon_events, not raw to stderr
--- config
    location = /notice/events {
        sophon_events;
        sophon_events_db "$TEST_NGINX_SOPHON_NOTICE_DB" connections=1;
    }
--- request eval
["GET /notice/events?per_page=1&datetime_gte=0",
 "GET /notice/events?per_page=2&page=1&datetime_lte=1e10"]
--- error_code eval
[200, 200]
--- response_body eval
['{"data":[],"pagination":{"num_pages":0,"page":0,"per_page":1,"total_count":0,"next":null}}',
 '{"data":[],"pagination":{"num_pages":0,"page":1,"per_page":2,"total_count":0,"next":null}}']
--- log_level: info
--- scenario: stamped
--- error_log eval
qr{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\].*sophon_events.*sophon-notice-marker}
--- no_error_log eval
[qr{^(?!\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[)}, "[alert]", "[crit]", "[emerg]"]



=== TEST 3: host=localhost (a name, no hostaddr) is refused at startup
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=localhost port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
--- request
GET /SophonFace/api/events?per_page=1
--- must_die
--- error_log eval
["[emerg]", qr{\[emerg\].*host}]



=== TEST 4: an address, a Unix-socket directory, and a name with hostaddr= are accepted
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
    location = /unix/events {
        sophon_events;
        sophon_events_db "host=/var/run/postgresql port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
    location = /hostaddr/events {
        sophon_events;
        sophon_events_db "host=somename hostaddr=127.0.0.1 port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
--- request eval
["GET /SophonFace/api/events?per_page=1",
 "GET /hostaddr/events?per_page=1",
 "GET /unix/events?per_page=1"]
--- error_code_like eval
["^200\$", "^200\$", "^(?:200|503)\$"]
--- response_body_like eval
['"total_count":[1-9]', '"total_count":[1-9]', '.']
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 5: gssencmode=prefer is refused at startup
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader gssencmode=prefer";
    }
--- request
GET /SophonFace/api/events?per_page=1
--- must_die
--- error_log eval
[qr{\[emerg\].*gssencmode}]



=== TEST 6: host lists: a name with its own address in hostaddr, then an address with an empty hostaddr position, is accepted
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=db1,127.0.0.1 hostaddr=127.0.0.1, port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- response_body_like: "total_count":[1-9]
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 7: host lists: a name at a position whose hostaddr is empty is refused at startup, named
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1,db2 hostaddr=127.0.0.1, port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader";
    }
--- request
GET /SophonFace/api/events?per_page=1
--- must_die
--- error_log eval
[qr{\[emerg\].*"host=db2"}]



=== TEST 8: the operator's fallback_application_name is kept: the module's backend shows it
--- config
    location = /SophonFace/api/events {
        sophon_events;
        sophon_events_db "host=127.0.0.1 port=$TEST_NGINX_SOPHON_PGPORT dbname=sophon user=sophon_reader fallback_application_name=mine";
    }
--- request
GET /SophonFace/api/events?per_page=1
--- error_code: 200
--- scenario: app_name
--- no_error_log
[alert]
[crit]
[emerg]
