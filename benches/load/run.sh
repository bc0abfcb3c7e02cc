#!/usr/bin/env bash
# The side-by-side load benchmark: direct-to-origin, nginx, stagegate anonymous passthrough,
# stagegate signed + MAPPING, all driven by the same wrk settings. See README.md here.
#
#   benches/load/run.sh                      # ROUNDS=3 DURATION=10s CONNECTIONS=32 THREADS=1
#   ROUNDS=5 DURATION=30s CONNECTIONS=64 benches/load/run.sh
source "$(dirname "$0")/lib.sh"

ensure_tools
[ -n "${SKIP_BUILD:-}" ] || build
rm -rf "$OUT/run" && mkdir -p "$OUT/run"
: >"$OUT/results.tsv"

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_origin "$ORIGIN_DIRECT" origin-a "$SERVER_CPU"
start_nginx
start_hyper_proxy
start_gateway "$OUT/run/gw-data"
setup_apis
[ "$(curl -s "http://$NGINX/anon")" = origin-a ] || { log "nginx does not proxy"; exit 1; }

# ROUNDS rounds, each measuring every target once, in an order rotated from round to round.
# This machine's speed drifts by up to 2x from one 10-second window to the next, so a ratio
# between two runs minutes apart says more about the drift than about the servers; the summary
# takes each round's ratios to that round's nginx run, then the median over the rounds.
ROUNDS=${ROUNDS:-3}
secs=$((${DURATION%s} + ${WARMUP%s}))
targets=(direct nginx hyper anonymous signed)
machine_facts | tee "$OUT/facts.txt"
echo "rounds: $ROUNDS, each target once per round, order rotated" | tee -a "$OUT/facts.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    # Enough distinct nonces for the warm-up and the run at up to 60 000 requests/s, signed
    # just before the round (the signature's timestamp is checked against a 15-minute window).
    log "round $r: pre-signing $((secs * 60000)) requests"
    sign $((secs * 60000)) "$OUT/run/signed.txt"
    export SIGNED_FILE=$OUT/run/signed.txt SIGNED_PATH
    export RESULTS=$OUT/run/round-$r.tsv
    : >"$RESULTS"
    for ((t = 0; t < ${#targets[@]}; t++)); do
        case ${targets[(t + r - 1) % ${#targets[@]}]} in
        direct) log "round $r: direct"; wrk_run "direct to origin" "http://$ORIGIN_DIRECT/anon" ;;
        nginx) log "round $r: nginx"; wrk_run nginx "http://$NGINX/anon" ;;
        hyper) log "round $r: hyper proxy"; wrk_run "hyper proxy" "http://$HYPER_PROXY/anon" ;;
        anonymous) log "round $r: anonymous"; wrk_run "stagegate anonymous" "http://$GW/anon" ;;
        signed) log "round $r: signed+mapping"
            wrk_run "stagegate signed+MAPPING" "http://$GW$SIGNED_PATH" "$ROOT/benches/load/signed.lua" ;;
        esac
    done
    cat "$RESULTS" >>"$OUT/results.tsv"
    echo "round $r:"; print_table "$RESULTS"
done | tee "$OUT/rounds.md"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/facts.txt"
echo "gateway VmRSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$GW_PID/status)" | tee -a "$OUT/facts.txt"
echo "median of $ROUNDS rounds (ratios taken within each round):"
print_summary "$OUT"/run/round-*.tsv | tee "$OUT/table.md"
