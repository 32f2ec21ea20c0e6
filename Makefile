# ngx_http_sophon_events_module
#
#   make                 build build/ngx_http_sophon_events_module.so
#   make demo            the service on 127.0.0.1:5555 with 100,000 events
#   make demo-stop       stop it
#   make test            the whole test suite (T=t/003-foo.t for one file)
#   make test-asan       the same against an AddressSanitizer+UBSan build
#   make test-valgrind   the same with nginx under valgrind
#   make fuzz            libFuzzer on the parser and the answer (FUZZ_SECONDS)
#
# NGINX_SRC=/path/to/nginx-x.y.z builds against another nginx source tree.

NGINX_SRC ?= /usr/share/nginx/src

SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined

FUZZ_SECONDS = 60

.PHONY: all module deps test test-asan test-valgrind fuzz demo demo-stop \
	clean

all: module

module:
	util/build-module $(NGINX_SRC)

deps:
	util/install-deps

test: deps
	util/build-module $(NGINX_SRC)
	util/run-tests $(T)

# the suite against a module built with AddressSanitizer and UBSan
test-asan: deps
	SOPHON_BUILD=build/asan \
	SOPHON_CC_OPT="$(SANITIZE) -fno-omit-frame-pointer -DNGX_DEBUG_PALLOC=1" \
	SOPHON_LD_OPT="$(SANITIZE)" \
	util/build-module $(NGINX_SRC)
	SOPHON_SANITIZE=1 \
	SOPHON_MODULE=$(CURDIR)/build/asan/ngx_http_sophon_events_module.so \
	util/run-tests $(T)

# the suite with nginx under valgrind (valgrind.suppress: nginx's own);
# nginx unloads the module before the leak check: keep its symbols
test-valgrind: deps module
	VALGRIND_OPTS=--keep-debuginfo=yes TEST_NGINX_TIMEOUT=30 \
	TEST_NGINX_USE_VALGRIND=1 util/run-tests $(T)

# the query-string parser and the JSON answer under libFuzzer, for
# FUZZ_SECONDS each
fuzz: deps module
	fuzz/run $(FUZZ_SECONDS)

demo: deps
	util/sophon-demo start

demo-stop:
	util/sophon-demo stop

clean:
	rm -rf build
