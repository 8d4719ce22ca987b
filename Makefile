# The two commands of the README. Both run the idempotent set-up step first.
BUILD ?= build

.PHONY: setup build guest demo test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja >/dev/null
	@cmake --build $(BUILD)

guest: build
	@cmake --build $(BUILD) --target guest

demo: build
	@bash scripts/demo.sh $(BUILD)

# The lab's summary (outcome and retries of each lab test) follows ctest's,
# whatever ctest's status.
test: build
	@rm -f $(BUILD)/lab/logs/*.result
	@cd $(BUILD) && ctest --output-on-failure --timeout 1500; status=$$?; \
		bash $(CURDIR)/tests/lab/report.sh lab; exit $$status

bench: build
	@cmake --build $(BUILD) --target bench

clean:
	rm -rf $(BUILD)
