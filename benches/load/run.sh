#!/usr/bin/env bash
# The side-by-side load benchmark: direct-to-origin, nginx, stagegate anonymous passthrough,
# stagegate signed + MAPPING, all driven by the same wrk settings. See README.md here.
#
#   benches/load/run.sh                      # DURATION=10s CONNECTIONS=32 THREADS=1
#   DURATION=30s CONNECTIONS=64 benches/load/run.sh
source "$(dirname "$0")/lib.sh"

ensure_tools
[ -n "${SKIP_BUILD:-}" ] || build
rm -rf "$OUT/run" && mkdir -p "$OUT/run"
: >"$OUT/results.tsv"

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_origin "$ORIGIN_DIRECT" origin-a "$SERVER_CPU"
start_nginx
start_gateway "$OUT/run/gw-data"
setup_apis
[ "$(curl -s "http://$NGINX/anon")" = origin-a ] || { log "nginx does not proxy"; exit 1; }

# Enough distinct nonces for the warm-up and the run at up to 60 000 requests/s.
secs=$((${DURATION%s} + ${WARMUP%s}))
log "pre-signing $((secs * 60000)) requests"
sign $((secs * 60000)) "$OUT/run/signed.txt"
export SIGNED_FILE=$OUT/run/signed.txt SIGNED_PATH

machine_facts | tee "$OUT/facts.txt"
log "direct";         wrk_run "direct to origin" "http://$ORIGIN_DIRECT/anon"
log "nginx";          wrk_run nginx "http://$NGINX/anon"
log "anonymous";      wrk_run "stagegate anonymous" "http://$GW/anon"
log "signed+mapping"; wrk_run "stagegate signed+MAPPING" "http://$GW$SIGNED_PATH" "$ROOT/benches/load/signed.lua"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/facts.txt"
echo "gateway VmRSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$GW_PID/status)" | tee -a "$OUT/facts.txt"
print_table "$OUT/results.tsv" | tee "$OUT/table.md"
