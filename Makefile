# mall — the commands a newcomer needs. `make help` lists them.

CARGO ?= cargo
# Debian's mysqlclient-sys needs nothing yet; later issues add their system packages here.

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt check-domain-pure

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Build and serve the in-memory demo on 127.0.0.1:8080 (prints an admin token and curl lines)
	$(CARGO) run --bin mall -- --demo

test: check-domain-pure ## Run every test (nextest when installed, else cargo test)
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --all-targets --no-fail-fast; \
	else \
		echo "cargo-nextest not found; running cargo test"; \
		$(CARGO) test --workspace --all-targets --no-fail-fast; \
	fi

lint: check-domain-pure ## fmt check + clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

check-domain-pure: ## Fail if the domain crate depends on an I/O crate
	@bad=$$($(CARGO) tree -p domain -e normal --prefix none --format '{p}' \
		| grep -E '^(actix|diesel|r2d2|reqwest|hyper|awc|mysqlclient|tokio) ' || true); \
	if [ -n "$$bad" ]; then echo "domain depends on I/O crates:"; echo "$$bad"; exit 1; fi; \
	echo "domain is pure: no actix, diesel, r2d2, HTTP client or tokio in its dependencies"
