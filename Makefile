# Reliable messaging with Kafka — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NATIVE := infra/native
# Where cargo puts its builds (CARGO_TARGET_DIR when set).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# cargo-deny (crates.io), pinned and installed into .tools/ on first use (`make lint-tools`).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .tools/cargo-deny/bin/cargo-deny
DOCKER_COMPOSE := docker compose -p reliable-messaging -f infra/compose/compose.yaml

.PHONY: help
help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what a fresh Debian machine lacks (apt: build chain, Postgres, Redis; Maven: Kafka jars)
	@bash $(NATIVE)/install-deps.sh
	@bash $(NATIVE)/kafka.sh fetch

.PHONY: infra-up
infra-up: deps ## Start only the infrastructure: Postgres, Redis, 3-node Kafka (native)
	@bash $(NATIVE)/stack.sh start

.PHONY: up
up: ## Run the demo: the compose stack when a Docker engine answers, else the native one; prints the URLs
	@if docker info >/dev/null 2>&1; then \
	  echo "make up: a Docker engine answers: starting the compose stack (infra/compose/)"; \
	  $(MAKE) --no-print-directory compose-up; \
	else \
	  echo "make up: no Docker engine: starting the native stack (infra/native/)"; \
	  $(MAKE) --no-print-directory native-up; \
	fi

.PHONY: native-up
native-up: infra-up ## The native demo: infrastructure + both services + Prometheus (:9090)
	@bash $(NATIVE)/services.sh start
	@bash $(NATIVE)/prometheus.sh start >/dev/null
	@bash scripts/urls.sh native

.PHONY: compose-up
compose-up: ## The compose demo (needs Docker): 3 Kafka brokers, Postgres, Redis, services, Prometheus, Grafana, Jaeger, Kafka UI
	$(DOCKER_COMPOSE) up -d --build --wait
	@bash scripts/urls.sh compose

.PHONY: down
down: ## Stop exactly what `make up` / `make test` started (reused servers keep running)
	@if docker info >/dev/null 2>&1 && [ -n "$$($(DOCKER_COMPOSE) ps -q 2>/dev/null)" ]; then \
	  $(DOCKER_COMPOSE) down; \
	fi
	@bash $(NATIVE)/services.sh stop
	@bash $(NATIVE)/prometheus.sh stop
	@bash $(NATIVE)/stack.sh stop

.PHONY: clean
clean: ## Stop everything and delete ALL the demo's data: databases orders/payments, topics, dedup keys, send log, Prometheus, traces (compose: its volumes)
	@if docker info >/dev/null 2>&1 && [ -n "$$($(DOCKER_COMPOSE) ps -aq 2>/dev/null)" ]; then $(DOCKER_COMPOSE) down -v; fi
	@bash $(NATIVE)/clean.sh

.PHONY: status
status: ## Show what is running
	@bash $(NATIVE)/stack.sh status || true
	@bash $(NATIVE)/services.sh status || true
	@bash $(NATIVE)/prometheus.sh status || true

.PHONY: logs
logs: ## Tail the logs of the services and the infrastructure
	@tail -n 20 -F .state/services/*.log .state/postgres/postgres.log .state/redis/redis.log .state/kafka-main/node-*.log .state/prometheus/prometheus.log 2>/dev/null

.PHONY: test
test: infra-up ## Run all tests against the real Postgres, Redis and 3-node Kafka (starts them if needed), then the API fuzzer
	cargo test --workspace --all-targets --locked --no-fail-fast
	@bash scripts/check-docs.sh
	@bash scripts/check-monitoring.sh
	@bash scripts/api-fuzz.sh
	@bash tools/control-room/browser-test/run.sh test

.PHONY: control-room-test
control-room-test: infra-up ## The control room's browser test alone (chromium + playwright-core; also part of `make test`)
	@bash tools/control-room/browser-test/run.sh test

.PHONY: control-room-drill
control-room-drill: deps ## Every button of the control room pressed in chromium, broker faults included, on a Kafka cluster of its own
	@bash $(NATIVE)/postgres.sh start >/dev/null
	@bash $(NATIVE)/redis.sh start >/dev/null
	@bash tools/control-room/browser-test/run.sh every-button

.PHONY: api-fuzz
api-fuzz: infra-up ## The API contract checked by schemathesis against a running order-service (also part of `make test`)
	@bash scripts/api-fuzz.sh

.PHONY: fmt
fmt: ## Format the Rust code
	cargo fmt --all

.PHONY: lint
lint: lint-tools ## fmt check, clippy -D warnings, shellcheck over every shell script, cargo-deny (licences, bans, duplicate versions; deny.toml)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	shellcheck -x $$(git ls-files '*.sh') .ci/run
	@# No advisories: their database is fetched from the network, which this machine cannot reach (deny.toml).
	$(CARGO_DENY) --locked check --hide-inclusion-graph licenses bans

.PHONY: lint-tools
lint-tools: ## Install what `make lint` runs: shellcheck (Debian), cargo-deny (crates.io, the version pinned here, into .tools/)
	@command -v shellcheck >/dev/null || bash -c 'source $(NATIVE)/common.sh && apt_install shellcheck'
	@$(CARGO_DENY) --version 2>/dev/null | grep -qF '$(CARGO_DENY_VERSION)' \
	  || cargo install cargo-deny --version $(CARGO_DENY_VERSION) --locked --root .tools/cargo-deny

.PHONY: trace
trace: ## One order's trace as a waterfall: make trace ORDER=<id> (without ORDER: the last 20 traces)
	@cargo run -q -p trace-view -- $(if $(ORDER),--order $(ORDER),--last 20)

.PHONY: metrics
metrics: ## Both services' GET /metrics (:8080, :8081), without the histogram buckets
	@for port in $${ORDER_SERVICE_PORT:-8080} $${PAYMENT_SERVICE_PORT:-8081}; do echo "== localhost:$$port/metrics"; \
	  curl -fsS "localhost:$$port/metrics" | grep -v -e '^#' -e '^$$' -e '_bucket{' || exit 1; done

.PHONY: reconcile
reconcile: ## Count accepted orders, events in Kafka, deliveries, payments: lost / double-applied (exit 1 if any)
	@cargo run -q -p reconcile

.PHONY: outbox-retry
outbox-retry: ## The relay's FAILED outbox rows: list them, or put back ID=<event id>, KEY=<message key> or ALL=1 (DB=payments: payment-service's outbox)
	@DATABASE_URL=$${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/$(or $(DB),orders)} \
	  cargo run -q -p outbox --bin outbox-admin -- \
	  $(if $(ID),retry $(ID),$(if $(KEY),retry-key $(KEY),$(if $(ALL),retry-all,list)))

.PHONY: drills
drills: infra-up ## The failure matrix: crash points, rebalance, outages, poison, with unsafe toggles (FILTER=<name part>)
	cargo build -q -p order-service -p payment-service -p drills
	$(TARGET_DIR)/debug/failure-drills $(FILTER)

.PHONY: model-check
model-check: ## The protocol model, deeper bounds: every interleaving and crash point, each variant's counterexample trace (no services)
	MODEL_DEPTH=deep cargo run --release --locked -q -p protocol-model

.PHONY: monitoring-check
monitoring-check: ## Alert-rule unit tests (promtool) + metric-name, dashboard and compose checks (also part of `make test`)
	@bash scripts/check-monitoring.sh

.PHONY: drills-replication
drills-replication: deps ## Store-stage drills on a cluster of their own (acks, min ISR + alerts, RF, unclean election, kill -9, outbox relay)
	@bash $(NATIVE)/postgres.sh start >/dev/null  # drill 6's scratch database
	cargo run -q -p drills --bin replication-drills

.PHONY: drills-scale-out
drills-scale-out: infra-up ## N order-services + M payment-services under k6, one of each killed -9; reconcile + per-key order (ORDER_SERVICES, PAYMENT_SERVICES, RATE, DURATION)
	cargo build -q -p order-service -p payment-service -p drills
	$(TARGET_DIR)/debug/scale-out-drill

.PHONY: soak
soak: deps ## The soak: k6 steady for DURATION (60m) with a fault schedule, on a stack of its own; reconcile, sizes, RSS (DURATION, RATE)
	cargo build -q -p order-service -p payment-service -p outbox -p drills
	DURATION=$(or $(DURATION),60m) RATE=$(or $(RATE),20) $(TARGET_DIR)/debug/soak

.PHONY: bench-claim
bench-claim: infra-up ## Compare outbox claim strategies (SKIP LOCKED vs optimistic lock) with 1/2/4 relays
	cargo run --release -p outbox --example claim_bench

.PHONY: load
load: ## k6 scenario against the running stack (make up), SCENARIO=steady|ramp|spike|retry-storm; ends with the reconciliation
	@bash load-tests/run.sh $(or $(SCENARIO),steady)

.PHONY: bench
bench: infra-up ## Benchmark (release): API, relay, consumer sweep vs their ceilings, chain saturation, e2e latency, claim strategies, RSS → bench-results/
	@# The services exactly as `make up` builds them (same command, same profile), then
	@# the bench on its own: building it together with them could unify features differently.
	@bash $(NATIVE)/services.sh build
	cargo build --release --locked -p bench
	cargo build --release --locked -p outbox --example claim_bench
	BENCH_BIN_DIR=$(TARGET_DIR)/release $(TARGET_DIR)/release/bench

.PHONY: sqlx-prepare
sqlx-prepare: infra-up ## Regenerate the committed .sqlx/ offline query data (needs sqlx-cli)
	bash scripts/sqlx-prepare.sh
