package Test::Nginx::Socket;

# A compatible subset of openresty's Test::Nginx::Socket, for machines where
# the real one (not packaged for Debian) is missing.  The Makefile only puts
# t/lib on @INC when `perl -MTest::Nginx::Socket -e1` fails, and the same
# t/*.t files must pass under both, so the API, section names, environment
# variables and subtest names follow the real module.  Anything not listed
# here is absent (an unknown section is silently ignored, as Test::Base does).
#
# Sections: main_config, http_config, post_main_config, config, user_files,
# request (string or array of strings), raw_request, pipelined_requests,
# more_headers, timeout, abort, shutdown, wait, ignore_response,
# error_code[_like], response_headers[_like], raw_response_headers_[un]like,
# response_body, response_body_[un]like, [no_]error_log, [no_]access_log,
# [no_]shutdown_error_log, skip_nginx, skip_eval, log_level, server_name,
# error_log_file, server_addr_for_client, raw_request_middle_delay,
# must_die, suppress_stderr, http2, no_http2, curl_protocol, curl_options,
# curl_error; ONLY, SKIP and LAST come from Test::Base.
#
# Environment: TEST_NGINX_BINARY, _LOAD_MODULES, _SERVER_PORT, _PORT,
# _CLIENT_PORT, _SERVROOT, _NO_CLEAN, _USE_VALGRIND, _TIMEOUT, _SLEEP,
# _NO_SHUFFLE, _LOG_LEVEL, _MASTER_PROCESS, _WORKER_USER, _USE_HTTP2.
#
# HTTP/2 (TEST_NGINX_USE_HTTP2=1, or a block's --- http2): the server
# listens for cleartext HTTP/2 only and curl --http2-prior-knowledge makes
# the requests; which blocks stay HTTP/1 is use_http2()'s business (see
# Test::Nginx::Compat::Server), as in the real one.
#
# Built only on Debian-packaged modules.  Private helpers live in
# Test::Nginx::Compat::Server (nginx side) and ::Client (HTTP side).

use strict;
use warnings;

# Inherit from Test::Base (without Spiffy's source filter): this gives the
# block parser, filters (eval, chomp, ...), --- ONLY / --- SKIP, and makes
# `use Test::Nginx::Socket` export Test::Base's functions (and, through it,
# Test::More's) next to ours, exactly like the real module.
use Test::Base -base;

use List::Util qw(min shuffle);
use Time::HiRes qw(sleep);

use Test::Nginx::Compat::Server;
use Test::Nginx::Compat::Client
    qw(build_request send_request send_request_by_curl parse_response);

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout check_accum_error_log add_block_preprocessor bail_out
    add_cleanup_handler add_response_body_check
);

# Test::Nginx::Socket::use_http2($block) and $Test::Nginx::Socket::UseHttp2
# are there in the real one too (imported from its Test::Nginx::Util)

my @BlockPreprocessors;
my @ResponseBodyChecks;
my $PrevBlock;
my $PrevConfig;

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }

# Callbacks get ($block, $body, $req_idx, $repeated_req_idx, $dry_run).
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

# String comparison honouring no_long_string and qr// expectations.
sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return Test::More::is($got, $expected, $desc) if $NoLongString;
    return is($got, $expected, $desc);    # Test::Base's: diffs long strings
}

# Blocks run in random order unless no_shuffle() / TEST_NGINX_NO_SHUFFLE=1,
# as in the real module.
sub run_tests () {
    $NginxVersion = nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
        $PrevBlock = $block;
    }

    cleanup();
}

sub run_test ($) {
    my ($block) = @_;
    my $name       = $block->name;
    my $rand_ports = {};
    my $config     = expand_env($block->config, $name, $rand_ports);

    my ($skip_count, $skip_reason) = skip_spec($block);

    # --- must_die: nginx must refuse to start with this config; no request
    # is made, --- error_log is checked against what it logged (as in the
    # real one, whose command line always names the error log with -e).
    if (!defined $skip_count && defined $block->must_die) {
        $config //= $PrevConfig;
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one.") unless defined $config;

        stop_nginx($name);
        check_prev_block_shutdown_error_log();
        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);

        my $must_die = $block->must_die;
        $must_die =~ s/^\s+|\s+$//g;

        # once per repetition, as the real one does
        for my $rep (0 .. $RepeatEach - 1) {
            reset_error_log_pos();
            my ($status, $exit_code) =
                start_nginx_once($name, defined $block->suppress_stderr);

            if ($status == -1) {
                fail("$name - failed to execute the nginx command line");
            } elsif ($status & 128) {
                fail("$name - nginx core dumped");
            } elsif ($must_die =~ /^\d+$/) {
                Test::More::is($must_die, $exit_code,
                               "$name - die with the expected exit code");
            } else {
                Test::More::isnt($status, 0, "$name - die as expected");
            }

            check_error_log($block, $rep);

            if ($status == 0) {
                warn "WARNING: $name - nginx must die but it does not;"
                     . " killing it (req $rep)\n";
                stop_nginx($name);
            }
        }

        # the next block starts its own nginx
        $PrevBlock = undef;
        return;
    }

    # A block with a config gets a freshly started nginx; one without
    # reuses the running server (real semantics).
    if (!defined $skip_count && (defined $config || !nginx_running())) {
        $config //= $PrevConfig;
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one.") unless defined $config;
        $PrevConfig = $config;

        stop_nginx($name);
        check_prev_block_shutdown_error_log();
        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        start_nginx($name);
    }

    reset_error_log_pos();
    for my $rep (0 .. $RepeatEach - 1) {
        write_user_files($block, $rand_ports) if $rep > 0;
        if (defined $skip_count) {
            SKIP: { skip("$name - $skip_reason", $skip_count) }
            next;
        }
        run_requests($block, $rep);
    }

    # Under valgrind nginx must exit for the leak report: one run per block.
    if ($UseValgrind && !defined $skip_count) {
        stop_nginx($name);
        report_valgrind($name);
    }
}

# Returns (count, reason) when --- skip_nginx / --- skip_eval say so.
sub skip_spec {
    my ($block) = @_;
    my $name = $block->name;

    if (defined(my $spec = $block->skip_nginx)) {
        my ($count, $op, $ver, $reason) =
            $spec =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+\.\d+\.\d+)
                       (?:\s*:\s*(.*?))?\s*$}x
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my $canon = sprintf '%d.%03d%03d', split /\./, $ver;
        return ($count, $reason || "nginx version $op $ver")
            if eval "$NginxVersion $op $canon";
    }

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my ($count, $code) = ($1, $2);
        my $skip = eval $code;
        bail_out("$name - skip_eval - failed to eval the Perl code "
                 . "\"$code\": $@") if $@;
        return ($count, 'skip_eval') if $skip;
    }

    return;
}

# One repetition of a block: send the request(s), check each response, then
# the logs.
sub run_requests {
    my ($block, $rep) = @_;
    my $name      = $block->name;
    my $reqs      = requests_from_block($block);
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $timeout   = parse_time($block->timeout) // $Timeout;
    my $req_idx   = 0;

    for my $k (0 .. $#$reqs) {
        my $packets = $reqs->[$k];
        my $head_req = (join '', map { $_->{value} } @$packets)
                       =~ /^\s*HEAD\s+/;

        my %o = (
            name         => $name,
            packets      => $packets,
            addr         => $block->server_addr_for_client // $ServerAddr,
            port         => $ServerPortForClient,
            timeout      => $timeout,
            middle_delay => scalar $block->raw_request_middle_delay,
            shutdown     => scalar $block->shutdown,
            abort        => defined $block->abort,
        );

        # HTTP/2 goes through curl, as in the real one (which does not
        # apply --- abort, --- shutdown or the packets' delays there)
        my $raw = use_http2($block)
            ? send_request_by_curl(
                  %o,
                  http2      => 1,
                  request    => join('', map { $_->{value} } @$packets),
                  protocol   => $block->curl_protocol // 'http',
                  options    => scalar $block->curl_options,
                  curl_error => scalar $block->curl_error)
            : send_request(%o);
        $raw //= '';

        # Pipelined responses all arrive on one connection: peel them off
        # one by one.
        my $n = $pipelined ? @$pipelined : 1;
        while ($n--) {
            my ($res, $raw_headers, $left);
            if (!defined $block->ignore_response) {
                ($res, $raw_headers, $left) =
                    parse_response($name, $raw, $head_req);
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx,
                                           $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx,
                                       $need_array);
                check_response_body($block, $res, $req_idx, $rep,
                                    $need_array);
            }

            if ($pipelined) {
                $raw = $left // '';
            } elsif (defined $left) {
                $left =~ s/([\0-\037\200-\377])/sprintf '\x{%02x}', ord $1/eg;
                warn "WARNING: $name - unexpected extra bytes after last "
                     . "chunk in response: \"$left\"\n";
            }

            if ($n || $k < $#$reqs) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep);
                check_access_log($block, $rep)
                    unless defined $block->ignore_response;
            }
            $req_idx++;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
    check_access_log($block, $rep) unless defined $block->ignore_response;
}

# Returns [[packet, ...], ...]: one packet list per connection.
sub requests_from_block {
    my ($block) = @_;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [[ map { { value => $_ } } ref $raw ? @$raw : $raw ]];
    }

    my $more = $block->more_headers // '';
    my $headers_for = sub {
        my ($i) = @_;
        return $more unless ref $more eq 'ARRAY';
        bail_out("$name - --- more_headers lacks data for request $i")
            unless defined $more->[$i];
        return $more->[$i];
    };

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = join '', map {
            build_request($name, $reqs->[$_], $headers_for->($_),
                          $_ == $#$reqs ? 'close' : 'keep-alive')
        } 0 .. $#$reqs;
        return [[{ value => $all }]];
    }

    my $request = $block->request;
    if (!ref $request) {
        # Leading blank lines and "# comment" lines are allowed.
        1 while defined $request && $request =~ s/^\s*#[^\n]+\s+|^\s+//s;
        return [[{ value => build_request($name, $request,
                                          $headers_for->(0), 'close') }]];
    }

    bail_out("$name - invalid --- request: MUST be string or array of "
             . "requests") unless ref $request eq 'ARRAY';
    return [ map {
        # The real one also takes [[packet, {value, delay_before}, ...]].
        bail_out("$name - requests split into packets are not supported "
                 . "by the bundled Test::Nginx::Socket") if ref $request->[$_];
        [{ value => build_request($name, $request->[$_], $headers_for->($_),
                                  'close') }]
    } 0 .. $#$request ];
}

# With several requests every expectation must be an array (one entry per
# request); with one, an array's first entry is used.
sub indexed_value ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    return $value->[$need_array ? $idx : 0] if ref $value eq 'ARRAY';
    bail_out("$name - You asked for many requests, the expected results "
             . "should be arrays as well.") if $need_array;
    return $value;
}

sub with_ports {
    my ($s) = @_;
    $s =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    $s =~ s/\$ServerPort\b/$ServerPort/g;
    return $s;
}

sub check_error_code {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';

    if (defined $block->error_code_like) {
        my $pat = indexed_value($name, $block->error_code_like, $req_idx,
                                $need_array);
        like($code, qr/$pat/sm, "$name - status code ok");
    } else {
        my $expected = defined $block->error_code
            ? indexed_value($name, $block->error_code, $req_idx, $need_array)
            : 200;
        is($code, $expected, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->raw_response_headers_like) {
        my $pat = indexed_value($name, $block->raw_response_headers_like,
                                $req_idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = indexed_value($name, $block->raw_response_headers_unlike,
                                $req_idx, $need_array);
        unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

# "Name: value" lines; "!Name" (or a line without a colon) means "absent".
sub parse_header_spec {
    my ($spec) = @_;
    my @pairs;
    for my $line (split /\n/, $spec // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @pairs, [$line, undef];
        } else {
            push @pairs, [split /\s*:\s*/, $line, 2];
        }
    }
    return @pairs;
}

# Like the real one, --- response_headers_like is only looked at when there
# is no --- response_headers.
sub check_response_headers {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $spec = indexed_value($name, $block->response_headers, $req_idx,
                                 $need_array);
        for my $pair (parse_header_spec($spec)) {
            my ($key, $val) = @$pair;
            if (!defined $val) {
                unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            my $actual = $res ? $res->header($key) : undef;
            is($actual // '', with_ports($val), "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = indexed_value($name, $block->response_headers_like,
                                 $req_idx, $need_array);
        for my $pair (parse_header_spec($spec)) {
            my ($key, $val) = @$pair;
            my $actual = $res ? $res->header($key) : undef;
            like($actual // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub trim_summary {
    my ($s) = @_;
    return '' unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /g;
    $s =~ s/\s{2,}/ /g;
    return $s;
}

sub check_response_body {
    my ($block, $res, $req_idx, $rep, $need_array) = @_;
    my $name    = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body) {
        my $expected = indexed_value($name, $block->response_body, $req_idx,
                                     $need_array);
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like "
                 . "(repeated req $rep, req $req_idx)");
        } else {
            my $desc = "$name - response_body - response is expected "
                     . "(repeated req $rep, req $req_idx)";
            $expected = with_ports($expected) if defined $expected;
            $NoLongString ? Test::More::is($content, $expected, $desc)
                          : is($content, $expected, $desc);
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $method = "response_body_$type";
        # A qr// value is stringified and recompiled with /s, as in the
        # real one: the pattern is matched against the whole body.
        my $pat = with_ports(indexed_value($name, $block->$method, $req_idx,
                                           $need_array));
        my $check = $type eq 'like' ? \&like : \&unlike;
        $check->($content, qr/$pat/s, "$name - response_body_$type - "
                 . "response is expected (" . trim_summary($content) . ")");
    }

    $_->($block, $content, $req_idx, $rep, 0) for @ResponseBodyChecks;
}

sub fmt_str {
    my ($s) = @_;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# Checks --- error_log style patterns (a string: one substring per line; a
# qr//; or an array of both) against log lines.  $want: 1 = each must match
# some line, 0 = none may match any line.  One subtest per pattern.
sub check_patterns {
    my ($name, $spec, $lines, $file, $want, $suffix) = @_;

    my @pats = ref $spec eq 'ARRAY'  ? @$spec
             : ref $spec eq 'Regexp' ? ($spec)
             : do { chomp(my $s = $spec); split /\n+/, $s };

    for my $pat (grep { defined } @pats) {
        my ($hit) = grep {
            my $l = $lines->[$_];
            (ref $pat && $l =~ /$pat/) || $l =~ /\Q$pat\E/
        } 0 .. $#$lines;

        if ($want) {
            ok(defined $hit, defined $hit
                ? "$name - pattern \"$pat\" matches a line in $file$suffix"
                : "$name - pattern \"$pat\" should match a line in $file$suffix");
            next;
        }

        my $p = fmt_str($pat);
        if (!defined $hit) {
            pass("$name - pattern \"$p\" does not match a line in $file$suffix");
            next;
        }
        my $ln   = fmt_str($lines->[$hit]);
        my @more = @$lines[$hit + 1 .. min($hit + 9, $#$lines)];
        fail("$name - pattern \"$p\" should not match any line in $file but "
             . "matches line \"$ln\"$suffix\n" . join '', @more);
    }
}

sub value_contains {
    my ($val, $str) = @_;
    return grep { defined && index($_, $str) >= 0 }
                ref $val eq 'ARRAY' ? @$val : ($val);
}

sub check_error_log {
    my ($block, $rep) = @_;
    my $name  = $block->name;
    my $lines = error_log_lines();

    for my $sec (qw(error_log no_error_log)) {
        my $spec = $block->$sec;
        check_patterns($name, $spec, $lines, 'error.log',
                       $sec eq 'error_log', " (req $rep)") if defined $spec;
    }

    # Serious messages are reported (not failed) unless the block already
    # asserts on that level.
    for my $level (qw(alert crit emerg)) {
        next if grep { defined $_ && value_contains($_, "[$level") }
                     $block->error_log, $block->no_error_log;
        warn "WARNING: $name - ", fmt_str($_), "\n"
            for grep { /\[$level\]/ } @$lines;
    }

    for my $line (grep { /\bAssertion .*?failed\b/ } @$lines) {
        chomp $line;
        fail("$name - $line\n");
    }
}

sub check_access_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    return unless defined $block->access_log || defined $block->no_access_log;

    my $lines = access_log_lines();
    for my $sec (qw(access_log no_access_log)) {
        my $spec = $block->$sec;
        check_patterns($name, $spec, $lines, 'access.log',
                       $sec eq 'access_log', " (req $rep)") if defined $spec;
    }
}

# --- shutdown_error_log of a block is checked once its nginx has exited:
# when the next block restarts nginx, or at exit.
sub check_prev_block_shutdown_error_log {
    my $block = $PrevBlock;
    return unless $block && defined $block->shutdown_error_log;
    undef $PrevBlock;
    my $name = $block->name;

    # Negative patterns first, as in the real one.
    my @specs = grep { defined $_->[1] }
                [0, scalar $block->no_shutdown_error_log],
                [1, scalar $block->shutdown_error_log];

    if ($ENV{TEST_NGINX_NO_CLEAN} && !$UseValgrind) {
        my $n = 0;
        for my $s (@specs) {
            $n += ref $s->[1] eq 'ARRAY' ? @{ $s->[1] }
                : ref $s->[1]            ? 1
                : scalar split /\n+/, $s->[1];
        }
        SKIP: {
            skip("$name - shutdown_error_log - tests skipped due to "
                 . "TEST_NGINX_NO_CLEAN", $n);
        }
        return;
    }

    my $lines = error_log_lines();
    check_patterns($name, $_->[1], $lines, 'error.log', $_->[0], '')
        for @specs;
}

sub report_valgrind {
    my ($name) = @_;
    my $errors = valgrind_errors();
    return if $errors eq '';
    diag($errors);
    fail("$name - valgrind reported errors (see above)");
}

# Stop nginx whatever way the script ends: normal exit, die(), BAIL_OUT or
# a fatal signal (turned into exit() so that this END block runs).  Left
# running only with TEST_NGINX_NO_CLEAN (except under valgrind).
my $MainPid = $$;

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { warn "caught SIG$sig, cleaning up\n"; exit 1 };
}

END {
    if ($$ == $MainPid) {
        local $?;    # keep the exit status Test::Builder computes
        cleanup();
        if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
            stop_nginx('END');
            report_valgrind('END') if $UseValgrind;
        }
        check_prev_block_shutdown_error_log();
    }
}

1;
