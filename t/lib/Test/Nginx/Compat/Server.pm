package Test::Nginx::Compat::Server;

# Private helper of the bundled Test::Nginx::Socket (see that module for the
# why).  It owns everything on the nginx side: the global settings, the
# server root, nginx.conf, starting and stopping nginx (optionally under
# valgrind) and reading its logs.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX qw(WNOHANG SIGQUIT SIGKILL);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    $ServerAddr $ServerName $ServerPort $ServerPortForClient $Timeout
    $Sleep $RepeatEach $NoShuffle $NoLongString $CheckAccumErrLog
    $UseValgrind $UseHttp2 $NginxVersion $ServRoot $HtmlDir $ErrLogFile
    $AccLogFile @CleanupHandlers

    env_to_nginx repeat_each config_preamble worker_connections
    master_process_enabled no_long_string workers master_on master_off
    log_level no_shuffle no_root_location server_name server_addr
    server_root html_dir server_port server_port_for_client timeout
    check_accum_error_log bail_out add_cleanup_handler use_http2

    nginx_version parse_time expand_env nginx_running server_pid
    setup_server_root
    write_user_files write_config_file start_nginx start_nginx_once stop_nginx
    nginx_child_gone error_log_lines access_log_lines reset_error_log_pos
    valgrind_errors cleanup
);

# ---------------------------------------------------------------------------
# Settings.  Defaults and environment variables follow the real Test::Nginx.

our $ServerAddr          = '127.0.0.1';
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                           || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep               = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $RepeatEach          = 1;
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoLongString        = 0;
our $CheckAccumErrLog    = 0;
our $UseValgrind         = $ENV{TEST_NGINX_USE_VALGRIND};
our $UseHttp2            = $ENV{TEST_NGINX_USE_HTTP2};
our $NginxVersion;
our @CleanupHandlers;

my $NginxBinary       = $ENV{TEST_NGINX_BINARY} || default_binary();
my $LoadModules       = $ENV{TEST_NGINX_LOAD_MODULES};
my $WorkerUser        = $ENV{TEST_NGINX_WORKER_USER};
my $Workers           = 1;
my $WorkerConnections = 64;
my $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
my $MasterProcess     = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
my $NoRootLocation    = 0;
my $ConfigPreamble    = '';
my @EnvToNginx;

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

# Valgrind needs nginx in the foreground so that it stays our child.
my $Daemon = $UseValgrind ? 'off' : 'on';

our $ServRoot   = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');
our $HtmlDir    = "$ServRoot/html";
our $ErrLogFile = "$ServRoot/logs/error.log";
our $AccLogFile = "$ServRoot/logs/access.log";
my $LogDir      = "$ServRoot/logs";
my $ConfDir     = "$ServRoot/conf";
my $ConfFile    = "$ConfDir/nginx.conf";
my $PidFile     = "$LogDir/nginx.pid";

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

sub default_binary {
    for my $dir (split /:/, $ENV{PATH} // '') {
        return 'nginx' if $dir ne '' && -x "$dir/nginx";
    }
    return '/usr/sbin/nginx';
}

# Setters double as getters when called without arguments, as in the real one.
sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub repeat_each (@)            { $RepeatEach = shift if @_; $RepeatEach }
sub config_preamble ($)        { $ConfigPreamble = shift }
sub worker_connections (@)     { @_ ? ($WorkerConnections = shift) : $WorkerConnections }
sub workers (@)                { @_ ? ($Workers = shift) : $Workers }
sub log_level (@)              { @_ ? ($LogLevel = shift) : $LogLevel }
sub server_name (@)            { @_ ? ($ServerName = shift) : $ServerName }
sub server_addr (@)            { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub server_port (@)            { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_port_for_client (@) { @_ ? ($ServerPortForClient = shift) : $ServerPortForClient }
sub timeout (@)                { @_ ? ($Timeout = shift) : $Timeout }
sub master_on ()               { $MasterProcess = 'on' }
sub master_off ()              { $MasterProcess = 'off' }
sub no_long_string ()          { $NoLongString = 1 }
sub no_shuffle ()              { $NoShuffle = 1 }
sub no_root_location ()        { $NoRootLocation = 1 }
sub check_accum_error_log ()   { $CheckAccumErrLog = 1 }
sub server_root ()             { $ServRoot }
sub html_dir ()                { $HtmlDir }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }

sub master_process_enabled (@) {
    return $MasterProcess unless @_;
    $MasterProcess = shift() ? 'on' : 'off';
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# "50ms" -> 0.05, "2s" / "2" -> 2.
sub parse_time ($) {
    my $t = shift;
    return $t unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

# Version as a comparable number: 1.22.1 -> 1.022001.
sub nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if ($? != 0 || $out !~ m{/(\d+)\.(\d+)\.(\d+)}) {
        bail_out("Failed to get the version of nginx ($NginxBinary): $out");
    }
    return sprintf '%d.%03d%03d', $1, $2, $3;
}

# ---------------------------------------------------------------------------
# HTTP/2.  Whether a block speaks HTTP/2 (cleartext, "prior knowledge": the
# client starts with HTTP/2's preface, no upgrade), with the real one's
# rules: --- no_http2 never; --- http2 always (it cannot go with a raw or
# pipelined request); with TEST_NGINX_USE_HTTP2, every block with a
# --- request, but those that send raw or pipelined HTTP/1 bytes, ask for
# HTTP/1.0, or whose configuration talks HTTP/1 to its own server.  The
# answer is kept in the block (the real one's section name), since both the
# configuration and the client ask.

sub use_http2 ($) {
    my ($block) = @_;
    my $name = $block->name;

    my $cached = $block->test_nginx_enabled_http2;
    return $cached if defined $cached;

    return undef if defined $block->no_http2;

    if (defined $block->http2) {
        bail_out("cannot use --- http2 with --- raw_request")
            if $block->raw_request;
        bail_out("cannot use --- http2 with --- pipelined_requests")
            if $block->pipelined_requests;
        $block->set_value(test_nginx_enabled_http2 => 1);
        return 1;
    }

    my $why;
    if (!$UseHttp2) {
        $why = '';
    } elsif ($block->raw_request) {
        $why = "--- raw_request: stays on HTTP/1";
    } elsif ($block->pipelined_requests) {
        $why = "--- pipelined_requests: stays on HTTP/1";
    } elsif (!defined $block->request) {
        $why = '';
    } elsif (!ref $block->request && $block->request =~ m{HTTP/1\.0}s) {
        $why = "the request asks for HTTP/1.0: stays on HTTP/1";
    } else {
        my $pat = qr{(proxy_pass .*:\$(server_port|TEST_NGINX_SERVER_PORT)
                     | ngx.req.raw_header
                     | lua_check_client_abort
                     | ngx.req.socket
                     | ngx.req.read_body)}x;
        for my $sec (qw(config user_files http_config)) {
            my $text = $block->$sec;
            next if !defined $text || ref $text || $text !~ $pat;
            $why = "--- $sec talks HTTP/1 to the server ($1): stays on HTTP/1";
            last;
        }
    }

    if (defined $why) {
        warn "WARNING: $name - $why\n" if $why ne '';
        $block->set_value(test_nginx_enabled_http2 => 0);
        return undef;
    }

    $block->set_value(test_nginx_enabled_http2 => 1);
    return 1;
}

# ---------------------------------------------------------------------------
# $TEST_NGINX_* expansion.  $TEST_NGINX_RAND_PORT_<n> is a free port picked
# once per block (remembered in %$rand_ports); anything else must be set in
# the environment.

sub expand_env ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return $text unless defined $text;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $rand_ports->{$var} //= free_port($name, $rand_ports);
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $ENV{$var};
        }
    }ge;
    return $text;
}

sub free_port {
    my ($name, $rand_ports) = @_;
    # the port being picked is already in %$rand_ports, undefined (the
    # caller's //= made its element before calling)
    my %used = map { $_ => 1 } $ServerPort,
                               grep { defined } values %$rand_ports;
    for (1 .. 1000) {
        my $port = 1985 + int rand(65535 - 1985);
        next if $used{$port};
        my $probe = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                          LocalPort => $port,
                                          Proto => 'tcp');
        next unless $probe;
        close $probe;
        return $port;
    }
    bail_out("$name - Cannot find an available listening port number.\n");
}

# ---------------------------------------------------------------------------
# Server root and configuration.

sub setup_server_root () {
    if (-d $ServRoot) {
        # Only remove what we create ourselves, then rmdir: a mistyped
        # TEST_NGINX_SERVROOT pointing at real data makes us bail out instead
        # of wiping it.
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                    glob("$ServRoot/*_cache"));
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        make_path($dir) or bail_out("Failed to do mkdir $dir: $!");
    }
    write_file("$HtmlDir/index.html",
        '<html><head><title>It works!</title></head><body>It works!</body></html>');
}

sub write_file {
    my ($path, $body) = @_;
    open my $out, '>', $path or bail_out("Can't open $path for writing: $!");
    binmode $out;
    print $out $body;
    close $out or bail_out("Can't write $path: $!");
}

# --- user_files: either ">>> name [touch -t date]" separated text or an
# arrayref of [name, body, date].  Relative names land in the html dir.
sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name  = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @parsed;
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @parsed, [$1, '', $2];
            } elsif (@parsed) {
                $parsed[-1][1] .= $line;
            }
        }
        $files = \@parsed;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for --- user_files: ", ref $files);
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        write_file($path, expand_env($body // '', $name, $rand_ports));
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - Failed to touch -t '$date' $path");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;

    my $main_config = $block->main_config // '';
    # Exactly like the real one: load_module lines appended to main_config.
    if ($LoadModules) {
        $main_config .= join ' ', map { "load_module $_;" }
                                  grep { length } split /\s+/, $LoadModules;
    }

    my %sec = (
        main_config      => $main_config,
        http_config      => $block->http_config // '',
        post_main_config => $block->post_main_config // '',
    );
    $sec{$_} = expand_env($sec{$_}, $name, $rand_ports) for keys %sec;

    my $log_level   = $block->log_level || $LogLevel;
    my $err_log     = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    my $env_lines   = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" }
                               qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS),
                               @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    # Root would otherwise make workers drop to "nobody", which cannot
    # write the logs under the server root.
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0             ? "user root;\n"
             : '';

    # nginx 1.25.1 made HTTP/2 a directive of the server and deprecated
    # the listen parameter; before, the parameter is the only way.  (The
    # real one switches at 1.19.9, which nginx 1.19.9 to 1.25.0 refuse.)
    my ($listen_opts, $http2_directive) = ('', '');
    if (use_http2($block)) {
        if ($NginxVersion >= 1.025001) {
            $http2_directive = 'http2 on;';
        } else {
            $listen_opts = ' http2';
        }
    }

    write_file($ConfFile, <<"_EOC_");
worker_processes  $Workers;
daemon $Daemon;
master_process $MasterProcess;
error_log $err_log $log_level;
pid       $PidFile;
$env_lines
$sec{main_config}

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$sec{http_config}

    server {
        listen          $ServerPort$listen_opts;$http2_directive
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$sec{post_main_config}

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_
}

# ---------------------------------------------------------------------------
# nginx process.  $ChildPid is only set under valgrind (nginx in the
# foreground as our child); otherwise nginx daemonizes and the pid file is
# the only handle on it.

my $ChildPid;
my $ErrLogFilePos = 0;

sub read_pid_file {
    open my $in, '<', $PidFile or return;
    my $pid = <$in>;
    return unless defined $pid && $pid =~ /^\s*(\d+)/;
    return $1;
}

sub is_running {
    my $pid = shift;
    waitpid($pid, WNOHANG);    # reap our own child so it does not linger
    return 0 unless kill 0, $pid;

    # A daemonized nginx that exited stays a zombie until init reaps it,
    # which some container inits do only every second or two.
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in> // '';
        return 0 if $stat =~ /^\d+ \(.*\) Z/s;
    }
    return 1;
}

sub nginx_child_gone () {
    return defined $ChildPid && !is_running($ChildPid);
}

sub nginx_running () {
    my $pid = $ChildPid // read_pid_file();
    return $pid && is_running($pid);
}

# the pid of the nginx the harness started (its master, or its only
# process), or undef
sub server_pid () {
    return $ChildPid // read_pid_file();
}

sub start_nginx ($) {
    my ($name) = @_;

    my $cmd = "$NginxBinary -p $ServRoot/ -c $ConfFile > /dev/null";

    if ($UseValgrind) {
        my $log = "--log-file=$LogDir/valgrind.%p.log";
        if ($UseValgrind =~ /^\d+$/) {
            my $supp = -f 'valgrind.suppress'
                     ? ' --suppressions=valgrind.suppress' : '';
            $cmd = "valgrind --num-callers=100 -q $log --tool=memcheck"
                 . " --leak-check=full --show-possibly-lost=no"
                 . " --gen-suppressions=all$supp $cmd";
        } else {
            $cmd = "valgrind -q $log $UseValgrind $cmd";
        }

        my $pid = fork;
        bail_out("$name - fork() failed: $!") unless defined $pid;
        if ($pid == 0) {
            setpgrp;    # so that a KILL can take the whole group
            exec "exec $cmd" or POSIX::_exit(127);
        }
        $ChildPid = $pid;

    } else {
        # nginx retries bind() itself for ~2.5s; keep trying a little
        # longer for a port held by a server that is still going away.
        my $deadline = time + 30;
        while (system($cmd) != 0) {
            my $status = $?;
            bail_out("$name - Cannot start nginx using command \"$cmd\""
                     . " (status code $status).")
                if time > $deadline || !port_conflict();
            sleep 0.5;
        }
    }

    wait_for_pid_file($name);
}

# One attempt to start nginx, for --- must_die: (status of system(), exit
# code).  Like the real one, the error log is named on the command line
# (-e, nginx 1.19.5 and later), so that what nginx says when it refuses a
# configuration lands in error.log and not only on stderr.  An nginx that
# did start is left running (the caller stops it).
sub start_nginx_once ($$) {
    my ($name, $suppress_stderr) = @_;

    my $e = $NginxVersion && $NginxVersion >= 1.019005 ? "-e $ErrLogFile " : '';
    my $cmd = "$NginxBinary $e-p $ServRoot/ -c $ConfFile > /dev/null";
    $cmd .= ' 2> /dev/null' if $suppress_stderr;

    system($cmd);
    my $status = $?;
    return (-1, undef) if $status == -1;

    if ($status == 0) {
        # daemonized: wait for its pid file so that stop_nginx finds it
        my $deadline = time + 10;
        sleep $Sleep until -s $PidFile || time > $deadline;
    }

    return ($status, $status >> 8);
}

sub port_conflict {
    open my $in, '<', $ErrLogFile or return 0;
    return scalar grep { /Address already in use/ } <$in>;
}

sub wait_for_pid_file {
    my ($name) = @_;
    my $deadline = time + ($UseValgrind ? 60 : 10);
    until (-s $PidFile) {
        bail_out("$name - nginx exited during start-up; see $ErrLogFile")
            if nginx_child_gone();
        bail_out("$name - nginx did not write $PidFile")
            if time > $deadline;
        sleep $Sleep;
    }
}

# QUIT (graceful) first, KILL after a grace period.  Under valgrind the grace
# period is long because the leak check runs after nginx's exit().
sub stop_nginx ($) {
    my ($name) = @_;
    my $pid = $ChildPid // read_pid_file();

    if ($pid && is_running($pid)) {
        kill SIGQUIT, $pid;
        my $deadline = time + ($UseValgrind ? 60 : $Timeout);
        sleep 0.01 while is_running($pid) && time < $deadline;

        if (is_running($pid)) {
            warn "$name - timeout when waiting for nginx $pid to exit;"
                 . " killing it\n";
            # A daemonized nginx (and our valgrind child) leads its own
            # process group: killing the group takes the workers too.
            kill SIGKILL, (getpgrp($pid) == $pid ? -$pid : $pid);
            $deadline = time + 5;
            sleep 0.01 while is_running($pid) && time < $deadline;
        }
    }

    undef $ChildPid;
    unlink $PidFile;
}

# Text of the valgrind reports written since the last call (then removed so
# nothing is reported twice); empty when valgrind found nothing.
sub valgrind_errors () {
    my $text = '';
    for my $f (glob "$LogDir/valgrind.*.log") {
        if (open my $in, '<', $f) {
            local $/;
            $text .= <$in> // '';
        }
        unlink $f;
    }
    return $text;
}

# ---------------------------------------------------------------------------
# Logs.  Like the real one, each error-log read returns only what was
# written since the previous read within the current block (unless
# check_accum_error_log), after a short pause for log-phase output.

sub reset_error_log_pos () { $ErrLogFilePos = 0 }

sub error_log_lines () {
    sleep $Sleep * 3;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 unless $CheckAccumErrLog;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    return \@lines;
}

sub access_log_lines () {
    sleep $Sleep * 3;
    open my $in, '<', $AccLogFile or return [];
    return [<$in>];
}

# Runs the handlers registered with add_cleanup_handler (the real one also
# calls this both at the end of run_tests and at exit).
sub cleanup () {
    $_->() for @CleanupHandlers;
}

1;
