# fidomesh: every target CI and people use. One cargo profile (release) for tests, benches and
# the binary, so a clean checkout pays a single cold build.
CARGO ?= cargo
PROFILE := --release
BIN := target/release/fidomesh
EXAMPLES := manifests/examples
AT ?= 2026-12-15T00:00:00Z

.PHONY: all setup build run render test lint fmt check-core bench e2e crds clean conformance

all: build

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
	$(CARGO) fetch --locked

build: setup
	$(CARGO) build $(PROFILE) --locked -p fidomesh

# The main job on the embedded default: the webhook on 127.0.0.1 with self-made certificates, the
# example resources and the policies, answering real AdmissionReviews sent with curl.
run: build
	bash scripts/demo.sh

# The Linkerd objects of the examples, as `fidomesh render` prints them for GitOps.
render: build
	$(BIN) render -f $(EXAMPLES) --at $(AT) --mds-payload $(EXAMPLES)/fido-mds-payload.json

test: setup
	$(CARGO) test $(PROFILE) --locked --workspace --all-targets

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE) --locked --workspace --all-targets -- -D warnings

# The pure core must build without any I/O dependency.
check-core: setup
	$(CARGO) check $(PROFILE) --locked -p fidomesh --lib --no-default-features

# The same policy cases evaluated by OPA's own engine must give the same decisions.
conformance: build
	bash scripts/conformance/run.sh

bench: setup
	$(CARGO) bench --locked -p fidomesh

crds: build
	$(BIN) crds > manifests/crds/fidomesh.io.yaml

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
