#!/usr/bin/env bash
# Config churn under load: wrk drives the anonymous API while examples/churn.rs applies
# CHANGES configuration changes through the admin API (unpublish/publish of other APIs,
# the backend's TEST and RELEASE definitions switched between two origins, an app's secret
# rotated), each timed until visible on the data plane. The gateway first gets APIS more
# published APIs through one POST /import. See README.md here.
#
#   benches/load/churn.sh                 # APIS=10000 CHANGES=10000
source "$(dirname "$0")/lib.sh"

APIS=${APIS:-10000}
GROUPS_N=${GROUPS_N:-100}
TOGGLES=${TOGGLES:-100}
CHANGES=${CHANGES:-10000}

ensure_tools
[ -n "${SKIP_BUILD:-}" ] || build
rm -rf "$OUT/churn" && mkdir -p "$OUT/churn"
: >"$OUT/churn/results.tsv"

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_origin "$ORIGIN_B" origin-b "$CLIENT_CPU"
start_gateway "$OUT/churn/gw-data"
setup_apis

log "importing $APIS APIs in $GROUPS_N groups (+ $TOGGLES to toggle)"
admin GET /export >"$OUT/churn/base.json"
"$BIN/churn" gen "$OUT/churn/base.json" "$APIS" "$GROUPS_N" "$TOGGLES" >"$OUT/churn/import.json"
t0=$(date +%s.%N)
admin POST /import @"$OUT/churn/import.json" >/dev/null
log "import took $(echo "$(date +%s.%N) - $t0" | bc) s"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$GW/g0/a0")" = 200 ] || { log "imported APIs do not answer"; exit 1; }

machine_facts | tee "$OUT/churn/facts.txt"
log "steady state"
RESULTS=$OUT/churn/results.tsv wrk_run steady "http://$GW/anon"

log "churn: $CHANGES changes while wrk runs"
taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d600s --latency "http://$GW/anon" \
    >"$OUT/churn/wrk-churn.txt" &
WRK=$!
PIDS+=($WRK)
sleep 1
taskset -c "$CLIENT_CPU" "$BIN/churn" run --admin "http://$ADMIN" --gw "http://$GW" --token "$TOKEN" \
    --changes "$CHANGES" --toggles "$TOGGLES" --apis "$APIS" --groups "$GROUPS_N" \
    --backend "$BACKEND" --origin-a "http://$ORIGIN_A" --origin-b "http://$ORIGIN_B" \
    --probe /anon --app "$CHURN_APP" --app-key "$CHURN_KEY" --signed "$SIGNED_PATH" \
    | tee "$OUT/churn/churn.txt"
kill -INT "$WRK"
wait "$WRK" || true
parse_wrk "during churn" <"$OUT/churn/wrk-churn.txt" >>"$OUT/churn/results.tsv"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/churn/facts.txt"
echo "gateway VmRSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$GW_PID/status)" | tee -a "$OUT/churn/facts.txt"

awk -F'\t' '
    { name[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4; non[NR] = $5; sock[NR] = $6
      if (NR == 1) s99 = $4 }
    END {
        print "| wrk on /anon | requests/s | p50 ms | p99 ms | p99 × steady | non-2xx | socket errors |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++)
            printf "| %s | %.0f | %.3f | %.3f | %.2f | %d | %d |\n", name[i], rps[i], p50[i], p99[i], p99[i] / s99, non[i], sock[i]
    }' "$OUT/churn/results.tsv" | tee "$OUT/churn/table.md"
echo
awk '/^kind=/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        if (!hdr++) { print "| change | n | admin errors | not live in 5 s | admin ack p50 ms | p99 ms | change-to-live p50 ms | p99 ms | max ms | live after ack p50 ms | p99 ms |"
                      print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", v["kind"], v["n"], v["admin_errors"], v["timeouts"], v["ack_p50_ms"], v["ack_p99_ms"], v["live_p50_ms"], v["live_p99_ms"], v["live_max_ms"], v["after_ack_p50_ms"], v["after_ack_p99_ms"]
     }
     /^churn_changes=/ { print; }' "$OUT/churn/churn.txt" | tee -a "$OUT/churn/table.md"
