# Two entry points for a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv with the package and its test extras on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-floor lint bench record clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/holysheep demo

# The Redis tests start their own redis-server (Debian's package) on a free loopback port.
REDIS_SERVER := $(shell command -v redis-server || ls /usr/bin/redis-server 2>/dev/null)

test: $(STAMP)
	@test -n "$(REDIS_SERVER)" || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; } || \
		echo "redis-server could not be installed: the Redis tests will be skipped"
	$(BIN)/ruff check -q .
	$(BIN)/ruff format -q --check .
	$(BIN)/python -m pytest -q

# The replay tests on exactly the vcrpy floor that pyproject.toml declares (the registry is
# the only network use), so a floor that stops working is caught, not just the newest vcrpy.
VCRPY_FLOOR := $(shell sed -n 's/.*"vcrpy>=\([0-9.]*\),.*/\1/p' pyproject.toml | head -1)
FLOOR_DIR := $(VENV)/floor-vcrpy-$(VCRPY_FLOOR)

test-floor: $(STAMP)
	test -d $(FLOOR_DIR) || $(BIN)/python -m pip install -q --no-deps --target $(FLOOR_DIR) \
		"vcrpy==$(VCRPY_FLOOR)"
	PYTHONPATH=$(FLOOR_DIR) $(BIN)/python -c \
		"import vcr; assert vcr.__version__ == '$(VCRPY_FLOOR)', vcr.__version__"
	PYTHONPATH=$(FLOOR_DIR) $(BIN)/python -m pytest -q tests/recorded tests/test_replay_plugin.py \
		tests/test_cassette_hygiene.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Speed against the peers (README: "Benchmarks"); not part of `make test`.
# BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS=--quick`.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e ".[all,test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light; } || \
		echo "nginx could not be installed: the benchmark uses its asyncio fallback server"
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Re-record the cassettes of tests/recorded (README: "Replaying recorded tests offline"):
# against the live API when HOLYSHEEP_API_KEY is set (sockets opened for it), else against
# the bundled emulator.
# RECORD_ARGS narrows it, e.g. `make record RECORD_ARGS="-k langchain"`.
record: $(STAMP)
	$(BIN)/python -m pytest -q tests/recorded --record-mode=rewrite \
		$(if $(HOLYSHEEP_API_KEY),--force-enable-socket) $(RECORD_ARGS)

clean:
	rm -rf $(VENV)
