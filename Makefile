# rewire — the two set-up commands are `make demo` and `make test`.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BINS        := ./cmd/registrar ./cmd/templater ./internal/demo ./internal/sampleservice

.PHONY: all build dist demo test test-short lint bench bench-registrar bench-templater bench-traffic vendor-viz clean lab

all: build

build:
	$(GO) build -o bin/ $(BINS)

## dist: the daemons as deployed (bin/dist/): without etcd's server code, so about
## 11 MB smaller and 6-7 MiB less resident memory; `--etcd embedded` then refuses.
## The templater is static (CGO_ENABLED=0): it looks up no user or group and
## resolves names with Go's own resolver (/etc/hosts and DNS; a host name
## known only to an NSS module such as sss or mdns does not resolve: give
## etcd endpoints as addresses or DNS names), and not mapping the C library
## saves it 1.4 MiB of resident memory. The registrar keeps cgo: it resolves its
## socket's owner and group through NSS, which may be LDAP or SSSD.
dist:
	CGO_ENABLED=0 $(GO) build -trimpath -tags noembed -o bin/dist/ ./cmd/templater
	$(GO) build -trimpath -tags noembed -o bin/dist/ ./cmd/registrar

## demo: embedded etcd, sample services, registrar, templater and haproxy (if installed). Ctrl-C stops it.
demo: build
	bin/demo

## test: lint, then every test with the race detector (etcd and haproxy tests included),
## ending with a list of every skipped test and why; the exit code is the tests'.
test: lint
	$(GO) build -o bin/ ./internal/testsummary
	bin/testsummary $(GO) test -json -race -count=1 -timeout 20m ./...

## lab: the VM topology in network namespaces on this machine (root; etcd-server,
## etcd-client, haproxy, wrk, curl, socat, openssl): runs every scenario, then removes it all.
lab: build
	deploy/lab/lab.sh

## test-short: skip the tests that start etcd or haproxy.
test-short:
	$(GO) test -short -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags noembed ./cmd/... ./internal/daemon/
	$(GO) run $(STATICCHECK) ./...

## bench: Go benchmarks, then the registrar process measurement (results: docs/PERFORMANCE.md).
bench: bench-registrar bench-templater
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-registrar: build
	$(GO) run ./bench/registrar

bench-templater: build
	$(GO) run ./bench/templater

## bench-traffic: put → haproxy's live state at 10-10,000 instances, 50 services or 1,
## with and without a check, beside the etcd watch floor (~5 min; TRAFFIC_FLAGS="-changes 100").
bench-traffic: build
	$(GO) run ./bench/traffic $(TRAFFIC_FLAGS)

## vendor-viz: re-vendor Graphviz for the registry map page (npm @viz-js/viz) into graph/ui/assets.
vendor-viz:
	graph/ui/assets/vendor-viz.sh

clean:
	rm -rf bin demo-run
