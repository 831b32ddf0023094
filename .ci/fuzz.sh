#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer, nightly, AddressSanitizer): every target in tests/fuzz/
# runs for a bounded time from its seed corpus in tests/fuzz/corpus/<target>/. Inputs the fuzzer
# finds go to a temporary folder, so the repository keeps only the seeds. A crash fails the
# script; the input that caused it is left in tests/fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>`).
#
# Usage: .ci/fuzz.sh [seconds per target, default 20] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-20}"
shift || true
FUZZ_DIR=tests/fuzz

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Files the targets write (plugin_load's plugins.d/) go with the rest when the script ends.
export TMPDIR="$work"
total=0
for target in "${targets[@]}"; do
  mkdir -p "$work/corpus-$target"
  log="$work/$target.log"
  # The first corpus folder receives new inputs; the seeds are only read.
  if ! cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "$target" \
      "$work/corpus-$target" "$FUZZ_DIR/corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" | cut -c1-400
    echo "fuzz target $target FAILED (input saved in $FUZZ_DIR/artifacts/$target/)"
    exit 1
  fi
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
  found=$(find "$work/corpus-$target" -type f | wc -l)
  echo "fuzz $target: ${execs:-?} executions in ${SECONDS_PER_TARGET} s (${rate:-?}/s), $found new corpus entries"
  total=$((total + ${execs:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions, no crash"
