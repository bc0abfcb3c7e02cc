#!/usr/bin/env bash
# Scale: APIS published APIs across GROUPS_N groups (one POST /import of a generated export
# document), then the gateway's resident memory, its start-up time from the embedded store
# (restart on the populated data directory, until the data port answers an imported API),
# and change-to-live latency of CHANGES admin changes (no wrk load). See README.md here.
#
#   benches/load/scale.sh                 # APIS=100000 GROUPS_N=1000 CHANGES=1000
source "$(dirname "$0")/lib.sh"

APIS=${APIS:-100000}
GROUPS_N=${GROUPS_N:-1000}
TOGGLES=${TOGGLES:-100}
CHANGES=${CHANGES:-1000}

rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$GW_PID/status"; }

ensure_tools
[ -n "${SKIP_BUILD:-}" ] || build
rm -rf "$OUT/scale" && mkdir -p "$OUT/scale"
F=$OUT/scale/facts.txt

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_origin "$ORIGIN_B" origin-b "$CLIENT_CPU"
start_gateway "$OUT/scale/gw-data"
setup_apis
machine_facts | tee "$F"
echo "gateway VmRSS, empty but for the bench APIs: $(rss)" | tee -a "$F"

admin GET /export >"$OUT/scale/base.json"
"$BIN/churn" gen "$OUT/scale/base.json" "$APIS" "$GROUPS_N" "$TOGGLES" >"$OUT/scale/import.json"
echo "import document: $(du -m "$OUT/scale/import.json" | cut -f1) MB, $APIS APIs in $GROUPS_N groups (+ $TOGGLES)" | tee -a "$F"
t0=$(date +%s%N)
admin POST /import @"$OUT/scale/import.json" >/dev/null
echo "POST /import: $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$F"
rm -f "$OUT/scale/import.json"
echo "gateway VmRSS after the import: $(rss)" | tee -a "$F"
echo "data file: $(du -m "$OUT/scale/gw-data/stagegate.redb" | cut -f1) MB" | tee -a "$F"

# startup CPUS LABEL: restart the gateway on CPUS and time it until an imported API answers.
startup() {
    stop_gateway
    local t0
    t0=$(date +%s%N)
    GATEWAY_CPUS=$1 start_gateway "$OUT/scale/gw-data"
    for ((i = 0; i < 3000; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$GW/g7/a7")" = 200 ] && break
        sleep 0.005
    done
    echo "start-up from the store until an imported API answers, $2: $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$F"
    echo "gateway VmRSS after restart, $2: $(rss)" | tee -a "$F"
}
# all the machine's cores (records are decoded on as many threads), then the one core the
# gateway is pinned to for the changes below
startup "0-$(($(nproc) - 1))" "all $(nproc) cores"
startup "$SERVER_CPU" "one core"

log "$CHANGES changes, no load"
taskset -c "$CLIENT_CPU" "$BIN/churn" run --admin "http://$ADMIN" --gw "http://$GW" --token "$TOKEN" \
    --changes "$CHANGES" --toggles "$TOGGLES" --apis "$APIS" --groups "$GROUPS_N" \
    --backend "$BACKEND" --origin-a "http://$ORIGIN_A" --origin-b "http://$ORIGIN_B" \
    --probe /anon --app "$CHURN_APP" --app-key "$CHURN_KEY" --signed "$SIGNED_PATH" \
    --timeout-ms 10000 | tee "$OUT/scale/churn.txt"
echo "gateway VmRSS after the changes: $(rss)" | tee -a "$F"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$F"
