#!/usr/bin/env bash
# Rooms benchmark: what rooms cost with real calls. sipp on the same machine
# places C calls (SIP/UDP on loopback, G.711 RTP both ways: the scenario of
# bench/b2_calls.sh, sipp's rtp_stream looping the A-law audio of g711a.pcap);
# the engine (bench/rooms_engine.lua) puts the callers into rooms:
#
#   none   no room, a tone into each call's RTP: B2, the baseline
#   2      rooms of 2 callers: one-to-one bridges
#   5      rooms of 5 callers: small conferences (each hears the other 4)
#   hold   one caller per room with a looped WAV track: a caller on hold
#
#   bench/rooms.sh [C/R ...]            (from the checkout, after cmake --build build)
#
# Each step C/R: C calls at R calls/s, each held C/R + ROOMS_QUIET s (default
# 10), so all C are up together for ~ROOMS_QUIET s without signalling: the
# window where the engine measures its CPU (user + system), the RTP packets
# and the rooms' member-ticks. Per run: CPU µs per member-tick and per RTP
# packet, the room overhead per call against the `none` run of the same step
# (extra CPU µs per call per 20 ms, and the ratio of the CPU), the rooms'
# worst tick lag (room:stats().max_tick_lag_ms), the per-packet send lag p99
# (rtp_stats().lag_hist), KB per call (RSS at the peak minus before the first
# call). Every step runs every mode, one after the other; ROOMS_REPEAT=n
# (default 1) does it n times and prints medians.
#
# Environment: MOONLINE (default build/moonline), ROOMS_MODES (default
# "none 2 5 hold"), ROOMS_STEPS (default "200/100 500/100 1000/200"),
# ROOMS_REPEAT, ROOMS_QUIET, ROOMS_PORT (default 25160: engine SIP; sipp
# uses +2 and +4..), ROOMS_KEEP=dir (keep the logs), ROOMS_RESULTS=file
# (append the raw lines), ROOMS_PERF=1 (perf record -g the engine of each
# run into its log dir), ROOMS_TABLE=file (no runs: the table of the raw
# lines of an earlier ROOMS_RESULTS file).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=lib/calls.sh
. bench/lib/calls.sh
TAG=rooms
PORT=${ROOMS_PORT:-25160}
QUIET=${ROOMS_QUIET:-10}
MODES=${ROOMS_MODES:-"none 2 5 hold"}
REPEAT=${ROOMS_REPEAT:-1}
if [ $# -gt 0 ]; then STEPS="$*"; else STEPS=${ROOMS_STEPS:-"200/100 500/100 1000/200"}; fi
calls_check

results=${ROOMS_RESULTS:-$work/results}
perf_pid=""
cleanup() {
  [ -z "$perf_pid" ] || kill -TERM "$perf_pid" 2>/dev/null || true # no KILL: perf writes its data
  calls_cleanup "${ROOMS_KEEP:-}" "$sipp_pid" "$engine_pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# B2's scenario with sipp's rtp_stream
calls_rtp_stream_scenario "$work/call.xml"

# one run: C calls at R/s into the engine in MODE; appends a `run ...` line to $results
run_one() {
  local C=$1 R=$2 mode=$3 dir=$4
  mkdir -p "$dir"
  local hold gen sipp_timeout engine_max
  hold=$(awk -v c="$C" -v r="$R" -v q="$QUIET" 'BEGIN { printf "%.2f", c / r + q }')
  calls_bounds "$C" "$R" "$hold"
  echo "rooms: $C calls at $R/s, mode $mode, held ${hold}s" >&2
  "$MOONLINE" run bench/rooms_engine.lua "$HOST" "$PORT" "$hold" "$engine_max" "$mode" "$C" "$QUIET" \
    "$work/hold.wav" >"$dir/engine.out" 2>"$dir/engine.err" &
  engine_pid=$!
  calls_engine_wait "$dir"
  if [ -n "${ROOMS_PERF:-}" ]; then
    perf record -g -o "$dir/perf.data" -p "$engine_pid" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  calls_sipp "$dir" "$work/call.xml" "$R" "$C" "$C" "$sipp_timeout" "$hold"
  calls_sipp_wait "$sipp_timeout"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
  fi
  calls_engine_stop
  local head last window summary
  head=$(head -n 1 "$dir/stat.csv" 2>/dev/null || true)
  last=$(tail -n 1 "$dir/stat.csv" 2>/dev/null || true)
  window=$(grep "^rooms window" "$dir/engine.out" | tail -n 1 || true)
  summary=$(grep "^rooms summary" "$dir/engine.out" | tail -n 1 || true)
  [ -n "$window" ] || echo "rooms: $C/$R $mode: no window ($(tail -n 3 "$dir/engine.err"))" >&2
  # sipp's counters by column name
  local okfail
  okfail=$(awk -F';' -v h="$head" -v l="$last" 'BEGIN {
      n = split(h, hh, ";"); split(l, ll, ";"); for (i = 1; i <= n; i++) col[hh[i]] = ll[i]
      printf "sipp_ok=%d sipp_failed=%d", col["SuccessfulCall(C)"], col["FailedCall(C)"] }')
  echo "run C=$C R=$R mode=$mode sipp_rc=$sipp_rc $okfail ${window#rooms window } ${summary#rooms summary }" >>"$results"
  tail -n 1 "$results" >&2
}

if [ -n "${ROOMS_TABLE:-}" ]; then
  results=$ROOMS_TABLE STEPS="" REPEAT=$(awk '/^run / && / mode=none / { n[$2 " " $3]++ } END { for (k in n) m = n[k] > m ? n[k] : m; print m + 0 }' "$results")
fi
for ((rep = 1; rep <= REPEAT && ${#STEPS} > 0; rep++)); do
  for step in $STEPS; do
    IFS=/ read -r C R <<<"$step"
    for mode in $MODES; do
      run_one "$C" "$R" "$mode" "$work/r$rep-$C-$mode"
    done
  done
done

calls_machine "$REPEAT run(s) per row (medians)."
echo
echo "| calls (at R/s) | rooms | sipp ok / failed | engine CPU % | CPU µs / member-tick | CPU µs / RTP pkt | room overhead: µs / call / 20 ms (CPU × none) | room tick lag max ms (p50 of rooms) | send lag per packet: p99 (≥ 5 ms) | KB / call (RSS) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
grep "^run " "$results" | awk "$CALLS_AWK_KV"'
  function med(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n ? a[int((n + 1) / 2)] + 0 : 0
  }
  function add(key, v) { vals[key] = (key in vals) ? vals[key] " " v : v }
  {
    C = kv($0, "C"); R = kv($0, "R"); mode = kv($0, "mode"); g = C "/" R "|" mode
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    runs[g]++
    ok[g] += kv($0, "sipp_ok"); failed[g] += kv($0, "sipp_failed") + kv($0, "join_failed")
    secs = kv($0, "seconds") + 0; cpu = kv($0, "cpu_us") + 0; pk = kv($0, "pkts") + 0; mt = kv($0, "member_ticks") + 0
    act = kv($0, "active") + 0
    if (secs > 0) { add(g "|pct", cpu / secs / 1e4); add(g "|rate", cpu / secs); if (act) add(g "|rate_call", cpu / secs / act) }
    if (pk > 0) add(g "|pkt", cpu / pk)
    if (mt > 0) add(g "|mt", cpu / mt)
    add(g "|lag", kv($0, "room_tick_lag_max_ms")); add(g "|lag50", kv($0, "room_tick_lag_p50_ms"))
    add(g "|over5", kv($0, "lag_pkt_over_5ms_pct"))
    b = kv($0, "lag_pkt_p99_below_ms"); b = (b == "inf") ? "≥ 20" : "< " b
    p99[g] = p99[g] (p99[g] == "" ? "" : ", ") b
    pa = kv($0, "peak_active") + 0
    if (pa > 0) add(g "|kb", (kv($0, "rss_at_peak_kb") - kv($0, "rss_base_kb")) / pa)
    rooms[g] = kv($0, "rooms_live")
  }
  END {
    for (i = 1; i <= ng; i++) {
      g = order[i]; split(g, p, "|"); step = p[1]; mode = p[2]
      base = step "|none"
      over = "-"
      if (mode != "none" && (base "|rate_call") in vals && (g "|rate_call") in vals)
        over = sprintf("%.1f (%.2f×)", (med(g "|rate_call") - med(base "|rate_call")) / 50, med(g "|rate") / med(base "|rate"))
      split(step, cr, "/")
      printf "| %s (%s/s), %s | %s | %d / %d | %.0f | %s | %.2f | %s | %s (%s) | %s ms (%.2f %%) | %.1f |\n",
        cr[1], cr[2], (mode == "none" ? "no room (B2)" : mode == "hold" ? "on hold (1 + a WAV track)" : "rooms of " mode),
        (mode == "none" ? "-" : rooms[g]), ok[g] / runs[g], failed[g] / runs[g], med(g "|pct"),
        ((g "|mt") in vals ? sprintf("%.2f", med(g "|mt")) : "-"), med(g "|pkt"), over,
        (mode == "none" ? "-" : sprintf("%.1f", med(g "|lag"))), (mode == "none" ? "-" : sprintf("%.1f", med(g "|lag50"))),
        p99[g], med(g "|over5"), med(g "|kb")
    }
  }'
