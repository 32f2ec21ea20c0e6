# vi:filetype=perl

# The tools around the module: the schema can run again on a live database,
# the generator is deterministic and writes valid events, and the loader
# refuses a bad file whole, naming the line.  They run against a database
# of their own, so the fixtures of the other files stay as they are.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;

my $admin = $ENV{TEST_NGINX_SOPHON_ADMIN_DB}
    or plan skip_all => 'TEST_NGINX_SOPHON_ADMIN_DB is not set: run make test';

my $db = 'sophon_tools_test';
(my $conninfo = $admin) =~ s/dbname=\S+/dbname=$db/;
my $dir = tempdir(CLEANUP => 1);

sub psql {
    my ($info, $sql) = @_;
    my $out = `psql "$info" -X -q -A -t -v ON_ERROR_STOP=1 -c "$sql" 2>&1`;
    die "psql: $out" if $?;
    chomp $out;
    return $out;
}

sub run {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    return ($? >> 8, $out);
}

sub write_file {
    my ($name, @lines) = @_;
    my $path = "$dir/$name";
    open my $fh, '>', $path or die "$path: $!";
    print $fh map { "$_\n" } @lines;
    close $fh;
    return $path;
}

psql($admin, "DROP DATABASE IF EXISTS $db");
psql($admin, "CREATE DATABASE $db");

END {
    eval { psql($admin, "DROP DATABASE IF EXISTS $db") } if $admin;
}

# the schema, twice: the second run changes nothing and fails on nothing

for my $round (1, 2) {
    my ($rc, $out) = run("psql", "\"$conninfo\"", "-X", "-q",
                         "-v", "ON_ERROR_STOP=1", "-f", "sql/schema.sql");
    is($rc, 0, "sql/schema.sql, run $round") or diag($out);

    ($rc, $out) = run("psql", "\"$conninfo\"", "-X", "-q",
                      "-v", "ON_ERROR_STOP=1", "-f", "sql/roles.sql");
    is($rc, 0, "sql/roles.sql, run $round") or diag($out);
}

# the generator: same N and SEED, same bytes; another seed, other bytes

my ($rc, $a) = run("util/sophon-events-gen", 40, 7);
is($rc, 0, "the generator runs");
my (undef, $b) = run("util/sophon-events-gen", 40, 7);
my (undef, $c) = run("util/sophon-events-gen", 40, 8);

ok($a eq $b, "same N and SEED give the same bytes");
ok($a ne $c, "another SEED gives other events");

my @events = map { decode_json($_) } split /\n/, $a;
is(scalar @events, 40, "N lines, each a JSON document");

my ($ids, $norms) = (0, 0);
my %seen;
for my $e (@events) {
    $ids++ if !$seen{ $e->{_id} }++;
    my $f = $e->{common}{recognize_face_attr}{feature};
    my $sum = 0;
    $sum += $_ * $_ for @$f;
    $norms++ if @$f == 512 && abs(sqrt($sum) - 1) < 1e-6;
}
is($ids, 40, "every _id is unique");
is($norms, 40, "every feature has 512 floats of norm 1");

# the loader: a good file loads, whole

my $good = write_file("good.jsonl", split /\n/, $a);
($rc, my $out) = run("util/sophon-events-load", "\"$conninfo\"", $good);
is($rc, 0, "a good file loads") or diag($out);
is(psql($conninfo, "SELECT count(*) FROM sophon_events"), 40,
   "all of it");
is(psql($conninfo, "SELECT sophon_events_total(NULL, NULL, NULL, NULL)"), 40,
   "and the counts kept with it agree");

# a malformed line: the line is named, nothing of the file is written

my @more = split /\n/, (run("util/sophon-events-gen", 5, 99))[1];
my $bad = write_file("bad.jsonl", @more[0 .. 2], '{"_id": "x", oops', @more[3, 4]);
($rc, $out) = run("util/sophon-events-load", "\"$conninfo\"", $bad);
isnt($rc, 0, "a malformed line fails the load");
like($out, qr/\Q$bad\E:4:/, "and names its line") or diag($out);
is(psql($conninfo, "SELECT count(*) FROM sophon_events"), 40,
   "nothing of that file was written");

# a duplicate _id, inside the file and against the table

my $dup = write_file("dup.jsonl", @more[0, 1], $more[0]);
($rc, $out) = run("util/sophon-events-load", "\"$conninfo\"", $dup);
isnt($rc, 0, "a duplicate _id in the file fails the load");
like($out, qr/\Q$dup\E:3:/, "and names its line") or diag($out);

my $again = write_file("again.jsonl", @more[0, 1], (split /\n/, $a)[5]);
($rc, $out) = run("util/sophon-events-load", "\"$conninfo\"", $again);
isnt($rc, 0, "an _id already in the table fails the load");
like($out, qr/\Q$again\E:3:/, "and names its line") or diag($out);

is(psql($conninfo, "SELECT count(*) FROM sophon_events"), 40,
   "nothing of those files was written");

# the writer's role inserts and deletes; the counts follow

psql($conninfo, "SET ROLE sophon_writer; DELETE FROM sophon_events"
                . " WHERE id IN (SELECT id FROM sophon_events LIMIT 3)");
is(psql($conninfo, "SELECT sophon_events_total(NULL, NULL, NULL, NULL)"), 37,
   "deletes by the writer's role are counted");

# the reader's role reads, and only reads

($rc, $out) = run("psql", "\"$conninfo\"", "-X", "-q", "-c",
                  "\"SET ROLE sophon_reader; DELETE FROM sophon_events\"");
like($out, qr/permission denied|read-only/, "the reader cannot write");

done_testing();
