#!/usr/bin/env bash
# What policies and metrics cost one request, in instructions: noise-free where criterion's
# timings on a shared or busy machine are not. Runs cases of the `pipeline` bench under
# callgrind, collecting only inside the gateway (`Gateway::call` and the `serve` future it
# returns: routing, the policies, the backend, the response's headers, the access log and the
# metrics), and divides by the number of requests. Prints each case and its cost over its
# baseline (`policies/none` for the policies, `pipeline/anonymous_mock` for metrics).
#
#   benches/pipeline_cost.sh                      # every case, 2 s each under valgrind
#   PROFILE_TIME=5 benches/pipeline_cost.sh policies/cors
#
# Needs valgrind (callgrind, callgrind_annotate); builds the bench with `cargo bench --no-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE_TIME=${PROFILE_TIME:-2}
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(policies/none policies/ip_control policies/throttling policies/cors
    policies/all_three pipeline/anonymous_mock pipeline/anonymous_mock_metrics)
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
BIN=$(cargo bench --bench pipeline --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "cannot find the pipeline bench binary" >&2; exit 1; }
OUT=target/pipeline-cost
mkdir -p "$OUT"
# The response future is `serve::{{closure}}`; `call` and its boxed future's drop match the first.
CALL='<stagegate::layer::service::Gateway<S> as tower_service::Service<http::request::Request<B>>>::call'
declare -A PER
for case in "${CASES[@]}"; do
    f=$OUT/${case//\//_}
    valgrind --tool=callgrind --callgrind-out-file="$f.out" --collect-atstart=no \
        --toggle-collect='*stagegate::layer::service::Gateway*call*' \
        --toggle-collect='stagegate::layer::service::serve*' \
        "$BIN" --bench --profile-time "$PROFILE_TIME" "^$case\$" >"$f.log" 2>&1
    total=$(grep -o 'I *refs: *[0-9,]*' "$f.log" | tr -d ', ' | cut -d: -f2 | sort -n | tail -1)
    calls=$(callgrind_annotate --tree=caller "$f.out" 2>/dev/null | grep -F "boxed.rs:$CALL (" |
        head -1 | sed 's/.*(\([0-9,]*\)x).*/\1/' | tr -d ,)
    PER[$case]=$(awk -v t="$total" -v n="$calls" 'BEGIN { printf "%.0f", t / n }')
    base=""
    case $case in
        policies/none | pipeline/anonymous_mock) ;;
        policies/*) base=policies/none ;;
        pipeline/anonymous_mock_metrics) base=pipeline/anonymous_mock ;;
    esac
    if [ -n "$base" ] && [ -n "${PER[$base]:-}" ]; then
        printf '%-34s %7s instructions a request (%s requests), %+d over %s\n' "$case" \
            "${PER[$case]}" "$calls" "$((PER[$case] - PER[$base]))" "$base"
    else
        printf '%-34s %7s instructions a request (%s requests)\n' "$case" "${PER[$case]}" "$calls"
    fi
done
