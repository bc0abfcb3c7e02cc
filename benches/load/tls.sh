#!/usr/bin/env bash
# The HTTPS rows: the anonymous API through nginx and through the example gateway, plain and
# over TLS with one certificate (ECDSA P-256, made here with openssl) and the same TLS settings
# (TLS 1.3 as wrk negotiates it, X25519, session tickets and a session cache), measured as
#   - keep-alive throughput (requests/s on long-lived connections: the record layer's cost);
#   - new connections per second (wrk with `Connection: close`: every request a new TCP
#     connection and a full handshake, the handshake's cost);
#   - resumed handshakes per second (`openssl s_time -reuse`, one connection at a time, next to
#     `-new`), which shows that both resume sessions.
# See README.md here.
#
#   benches/load/tls.sh                              # ROUNDS=3 DURATION=10s CONNECTIONS=32
#   ROUNDS=1 DURATION=2s WARMUP=1s benches/load/tls.sh   # a quick check that it works
source "$(dirname "$0")/lib.sh"

GW_TLS=${GW_TLS:-127.0.0.1:18443}
ADMIN_TLS=${ADMIN_TLS:-127.0.0.1:19443}
export NGINX_TLS=${NGINX_TLS:-127.0.0.1:18444}
STIME_SECONDS=${STIME_SECONDS:-5}

ensure_tools
command -v openssl >/dev/null || { log "openssl is needed (the certificate, s_time)"; exit 1; }
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building (release): the gateway and the origin only"
    (cd "$ROOT" && cargo build --release --example gateway --example origin)
fi
rm -rf "$OUT/tls" && mkdir -p "$OUT/tls"

export TLS_CERT=$OUT/tls/cert.pem TLS_KEY=$OUT/tls/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_nginx
# the plain gateway, then the HTTPS one (same build, same core, one idles while the other runs)
TLS_CERT='' start_gateway "$OUT/tls/gw-plain"
PLAIN_PID=$GW_PID
setup_apis
GW=$GW_TLS ADMIN=$ADMIN_TLS start_gateway "$OUT/tls/gw-tls"
TLS_PID=$GW_PID
GW=$GW_TLS ADMIN=$ADMIN_TLS GW_SCHEME=https setup_apis
[ "$(curl -sk "https://$NGINX_TLS/anon")" = origin-a ] || { log "nginx does not proxy over TLS"; exit 1; }

# What each negotiates with an OpenSSL client (wrk links OpenSSL too).
negotiated() { # ADDR
    openssl s_client -connect "$1" -servername localhost -brief </dev/null 2>&1 |
        grep -E 'Protocol version|Ciphersuite|Peer signature type|Server Temp Key|Negotiated TLS1.3 group' |
        sed 's/^/    /'
}
{
    machine_facts
    echo "certificate: ECDSA P-256, self-signed, one for both"
    echo "nginx $NGINX_TLS:"; negotiated "$NGINX_TLS"
    echo "stagegate $GW_TLS:"; negotiated "$GW_TLS"
    echo "rounds: ${ROUNDS:-3}, each target once per round, order rotated"
} | tee "$OUT/tls/facts.txt"

ROUNDS=${ROUNDS:-3}
targets=(nginx stagegate nginx-tls stagegate-tls nginx-new stagegate-new)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((t = 0; t < ${#targets[@]}; t++)); do
        target=${targets[(t + r - 1) % ${#targets[@]}]}
        log "round $r: $target"
        case $target in
        nginx) RESULTS=$OUT/tls/plain-$r.tsv wrk_run nginx "http://$NGINX/anon" ;;
        stagegate) RESULTS=$OUT/tls/plain-$r.tsv wrk_run "stagegate anonymous" "http://$GW/anon" ;;
        nginx-tls) RESULTS=$OUT/tls/https-$r.tsv wrk_run nginx "https://$NGINX_TLS/anon" ;;
        stagegate-tls) RESULTS=$OUT/tls/https-$r.tsv wrk_run "stagegate anonymous" "https://$GW_TLS/anon" ;;
        nginx-new) RESULTS=$OUT/tls/new-$r.tsv WRK_HEADER='Connection: close' \
            wrk_run nginx "https://$NGINX_TLS/anon" ;;
        stagegate-new) RESULTS=$OUT/tls/new-$r.tsv WRK_HEADER='Connection: close' \
            wrk_run "stagegate anonymous" "https://$GW_TLS/anon" ;;
        esac
    done
done

# s_time: one connection at a time (its own client), full and resumed handshakes per second.
stime() { # ADDR -new|-reuse
    taskset -c "$CLIENT_CPU" openssl s_time -connect "$1" "$2" -time "$STIME_SECONDS" 2>/dev/null |
        awk '$2 == "connections" && $3 == "in" && $5 == "real" && $4 > 0 { printf "%.0f", $1 / $4 }'
}
{
    echo "## plain HTTP, keep-alive (median of $ROUNDS rounds; ratios within each round)"
    print_summary "$OUT"/tls/plain-*.tsv
    echo
    echo "## HTTPS, keep-alive"
    print_summary "$OUT"/tls/https-*.tsv
    echo
    echo "## HTTPS, a new connection per request (Connection: close): requests/s = new connections/s"
    print_summary "$OUT"/tls/new-*.tsv
    echo
    echo "## handshakes per second, one at a time (openssl s_time, ${STIME_SECONDS}s each)"
    echo "| server | full (-new) | resumed (-reuse) |"
    echo "|---|---:|---:|"
    echo "| nginx | $(stime "$NGINX_TLS" -new) | $(stime "$NGINX_TLS" -reuse) |"
    echo "| stagegate | $(stime "$GW_TLS" -new) | $(stime "$GW_TLS" -reuse) |"
} | tee "$OUT/tls/table.md"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/tls/facts.txt"
