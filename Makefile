# KRX market observer. `make run` and `make test` work on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS := sim writer observer monitor rest-collector ws-collector housekeeper
# run/status/start/stop use the demo config; a production host says CONFIG=/etc/krx-observer/observer.toml
CONFIG ?= config/demo.toml
# the control targets act on a running pipeline: they never (re)install anything; on a production host
# without this checkout's venv they use the `observer` on PATH (e.g. OBSERVER=/opt/krx-observer/venv/bin/observer)
OBSERVER ?= $(if $(wildcard $(BIN)/observer),$(BIN)/observer,observer)

.PHONY: run research replay tap test test-services lint bench soak status venv clean $(addprefix start-,$(WORKERS)) $(addprefix stop-,$(WORKERS)) $(addprefix restart-,$(WORKERS))

$(STAMP): pyproject.toml
	@test -x $(BIN)/pip || { rm -rf $(VENV); command -v $(PY) >/dev/null 2>&1 && $(PY) -m venv $(VENV) || python3 -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/observer --config $(CONFIG) run

test: $(STAMP)
	@bash tests/services/install.sh
	$(BIN)/python -m pytest -q -x --timeout=300 tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-services:
	@bash tests/services/install.sh

lint: $(STAMP)
	$(BIN)/ruff check observer collectors sinks supervisor testkit tests bench
	$(BIN)/ruff format --check observer collectors sinks supervisor testkit tests bench
	$(BIN)/mypy observer collectors sinks supervisor

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# the chaos soak with accounting closure: SOAK_S (600), SEED (1), SCALE ([sim] activity_scale, 1)
soak: $(STAMP)
	$(BIN)/python bench/soak.py

DAY ?= $(shell TZ=Asia/Seoul date +%Y%m%d)
research: $(STAMP)
	$(OBSERVER) --config $(CONFIG) export --day $(DAY)
	$(OBSERVER) --config $(CONFIG) report --day $(DAY)

# a recorded day back onto the replay feed (watch it with `make tap` in another terminal)
SPEED ?= 1
replay: $(STAMP)
	@test -n "$(DAY)" || { echo "usage: make replay DAY=YYYY-MM-DD [SPEED=1|N|max]" >&2; exit 2; }
	$(OBSERVER) --config $(CONFIG) replay --day $(DAY) --speed $(SPEED)

tap: $(STAMP)
	$(OBSERVER) --config $(CONFIG) tap --counts $(if $(REPLAY),--replay)

status:
	$(OBSERVER) --config $(CONFIG) ctl status

$(addprefix start-,$(WORKERS)): start-%:
	$(OBSERVER) --config $(CONFIG) ctl start $*
$(addprefix stop-,$(WORKERS)): stop-%:
	$(OBSERVER) --config $(CONFIG) ctl stop $*
$(addprefix restart-,$(WORKERS)): restart-%:
	$(OBSERVER) --config $(CONFIG) ctl restart $*

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
