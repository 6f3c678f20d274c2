# mall — the commands a newcomer needs. `make help` lists them.

CARGO ?= cargo
# The MariaDB server tests use (root may create databases there).
MALL_TEST_DATABASE_URL ?= mysql://root@127.0.0.1:3306
export MALL_TEST_DATABASE_URL
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_DIR := crates/app/tests/browser
# The API tools (schemathesis, openapi-python-client), pinned in fuzz/requirements.txt.
VENV := .venv-fuzz

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt migrate deps browser-deps fuzz-deps fuzz client docs-screenshot db-up db-clean check-domain-pure chaos chaos-short bench bench-quick bench-galera cluster-up cluster-down cluster-clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: deps ## Build and serve the in-memory demo on 127.0.0.1:8080 (prints an admin token and curl lines)
	$(CARGO) run --bin mall -- --demo

# The Galera cluster tests (store-mysql's galera*.rs) need `make cluster-up`'s cluster;
# MALL_TEST_GALERA=off skips them (and the start).
GALERA_UP := $(if $(filter off,$(MALL_TEST_GALERA)),,cluster-up cluster-clean)

test: deps browser-deps fuzz-deps db-up db-clean check-domain-pure $(GALERA_UP) ## Run every test, MariaDB and Galera ones included (schemathesis too), then a short fault run
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --all-targets --no-fail-fast; \
	else \
		echo "cargo-nextest not found; running cargo test"; \
		$(CARGO) test --workspace --all-targets --no-fail-fast; \
	fi
	@$(MAKE) --no-print-directory chaos-short

# The fault run restarts the shared MariaDB, so it runs alone, after the parallel suite.
CHAOS_RUN = if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run -p app --test chaos --run-ignored only --no-capture; \
	else \
		$(CARGO) test -p app --test chaos -- --ignored --nocapture; \
	fi

chaos: export CHAOS_SECONDS = 120
chaos: export CHAOS_KILLS = 6
chaos: export CHAOS_DB_RESTARTS = 1
chaos: deps db-up ## Fault run: 2 min of load, 6 SIGKILLs, 1 MariaDB restart, then the invariants
	@$(CHAOS_RUN)

chaos-short: export CHAOS_SECONDS = 20
chaos-short: export CHAOS_KILLS = 3
chaos-short: export CHAOS_DB_RESTARTS = 1
chaos-short: deps db-up ## The fault run in short (20 s, 3 SIGKILLs, 1 MariaDB restart), as make test runs it
	@$(CHAOS_RUN)

lint: deps check-domain-pure ## fmt check + clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

migrate: deps ## Apply the database migrations to DATABASE_URL without serving
	$(CARGO) run --bin mall -- migrate

deps: ## Install the MariaDB client library the MySQL store links against, if missing
	@if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then \
		echo "installing the MariaDB client library (default-libmysqlclient-dev)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq default-libmysqlclient-dev pkg-config; \
	fi

browser-deps: ## Install Debian's Chromium and playwright-core for the Swagger UI browser test, if missing
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Chromium (Debian package) for the browser test"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi
	@if [ ! -d $(BROWSER_DIR)/node_modules/playwright-core ]; then \
		npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund --loglevel=error; \
	fi

fuzz-deps: ## Install schemathesis and openapi-python-client (fuzz/requirements.txt) into .venv-fuzz/, if missing or changed
	@if ! cmp -s fuzz/requirements.txt $(VENV)/installed-requirements.txt; then \
		echo "installing the API tools of fuzz/requirements.txt into $(VENV)/"; \
		python3 -c 'import ensurepip, venv' 2>/dev/null || { $(SUDO) apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }; \
		python3 -m venv $(VENV) && \
		$(VENV)/bin/pip install -q --disable-pip-version-check -r fuzz/requirements.txt && \
		cp fuzz/requirements.txt $(VENV)/installed-requirements.txt; \
	fi

fuzz: deps fuzz-deps db-up ## Schemathesis on both stores, longer, with a random seed (or MALL_FUZZ_SEED; MALL_FUZZ_MAX_EXAMPLES, default 500)
	MALL_FUZZ_SEED=$${MALL_FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')} \
	MALL_FUZZ_MAX_EXAMPLES=$${MALL_FUZZ_MAX_EXAMPLES:-500} \
		$(CARGO) test -p app --test schemathesis -- --nocapture

client: deps fuzz-deps ## Regenerate the Python client (clients/python/mall_client) from the API description
	@doc=$$(mktemp --suffix=.json) && \
	$(CARGO) run -q --bin mall -- openapi > $$doc && \
	RUFF_NO_CACHE=true PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/openapi-python-client generate --path $$doc \
		--meta none --output-path clients/python/mall_client --overwrite --fail-on-warning; \
	status=$$?; rm -f $$doc; exit $$status

docs-screenshot: browser-deps ## Refresh docs/swagger-ui.png from the live Swagger UI
	MALL_SCREENSHOT=$(CURDIR)/docs/swagger-ui.png $(CARGO) nextest run -p app --test swagger_ui

db-up: ## Start the local MariaDB if it is not answering, and wait for it
	@if ! mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then \
		echo "starting MariaDB"; \
		$(SUDO) start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd; \
		for i in $$(seq 1 60); do \
			mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; \
		done; \
	fi
	@mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1 \
		|| { echo "MariaDB is not reachable on 127.0.0.1:3306; the MySQL tests need it"; exit 1; }

cluster-up: ## Start a 3-node MariaDB Galera cluster on 127.0.0.1:3307-3309 (own data in /tmp/mall-galera; installs galera-4, rsync if missing); a no-op when it is up
	@scripts/galera-cluster.sh up

cluster-down: ## Stop the Galera cluster that cluster-up started (by its pid files)
	@scripts/galera-cluster.sh down

cluster-clean: ## Drop the databases earlier test runs left on the Galera cluster
	@for db in $$(mariadb -uroot -h127.0.0.1 -P3307 -N -e \
		"SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'mall\\_test\\_%'"); do \
		mariadb -uroot -h127.0.0.1 -P3307 -e "DROP DATABASE \`$$db\`"; \
	done

db-clean: ## Drop the databases earlier test runs left behind
	@for db in $$(mariadb -uroot -h127.0.0.1 -N -e \
		"SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'mall\\_test\\_%'"); do \
		mariadb -uroot -h127.0.0.1 -e "DROP DATABASE \`$$db\`"; \
	done

# Two builds, so that `mall` is built with its own features only: built together, cargo would
# give it the bench's (store-mysql's `testing`, which stays out of the binary).
RELEASE_BUILD = $(CARGO) build --release -p app && $(CARGO) build --release -p bench

bench: deps db-up ## Benchmark the release build on both stores, 10 s per scenario at 1× and 10× data (~6 min); writes docs/benchmarks.{md,json,svg}
	$(RELEASE_BUILD)
	target/release/mall-bench --seconds 10 --products 1000 --users 10000 --scale 10 --report docs/benchmarks.md

bench-quick: deps db-up ## The same, short: 3 s per scenario, 1× data only (under 2 minutes after the build)
	$(RELEASE_BUILD)
	target/release/mall-bench --seconds 3 --quick

bench-galera: deps cluster-up ## On the Galera cluster: instances on three nodes vs on one (purchases, flash sale), then issue 12's black-box run (~2 min after the build)
	$(RELEASE_BUILD)
	target/release/mall-bench --galera mysql://root@127.0.0.1:3307,mysql://root@127.0.0.1:3308,mysql://root@127.0.0.1:3309 --seconds 5 --products 1000 --users 10000

check-domain-pure: ## Fail if the domain crate depends on an I/O crate
	@bad=$$($(CARGO) tree -p domain -e normal --prefix none --format '{p}' \
		| grep -E '^(actix|diesel|r2d2|reqwest|hyper|awc|mysqlclient|tokio) ' || true); \
	if [ -n "$$bad" ]; then echo "domain depends on I/O crates:"; echo "$$bad"; exit 1; fi; \
	echo "domain is pure: no actix, diesel, r2d2, HTTP client or tokio in its dependencies"
