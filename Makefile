# Reliable messaging with Kafka — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NATIVE := infra/native

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
up: infra-up ## Run the demo: infrastructure + order-service (:8080) + payment-service (:8081)
	@bash $(NATIVE)/services.sh start

.PHONY: down
down: ## Stop exactly what `make up` / `make test` started (reused servers keep running)
	@bash $(NATIVE)/services.sh stop
	@bash $(NATIVE)/stack.sh stop

.PHONY: status
status: ## Show what is running
	@bash $(NATIVE)/stack.sh status || true
	@bash $(NATIVE)/services.sh status || true

.PHONY: logs
logs: ## Tail the logs of the services and the infrastructure
	@tail -n 20 -F .state/services/*.log .state/postgres/postgres.log .state/redis/redis.log .state/kafka-main/node-*.log 2>/dev/null

.PHONY: test
test: infra-up ## Run all tests against the real Postgres, Redis and 3-node Kafka (starts them if needed)
	cargo test --workspace --all-targets --locked
	@bash scripts/check-docs.sh

.PHONY: fmt
fmt: ## Format the Rust code
	cargo fmt --all

.PHONY: lint
lint: ## fmt check + clippy -D warnings + shellcheck-style syntax check of the scripts
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@for f in infra/native/*.sh scripts/*.sh .ci/run; do bash -n "$$f" || exit 1; done

.PHONY: trace
trace: ## One order's trace as a waterfall: make trace ORDER=<id> (without ORDER: the last 20 traces)
	@cargo run -q -p trace-view -- $(if $(ORDER),--order $(ORDER),--last 20)

.PHONY: metrics
metrics: ## Both services' GET /metrics (:8080, :8081), without the histogram buckets
	@for port in 8080 8081; do echo "== localhost:$$port/metrics"; \
	  curl -fsS "localhost:$$port/metrics" | grep -v -e '^#' -e '^$$' -e '_bucket{' || exit 1; done

.PHONY: reconcile
reconcile: ## Count accepted orders, events in Kafka, deliveries, payments: lost / double-applied (exit 1 if any)
	@cargo run -q -p reconcile

.PHONY: drills-replication
drills-replication: deps ## Store-stage drills on a 3-node cluster of their own: acks=1 vs acks=all on leader failover
	cargo run -q -p drills --bin replication-drills

.PHONY: bench-claim
bench-claim: infra-up ## Compare outbox claim strategies (SKIP LOCKED vs optimistic lock) with 1/2/4 relays
	cargo run --release -p outbox --example claim_bench

.PHONY: sqlx-prepare
sqlx-prepare: infra-up ## Regenerate the committed .sqlx/ offline query data (needs sqlx-cli)
	bash scripts/sqlx-prepare.sh
