package Test::Nginx::Compat::Client;

# Private helper of the bundled Test::Nginx::Socket: the HTTP/1.x client.
# It builds requests the way the real Test::Nginx does (Host/Connection/
# Content-Length added unless given), sends them over a plain socket, reads
# until the server closes (or a per-I/O timeout), and parses the raw bytes.

use strict;
use warnings;

use Exporter 'import';
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(min);
use POSIX ();
use Test::More ();
use Time::HiRes qw(sleep);

use Test::Nginx::Compat::Server
    qw(bail_out nginx_child_gone server_pid $ServerName $Sleep $HtmlDir);

our @EXPORT_OK = qw(build_request parse_more_headers send_request
                    curl_command send_request_by_curl parse_response);

# "X-Foo: 1\n# comment\nBar" -> ("X-Foo: 1\r\nBar: \r\n", $is_chunked)
sub parse_more_headers {
    my ($text) = @_;
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $text // '') {
        next if $line =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc $key eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# Turns "METHOD [URI [VERSION]]\n[body]" into wire format.  $conn is the
# Connection header value used unless more_headers sets one.
sub build_request {
    my ($name, $text, $more_headers, $conn) = @_;

    bail_out("$name - Request line should be non-empty")
        unless defined $text && $text =~ /\S/;

    $text =~ s/\A([^\n]*)\n?//;
    my $line = $1;
    $line =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$line\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');

    my ($headers, $chunked) = parse_more_headers($more_headers);
    my $body = $text;

    # Like the real one, an auto-computed Content-Length goes with a body
    # trimmed of surrounding whitespace (the section text ends in "\n").
    my $len_header = '';
    if (!$chunked && $body ne '' && $headers !~ /(?:^|\n)Content-Length:/) {
        $body =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($body) . "\r\n";
    }

    my $auto = '';
    $auto .= "Host: $ServerName\r\n"
        if $headers !~ /(?:^|\n)Host:/i;
    $auto .= "Connection: $conn\r\n"
        if $headers !~ /(?:^|\n)Connection/i;

    return "$meth $url $ver\r\n$auto$headers$len_header\r\n$body";
}

# Sends the packets ([{value => bytes, delay_before => secs}, ...]) and
# returns everything read until the server closed the connection.
# $o{timeout} bounds each wait for socket activity, not the whole exchange
# (as in the real one); expiry fails the test unless $o{abort}.
my $ConnectFailures = 0;

sub send_request {
    my (%o) = @_;
    my $name = $o{name};

    my $sock = connect_server(%o) or return;
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my @packets = @{ $o{packets} };
    my $cur     = shift @packets;
    my $offset  = 0;
    my $resp    = '';
    my $sel     = IO::Select->new($sock);
    my ($reading, $writing) = (1, 1);

    while ($reading) {
        $! = 0;
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $o{timeout});
        if (!$r) {
            next if $!{EINTR};
            Test::More::fail("ERROR: client socket timed out - $name\n")
                unless $o{abort};
            last;
        }

        while ($writing && @$w) {
            if ($offset < length $cur->{value}) {
                my $n = syswrite $sock, $cur->{value},
                                 length($cur->{value}) - $offset, $offset;
                if (defined $n) {
                    $offset += $n;
                    next;
                }
                last if $!{EAGAIN};
                warn "write failed: $!\n";
                $resp = "write failed: $!" if $resp eq '';
                ($reading, $writing) = (0, 0);
                last;
            }

            $cur = shift @packets;
            if (!$cur) {
                $writing = 0;
                if (defined $o{shutdown}) {
                    shutdown $sock, $o{shutdown} =~ /^\s*(\d)/ ? $1 : 1;
                }
                last;
            }
            $offset = 0;
            my $delay = $cur->{delay_before} // $o{middle_delay};
            sleep $delay if $delay;
        }

        while ($reading && @$r) {
            my $n = sysread $sock, my $buf, 4096;
            if (!defined $n) {
                last if $!{EAGAIN};
                warn "WARNING: $name - HTTP response read failure: $!\n";
                $reading = 0;
            } elsif ($n == 0) {
                $reading = 0;
            } else {
                $resp .= $buf;
            }
        }
    }

    close $sock;
    return $resp;
}

# nginx may still be starting (notably under valgrind): retry with a
# growing back-off, as the real one does.
sub connect_server {
    my (%o) = @_;
    my $name = $o{name};
    my $err;

    for my $try (1 .. 50) {
        my $sock = IO::Socket::INET->new(PeerAddr => $o{addr},
                                         PeerPort => $o{port},
                                         Proto    => 'tcp',
                                         Timeout  => $o{timeout});
        return $sock if $sock;
        $err = $!;
        last if nginx_child_gone();

        my $wait = min(1, ($Sleep + $Sleep * $try) * $try / 2);
        warn "$name - Can't connect to $o{addr}:$o{port}: $err;"
             . " retrying after $wait sec\n" if $wait >= 0.6;
        sleep $wait;
    }

    my $msg = "$name - Can't connect to $o{addr}:$o{port}: $err (aborted)\n";
    bail_out($msg) if ++$ConnectFailures >= 3;
    Test::More::fail($msg);
    return;
}

# ---------------------------------------------------------------------------
# HTTP/2: the request that build_request() wrote is handed to curl, as the
# real one does (--- curl_protocol and --- curl_options are applied there),
# and curl -i's output (status line, headers, body: the shape of an HTTP/1
# response without its framing) is what parse_response() parses.

# curl's argument list for one request: its method, target and headers
# (but Connection, which HTTP/2 has not) and its body, in a file.
sub curl_command {
    my (%o) = @_;
    my $name = $o{name};
    my $req  = $o{request};

    my ($meth, $uri, $ver);
    if ($req =~ m{\A\s*(\w+)\s+(\S+)\s+HTTP/(\S+)\r?\n}gc) {
        ($meth, $uri, $ver) = ($1, $2, $3);
    } elsif ($req =~ m{\A\s*(\w+)\s+(.*\S)\s*\r?\n}gc) {
        ($meth, $uri, $ver) = ($1, $2, '0.9');
    } else {
        bail_out("$name - cannot parse the request line of: $req");
    }

    # curl's own User-Agent, Accept and Host go: the request's are sent
    my @args = ('curl', '-i', '-sS', '-H', 'User-Agent:', '-H', 'Accept:',
                '-H', 'Host:');
    push @args, '--http2-prior-knowledge' if $o{http2};
    if ($meth eq 'HEAD') {
        push @args, '-I';
    } elsif ($meth ne 'GET') {
        push @args, '-X', $meth;
    }
    push @args, '-0' if $ver ne '1.1';

    my @headers;
    if ($ver ge '1.0') {
        $req =~ m{\G(.*?)\r?\n\r?\n}gcs
            or bail_out("$name - cannot parse the headers of: $req");
        @headers = grep { !/^Connection\s*:/i } split /\r\n/, $1;
    }
    push @args, map { ('-H', $_) } @headers;

    if ($req =~ m{\G(.+)}gcs) {
        my $body = $1;
        push @args, '-H', 'Content-Type: '
            if !grep { /^\s*Content-Type\s*:/i } @headers;
        my $file = "$HtmlDir/curl.data.bin";
        open my $out, '>', $file or bail_out("$name - $file: $!");
        binmode $out;
        print $out $body;
        close $out or bail_out("$name - $file: $!");
        push @args, '--data-binary', "\@$file";
    }

    push @args, '--connect-timeout', $o{timeout}, '--max-time', $o{timeout};
    push @args, $o{options} if defined $o{options};
    push @args, "$o{protocol}://$o{addr}:$o{port}$uri";

    return \@args;
}

# Runs curl_command(%o) and returns what curl wrote on its standard
# output.  As in the real one, curl's exit code alone fails nothing (a cut
# answer is checked like any other); no output at all fails, unless what
# curl said matches $o{curl_error}; what it said besides an answer is a
# warning.  curl's --max-time bounds it; the harness kills it a few
# seconds later, should it hang anyway.
sub send_request_by_curl {
    my (%o) = @_;
    my $name = $o{name};
    my $cmd  = curl_command(%o);

    wait_for_port(%o);

    pipe(my $out_r, my $out_w) && pipe(my $err_r, my $err_w)
        or bail_out("$name - pipe() failed: $!");
    my $pid = fork;
    bail_out("$name - fork() failed: $!") unless defined $pid;
    if ($pid == 0) {
        close $out_r;
        close $err_r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $out_w;
        open STDERR, '>&', $err_w;
        exec { $cmd->[0] } @$cmd or POSIX::_exit(127);
    }
    close $out_w;
    close $err_w;

    my %got = ($out_r => '', $err_r => '');
    my $sel = IO::Select->new($out_r, $err_r);
    my $deadline = Time::HiRes::time() + $o{timeout} + 5;

    while ($sel->count) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            Test::More::fail("$name - curl did not end in $o{timeout} s"
                             . " (killed): @$cmd");
            return;
        }
        for my $fh ($sel->can_read($left)) {
            my $n = sysread $fh, my $buf, 65536;
            next if !defined $n && $!{EINTR};
            if (!$n) {
                $sel->remove($fh);
                close $fh;
                next;
            }
            $got{$fh} .= $buf;
        }
    }

    waitpid $pid, 0;
    my $status = $?;
    my ($out, $err) = @got{$out_r, $err_r};

    if ($status >> 8 == 127) {
        Test::More::fail("$name - failed to run curl: $err");
        return;
    }

    if ($out eq '') {
        my $want = $o{curl_error};
        return if defined $want && $err ne ''
                  && (ref $want ? $err =~ $want : index($err, $want) >= 0);
        Test::More::fail($err ne ''
            ? "$name - command \"@$cmd\" generates stderr output: $err"
            : "$name - curl command \"@$cmd\" generates no stdout output");
        return;
    }

    warn "WARNING: $name - command \"@$cmd\" generates stderr output: $err"
        if $err ne '';

    return $out;
}

# nginx may still be starting (notably under valgrind): wait, boundedly,
# until a socket listens on its port (found in /proc, as the real one does:
# a probing connection would be one more in nginx's logs).  /proc/net/tcp
# is long on a busy machine: each nginx's port is looked up once.
my %Listens;

sub wait_for_port {
    my (%o) = @_;
    my $key = (server_pid() // '') . " $o{port}";
    return if $Listens{$key};

    for my $try (1 .. 50) {
        if (listening($o{port})) {
            $Listens{$key} = 1;
            return;
        }
        return if nginx_child_gone();
        warn "$o{name} - waiting for nginx to listen on port $o{port}\n"
            if $try % 10 == 0;
        sleep min(1, $Sleep * $try);
    }
}

sub listening {
    my ($port) = @_;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $file or next;
        while (<$in>) {
            # local address:port, remote address:port, state (0A: LISTEN)
            return 1 if /^\s*\d+: [0-9A-F]+:([0-9A-F]+) \S+ 0A /
                        && hex($1) == $port;
        }
    }
    return 0;
}

# Returns ($response, $raw_headers, $left_over_bytes).  A malformed or
# unterminated chunked body is a test failure and yields no response, as
# in the real one.
sub parse_response {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = $raw =~ /\A(.*?\r\n)\r\n/s ? $1 : '';
    my $res = Test::Nginx::Compat::Response->parse($raw);
    my $code = $res->code;

    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $te  = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $body = $res->content;
    my $left;

    if (defined $te && $te eq 'chunked') {
        my $decoded = '';
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                my $pos  = pos $body;
                if (length($body) - $pos < $size) {
                    Test::More::fail("$name - invalid chunked data received "
                        . "(not enough octets for the data section)");
                    return;
                }
                $decoded .= substr $body, $pos, $size;
                pos($body) = $pos + $size;
                if ($body !~ /\G\r\n/gc) {
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(expected CRLF).");
                    return;
                }
            } elsif ($body =~ /\G(.+)/gcs) {
                Test::More::fail("$name - invalid chunked body received: $1");
                return;
            } else {
                Test::More::fail("$name - no last chunk found - $body");
                return;
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

# A minimal stand-in for the HTTP::Response the real one uses: code,
# case-insensitive headers (repeated ones joined with ", "), content.
package Test::Nginx::Compat::Response;

sub parse {
    my ($class, $raw) = @_;
    my ($status, $rest) = split /\n/, $raw, 2;
    $status //= '';
    $rest   //= '';
    $status =~ s/\r\z//;

    my (undef, $code) = split ' ', $status, 3;
    undef $code if defined $code && $code !~ /^\d+$/;

    my @headers;
    while (1) {
        if ($rest =~ s/^([^\s:]+)[ \t]*:[ \t]*(.*?)\r?\n//) {
            push @headers, [lc $1, $2];
        } elsif (@headers && $rest =~ s/^[ \t]+(.*?)\r?\n//) {
            $headers[-1][1] .= " $1";
        } else {
            last;
        }
    }
    $rest =~ s/^\r?\n//;

    return bless { code => $code, headers => \@headers, content => $rest },
                 $class;
}

sub code { $_[0]{code} }

sub header {
    my ($self, $name) = @_;
    my @vals = map { $_->[1] } grep { $_->[0] eq lc $name } @{ $self->{headers} };
    return @vals ? join(', ', @vals) : undef;
}

sub content {
    my $self = shift;
    $self->{content} = shift if @_;
    return $self->{content};
}

1;
