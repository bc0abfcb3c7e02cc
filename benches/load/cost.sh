#!/usr/bin/env bash
# What one request costs each server: CPU time per request (user and kernel, from
# /proc/PID/stat) for nginx, the bare hyper proxy, stagegate anonymous and stagegate
# signed+MAPPING, measured back to back in the same window; with CALLGRIND=1 also the
# instructions per request of each under valgrind's callgrind. See README.md here.
#
#   benches/load/cost.sh                 # ROUNDS=2, 4 s per target and round
#   CALLGRIND=1 benches/load/cost.sh     # plus instructions per request (needs valgrind)
source "$(dirname "$0")/lib.sh"

ensure_tools
[ -n "${SKIP_BUILD:-}" ] || build
rm -rf "$OUT/cost" && mkdir -p "$OUT/cost"
ROUNDS=${ROUNDS:-2}
SECONDS_PER=${SECONDS_PER:-4}

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_nginx
start_hyper_proxy
start_gateway "$OUT/cost/gw-data"
setup_apis
nginx_worker=$(pgrep -f "nginx: worker" | head -1)
hyper_pid=$(pgrep -f "examples/hyper_proxy" | head -1)
[ -n "$nginx_worker" ] && [ -n "$hyper_pid" ] || { log "nginx worker or hyper proxy not found"; exit 1; }

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # user and system, in clock ticks
tick_ns=$((1000000000 / $(getconf CLK_TCK)))

# measure NAME PID URL [LUA]: a 1 s warm-up, then SECONDS_PER seconds; one line per run.
measure() {
    local name=$1 pid=$2 url=$3 lua=${4:-} args=() u0 s0 u1 s1 n
    [ -n "$lua" ] && args=(-s "$lua")
    # The warm-up signs with the other file's nonces, so the run's own are all fresh.
    SIGNED_FILE=${SIGNED_FILE:-}.warm taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "${args[@]}" "$url" >/dev/null
    read -r u0 s0 < <(cpu_ticks "$pid")
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER}s" "${args[@]}" "$url" >"$OUT/cost/wrk.txt"
    read -r u1 s1 < <(cpu_ticks "$pid")
    n=$(awk '/requests in/ {print $1}' "$OUT/cost/wrk.txt")
    [ "$(awk '/Non-2xx/ {print $NF}' "$OUT/cost/wrk.txt")" = "" ] || { log "$name: non-2xx answers"; exit 1; }
    printf '| %s | %s | %d | %d | %d |\n' "$name" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$OUT/cost/wrk.txt")" \
        $(((u1 - u0) * tick_ns / n)) $(((s1 - s0) * tick_ns / n)) $(((u1 - u0 + s1 - s0) * tick_ns / n))
}

# Rows go to the terminal and to a file. (Not through a `{ ...; } | tee` block: processes
# started in that subshell would escape the clean-up.)
row() { echo "$1" | tee -a "$2"; }

machine_facts | tee "$OUT/cost/facts.txt"
row "| server | requests/s | user ns/request | kernel ns/request | total ns/request |" "$OUT/cost/cpu.md"
row "|---|---:|---:|---:|---:|" "$OUT/cost/cpu.md"
for ((r = 1; r <= ROUNDS; r++)); do
    # Fresh nonces for each round: wrk's script starts its list over on every run.
    sign $(((SECONDS_PER + 1) * 60000)) "$OUT/cost/signed.txt"
    export SIGNED_FILE=$OUT/cost/signed.txt SIGNED_PATH
    line=$(measure nginx "$nginx_worker" "http://$NGINX/anon")
    row "$line" "$OUT/cost/cpu.md"
    line=$(measure "hyper proxy" "$hyper_pid" "http://$HYPER_PROXY/anon")
    row "$line" "$OUT/cost/cpu.md"
    line=$(measure "stagegate anonymous" "$GW_PID" "http://$GW/anon")
    row "$line" "$OUT/cost/cpu.md"
    line=$(measure "stagegate signed+MAPPING" "$GW_PID" "http://$GW$SIGNED_PATH" "$ROOT/benches/load/signed.lua")
    row "$line" "$OUT/cost/cpu.md"
done
cleanup

[ -n "${CALLGRIND:-}" ] || exit 0
command -v valgrind >/dev/null || { log "CALLGRIND=1 needs valgrind (apt-get install valgrind)"; exit 1; }

# count NAME PID URL [LUA]: instructions per request of PID (running under callgrind), counted
# while wrk -c8 runs SECONDS_PER seconds after a 2 s warm-up. Valgrind runs the code some 50×
# slower, so the absolute rate means nothing; the count per request is what to read (it
# includes the idle loop's share, which is small at these rates).
count() {
    local name=$1 pid=$2 url=$3 lua=${4:-} args=() n ir f
    [ -n "$lua" ] && args=(-s "$lua")
    SIGNED_FILE=${SIGNED_FILE:-}.warm taskset -c "$CLIENT_CPU" wrk -t1 -c8 -d2s "${args[@]}" "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    taskset -c "$CLIENT_CPU" wrk -t1 -c8 -d"${SECONDS_PER}s" "${args[@]}" "$url" >"$OUT/cost/wrk.txt"
    callgrind_control -d "$name" "$pid" >/dev/null 2>&1
    n=$(awk '/requests in/ {print $1}' "$OUT/cost/wrk.txt")
    f=$(ls -t "$OUT/cost/callgrind.$pid".* | head -1)
    ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '| %s | %d | %d |\n' "$name" "$n" $((ir / n))
}

under_callgrind() { # COMMAND...: started in the background on SERVER_CPU; sets VG_PID
    taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$OUT/cost/callgrind.%p" \
        "$@" >>"$OUT/cost/valgrind.log" 2>&1 &
    VG_PID=$!
    PIDS+=("$VG_PID")
}

row "| server (under callgrind, wrk -c8) | requests counted | instructions/request |" "$OUT/cost/callgrind.md"
row "|---|---:|---:|" "$OUT/cost/callgrind.md"
start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
# One nginx process (no master), so that the worker is the process valgrind runs.
sed 's/^daemon off;/daemon off;\nmaster_process off;/' "$OUT/nginx/nginx.conf" >"$OUT/cost/nginx.conf"
under_callgrind nginx -p "$OUT/nginx" -c "$OUT/cost/nginx.conf"
wait_port "$NGINX" 3000
line=$(count nginx "$VG_PID" "http://$NGINX/anon")
row "$line" "$OUT/cost/callgrind.md"
under_callgrind "$BIN/hyper_proxy" "$HYPER_PROXY" "$ORIGIN_A"
wait_port "$HYPER_PROXY" 3000
line=$(count "hyper proxy" "$VG_PID" "http://$HYPER_PROXY/anon")
row "$line" "$OUT/cost/callgrind.md"
# The gateway through start_gateway (set-up, admin API), valgrind in front of the binary.
printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cost/callgrind.%%p %s "$@"\n' \
    "$OUT" "$GATEWAY_BIN" >"$OUT/cost/gateway-under-callgrind"
chmod +x "$OUT/cost/gateway-under-callgrind"
GATEWAY_BIN=$OUT/cost/gateway-under-callgrind start_gateway "$OUT/cost/gw-callgrind"
setup_apis
sign $(((SECONDS_PER + 2) * 20000)) "$OUT/cost/signed.txt"
export SIGNED_FILE=$OUT/cost/signed.txt SIGNED_PATH
line=$(count "stagegate anonymous" "$GW_PID" "http://$GW/anon")
row "$line" "$OUT/cost/callgrind.md"
line=$(count "stagegate signed+MAPPING" "$GW_PID" "http://$GW$SIGNED_PATH" "$ROOT/benches/load/signed.lua")
row "$line" "$OUT/cost/callgrind.md"
