#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on a copy of its committed seed corpus, and fails
# if any target finds a crash (a panic, a failed property assertion, a timeout or an
# out-of-memory). Works on the stable toolchain: see README.md here for why and how.
#
#   bash fuzz/run.sh                 # every target, FUZZ_SECONDS (default 12) each
#   FUZZ_SECONDS=600 bash fuzz/run.sh mapping   # one target, longer
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

seconds="${FUZZ_SECONDS:-12}"

# The version this was checked with; a newer one may pass other rustc flags.
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

# Stable is enough: without a sanitizer (`--sanitizer none`) cargo-fuzz passes only coverage
# flags stable rustc accepts (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`,
# `--cfg fuzzing`). No RUSTC_BOOTSTRAP: it would also make build scripts that probe for
# nightly features (proc-macro2, anyhow, ...) turn them on.
fuzz_flags=(--sanitizer none --release --debug-assertions)

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== cargo fuzz build (${targets[*]})"
cargo fuzz build "${fuzz_flags[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
  cp -R "corpus/$target/." "$work/corpus/$target/"
  # -timeout: one input taking longer than 10 s is a finding (a hang), not a slow machine.
  if ! cargo fuzz run "${fuzz_flags[@]}" "$target" "$work/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$target/"; then
    failed+=("$target")
    mkdir -p "artifacts/$target"
    for f in "$work/artifacts/$target"/*; do
      [ -e "$f" ] || continue
      cp "$f" "artifacts/$target/"
      echo "-- finding kept as fuzz/artifacts/$target/$(basename "$f") (base64 below); reproduce:"
      echo "   cargo fuzz run --sanitizer none $target fuzz/artifacts/$target/$(basename "$f")"
      base64 "$f" | head -c 4000
      echo
    done
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found a problem in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets ran ${seconds}s each, no finding"
