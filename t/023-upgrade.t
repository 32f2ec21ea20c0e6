# vi:filetype=perl

# sql/schema.sql converts a table of the previous release in place: doc
# from jsonb to json, its GENERATED columns to columns the trigger fills,
# the new counts filled from the events, lz4 kept, and a second run
# changes nothing.  t/fixtures/schema-previous.sql is that release's
# script, as it shipped, run by a role of its own, sophon_upgrade_owner,
# in a schema of its own, upgrade_test; the new script runs as the
# superuser, as an operator may run it, and the tables it adds must still
# be the owner's, whose triggers write them.  Both are dropped at the
# start and at exit.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use SophonTest ();

repeat_each(1);
no_shuffle();

my $MainPid = $$;
my $Path = "SET search_path = upgrade_test, public;\n";

sub run_sql {
    my ($name, $what, $sql) = @_;
    my ($ok, $out, $err) = SophonTest::psql_script($sql);

    ok($ok, "$name - $what") or diag($err);
    return $out;
}

sub script {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    return <$fh>;
}

sub drop {
    SophonTest::psql("SET client_min_messages = warning;"
                     . " DROP SCHEMA IF EXISTS upgrade_test CASCADE;"
                     . " DROP ROLE IF EXISTS sophon_upgrade_owner");
}

END {
    if ($$ == $MainPid) {
        local $?;
        eval { drop() };
        warn "023-upgrade: cannot drop upgrade_test: $@" if $@;
    }
}

# two documents as the previous release stored them (jsonb), and what its
# columns held
our @Docs = (
    q~{"_id": "up-1", "timestamp": 1607400000.5, "common": {"person_type": 2, "identity_id": "7", "identity_name": "Ann Lee", "ep_info": {"device_id": "up-cam"}, "identity_info": {"ext_info": {"room": "101"}}}}~,
    q~{"_id": "up-2", "timestamp": 1607403600.25, "common": {"score": 88.5, "ep_info": {"device_id": "up-cam"}}}~,
);

add_block_preprocessor(sub {
    my $block = shift;
    my $name = $block->name;

    return if !defined $block->upgrade;

    drop();
    run_sql($name, 'its owner',
            "CREATE ROLE sophon_upgrade_owner LOGIN;\n"
            . "CREATE SCHEMA upgrade_test AUTHORIZATION sophon_upgrade_owner;\n");

    my ($ok, undef, $err) = SophonTest::psql_script(
        "$Path" . script('t/fixtures/schema-previous.sql')
        . "$Path INSERT INTO sophon_events (doc) VALUES "
        . join(', ', map { "('$_'::jsonb)" } @Docs) . ";\n",
        'sophon_upgrade_owner');
    ok($ok, "$name - the previous release's schema, by its owner")
        or diag($err);

    my $before = run_sql($name, 'its columns',
        "$Path SELECT id, ts, identity_id, identity_name, person_type,"
        . " score, group_id, device_id, room FROM sophon_events ORDER BY id;\n");

    run_sql($name, 'sql/schema.sql converts it',
            $Path . script('sql/schema.sql'));

    is(run_sql($name, 'the column types',
               "$Path SELECT format_type(atttypid, atttypmod),"
               . " attcompression, attgenerated = ''"
               . " FROM pg_attribute WHERE attrelid = 'sophon_events'::regclass"
               . " AND attname IN ('doc', 'id') ORDER BY attname;\n"),
       "json|l|t\ntext||t", "$name - doc is json, still lz4; id is a plain column");

    is(run_sql($name, 'the columns again',
        "$Path SELECT id, ts, identity_id, identity_name, person_type,"
        . " score, group_id, device_id, room FROM sophon_events ORDER BY id;\n"),
       $before, "$name - every column kept its value");

    run_sql($name, 'a writer inserts a document after the conversion',
            "$Path INSERT INTO sophon_events (doc) VALUES"
            . " ('{\"timestamp\":1607407200, \"_id\":\"up-3\","
            . " \"common\":{\"person_type\":5,\"ep_info\":{\"device_id\":\"up-cam\"}}}');\n");

    is(run_sql($name, 'its columns and bytes',
        "$Path SELECT id, ts, person_type, device_id, doc::text"
        . " FROM sophon_events WHERE id = 'up-3';\n"),
       'up-3|1607407200|5|up-cam|{"timestamp":1607407200, "_id":"up-3",'
       . ' "common":{"person_type":5,"ep_info":{"device_id":"up-cam"}}}',
       "$name - the trigger fills its columns; its bytes are kept");

    is(run_sql($name, 'a recount',
               "$Path SELECT * FROM sophon_events_recount();\n"),
       '3|0', "$name - every count (new ones included) is what the events give");

    is(run_sql($name, 'the owners',
               "$Path SELECT string_agg(DISTINCT relowner::regrole::text, ',')"
               . " FROM pg_class WHERE relnamespace = 'upgrade_test'::regnamespace"
               . " AND relkind = 'r';\n"),
       'sophon_upgrade_owner', "$name - every table is the owner's");

    is(run_sql($name, 'the identities',
               "$Path SELECT identity_id, identity_name, n"
               . " FROM sophon_event_identities;\n"),
       '7|Ann Lee|1', "$name - the identities were counted");

    is(run_sql($name, 'a total',
               "$Path SELECT sophon_events_total(1607400000, NULL,"
               . " '{up-cam}', NULL);\n"),
       3, "$name - totals over the converted events");

    run_sql($name, 'sql/schema.sql runs again', $Path . script('sql/schema.sql'));

    is(run_sql($name, 'a second recount',
               "$Path SELECT * FROM sophon_events_recount();\n"),
       '3|0', "$name - the second run changed no count");
});

run_tests();

__DATA__

=== TEST 1: a table of the previous release is converted in place
--- upgrade
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[error]
