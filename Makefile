# ngx_http_sophon_events_module
#
#   make                 build build/ngx_http_sophon_events_module.so
#   make demo            the service on 127.0.0.1:5555 with 100,000 events
#   make demo-stop       stop it
#   make test            the whole test suite (T=t/003-foo.t for one file)
#   make test-asan       the same against an AddressSanitizer+UBSan build
#   make test-http2      the same over HTTP/2 (TEST_NGINX_USE_HTTP2)
#   make test-valgrind   the same with nginx under valgrind
#   make fuzz            libFuzzer on the parser and the answer (FUZZ_SECONDS)
#   make build-static    Debian 12's nginx with the module compiled in, tested
#   make build-other     Debian 13's nginx and the module built for it, tested
#   make deb             the Debian package, in build/ (dpkg-buildpackage)
#   make test-deb        it installed, serving, and purged (root or sudo)
#
# NGINX_SRC=/path/to/nginx-x.y.z builds against another nginx source tree.

NGINX_SRC ?= /usr/share/nginx/src

SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined

FUZZ_SECONDS = 60

.PHONY: all module deps check-deps test test-asan test-http2 test-valgrind \
	fuzz demo demo-stop build-static build-other deb test-deb clean

all: module

module:
	util/build-module $(NGINX_SRC)

deps:
	util/install-deps

# what needs the packages checks for them, and names the missing ones
check-deps:
	@util/install-deps --check \
	    || { echo "make deps installs them" >&2; exit 1; }

test: check-deps
	util/build-module $(NGINX_SRC)
	util/run-tests $(T)

# the suite against a module built with AddressSanitizer and UBSan
test-asan: check-deps
	SOPHON_BUILD=build/asan \
	SOPHON_CC_OPT="$(SANITIZE) -fno-omit-frame-pointer -DNGX_DEBUG_PALLOC=1" \
	SOPHON_LD_OPT="$(SANITIZE)" \
	util/build-module $(NGINX_SRC)
	SOPHON_SANITIZE=1 \
	SOPHON_MODULE=$(CURDIR)/build/asan/ngx_http_sophon_events_module.so \
	util/run-tests $(T)

# the suite with every block that HTTP/2 can carry sent over it:
# Test::Nginx's TEST_NGINX_USE_HTTP2 mode (clear text, prior knowledge)
test-http2: check-deps
	util/build-module $(NGINX_SRC)
	TEST_NGINX_USE_HTTP2=1 util/run-tests $(T)

# the suite with nginx under valgrind (valgrind.suppress: nginx's own);
# nginx unloads the module before the leak check: keep its symbols
test-valgrind: check-deps module
	VALGRIND_OPTS=--keep-debuginfo=yes TEST_NGINX_TIMEOUT=30 \
	TEST_NGINX_USE_VALGRIND=1 util/run-tests $(T)

# the query-string parser and the JSON answer under libFuzzer, for
# FUZZ_SECONDS each
fuzz: check-deps module
	fuzz/run $(FUZZ_SECONDS)

demo: check-deps
	util/sophon-demo start

# the module in two other nginx builds, from Debian's source packages
# (util/build-nginx): t/001-basic.t and t/005-errors.t, or T=...
build-static: check-deps
	util/build-nginx static $(T)

build-other: check-deps
	util/build-nginx other $(T)

# the Debian package (debian/), built by dpkg-buildpackage in a copy of
# what it needs in build/deb, so that the tree stays clean
deb: check-deps
	rm -rf build/deb build/libnginx-mod-http-sophon-events*_*.deb
	mkdir -p build/deb/src
	cp -a --parents config ngx_http_sophon_events_module.c src sql doc \
	    util/sophon-events-expire util/sophon-events-load util/systemd \
	    README.md LICENSE debian build/deb/src/
	cd build/deb/src && dpkg-buildpackage -b -us -uc -Jauto
	mv build/deb/*.deb build/

demo-stop:
	util/sophon-demo stop

# the package installed with apt-get, serving Debian's nginx, then purged
# (util/test-deb): the machine is left as it was
test-deb: deb
	util/test-deb

clean:
	rm -rf build
