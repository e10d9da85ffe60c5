#!/usr/bin/env bash
# Benchmark B2 (specs/performance.md): sipp calls the engine over SIP/UDP on
# loopback, G.711 RTP both ways; the engine (bench/b2_engine.lua) answers,
# sends a tone, counts the caller's audio and hangs up after a hold time.
#
#   bench/b2_calls.sh [STEP...]           (from the checkout, after cmake --build build)
#
# A STEP is CONCURRENCY/RATE[/SECONDS]:
#   C/R     sipp places C calls at R calls/s; each is held C/R + B2_QUIET s
#           (default 10) after its answer, so all C are up together for
#           ~B2_QUIET s with no signalling: the RTP-only window. Figures: the
#           set-up rate achieved while ramping up to C, the concurrency held,
#           CPU per RTP packet in the quiet window, the memory per call at
#           the peak, the send lag and the loss.
#   C/R/T   churn: R calls/s for T s, each held C/R s (C up at a time, R
#           set-ups and R hang-ups per second): the sustained rate and the CPU
#           per call with RTP included.
# Default steps: B2_STEPS, else "50/50 200/100 500/100 1000/200 1500/300
# 1000/200/30 40/800/15" (about 4 minutes). The run stops at the first step
# with a failed call.
#
# Environment: MOONLINE (default build/moonline); B2_MEDIA=stream (default:
# sipp's rtp_stream looping the A-law audio of /usr/share/sip-tester/g711a.pcap
# at 20 ms per packet from one UDP socket per call) or pcap (play_pcap_audio of
# that capture, replayed every 7.1 s: sipp 3.6.1 sends it from one raw socket
# per call, and Linux hands every UDP datagram to the raw sockets' address to
# each of them, so the engine's own sends cost O(calls) in the kernel: see the
# README); B2_PORT (default 25060: engine SIP; sipp uses +2 and +4..);
# B2_QUIET (10); B2_KEEP=dir (keep the logs there); B2_RESULTS=file (append
# the raw key=value lines); B2_ENGINE_WRAP (a prefix that execs the engine,
# e.g. "chrt -f 10": real-time priority, to tell the engine's own send lag from
# the time it waits for a CPU that sipp and the rest of the box hold).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=lib/calls.sh
. bench/lib/calls.sh
TAG=b2
MEDIA=${B2_MEDIA:-stream}
PORT=${B2_PORT:-25060}
QUIET=${B2_QUIET:-10}
[ "${QUIET%.*}" -ge 5 ] || echo "b2: B2_QUIET=$QUIET: under 5 s the quiet window has too few samples" >&2
if [ $# -gt 0 ]; then STEPS="$*"; else STEPS=${B2_STEPS:-"50/50 200/100 500/100 1000/200 1500/300 1000/200/30 40/800/15"}; fi
calls_check

results=${B2_RESULTS:-$work/results}
sampler_pid=""
cleanup() { calls_cleanup "${B2_KEEP:-}" "$sampler_pid" "$sipp_pid" "$engine_pid"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# the scenario
if [ "$MEDIA" = stream ]; then
  calls_rtp_stream_scenario "$work/b2_call.xml"
else
  cp bench/sipp/b2_call.xml "$work/b2_call.xml"
fi

ticks=$(getconf CLK_TCK)
# cpu_ms PID -> utime + stime of the process (all its threads, dead ones too), ms
cpu_ms() { awk -v t="$ticks" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / t) }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# drops counted by the kernel on the engine's UDP sockets (those open now)
engine_drops() {
  local inodes
  inodes=$(find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | tr '\n' ' ')
  awk -v list="$inodes" 'BEGIN { n = split(list, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
    NR > 1 && ($10 in want) { d += $13 } END { print d + 0 }' /proc/net/udp
}

# sampler: every second, the wall time, the machine's CPU counters (/proc/stat
# cpu line: user nice system idle iowait irq softirq), the engine's and sipp's
# CPU ms and RSS KB, the drops on the engine's sockets
sampler() {
  local out=$1
  while :; do
    local s
    s=$(head -n 1 /proc/stat)
    echo "sample wall=$(date +%s.%N) cpu=${s#cpu  } engine_cpu_ms=$(cpu_ms "$engine_pid") engine_rss_kb=$(rss_kb "$engine_pid")" \
      "sipp_cpu_ms=$( [ -n "$sipp_pid" ] && cpu_ms "$sipp_pid" || echo 0) sipp_rss_kb=$( [ -n "$sipp_pid" ] && rss_kb "$sipp_pid" || echo 0)" \
      "engine_drops=$(engine_drops "$engine_pid") sipp_threads=$(find "/proc/${sipp_pid:-0}/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" >>"$out"
    sleep 1
  done
}

rows=()
broke=""
step_no=0
for step in $STEPS; do
  IFS=/ read -r C R T <<<"$step"
  step_no=$((step_no + 1))
  dir="$work/step$step_no"
  mkdir -p "$dir"
  if [ -n "${T:-}" ]; then
    hold=$(awk -v c="$C" -v r="$R" 'BEGIN { printf "%.2f", c / r }')
    calls=$((R * T))
    limit=$((C + C / 2 + 20))
  else
    hold=$(awk -v c="$C" -v r="$R" -v q="$QUIET" 'BEGIN { printf "%.2f", c / r + q }')
    calls=$C
    limit=$C
  fi
  calls_bounds "$calls" "$R" "$hold"
  echo "b2: step $step: $calls calls at $R/s, held ${hold}s, media $MEDIA (up to ${sipp_timeout}s)" >&2

  # shellcheck disable=SC2086 # B2_ENGINE_WRAP is a command prefix that execs (chrt -f 10, taskset -c 1)
  ${B2_ENGINE_WRAP:-} "$MOONLINE" run bench/b2_engine.lua "$HOST" "$PORT" "$hold" "$engine_max" >"$dir/engine.out" 2>"$dir/engine.err" &
  engine_pid=$!
  calls_engine_wait "$dir"
  sleep 1 # a status line before the first call: the CPU and RSS baseline

  calls_sipp "$dir" "$work/b2_call.xml" "$R" "$limit" "$calls" "$sipp_timeout" "$hold" \
    -fd 1 -trace_screen -screen_file "$dir/screen.log"
  sampler "$dir/samples" &
  sampler_pid=$!
  calls_sipp_wait "$sipp_timeout"
  sleep 1.5 # the last status lines
  kill -TERM "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
  calls_engine_stop

  # ---- figures ------------------------------------------------------------------
  summary=$(grep "^b2 summary" "$dir/engine.out" | tail -n 1 || true)
  [ -n "$summary" ] || { echo "b2: step $step: no engine summary ($(tail -n 3 "$dir/engine.err"))" >&2; summary="b2 summary answered=0"; }
  stat_head=$(head -n 1 "$dir/stat.csv" 2>/dev/null || true)
  last_stat=$(tail -n 1 "$dir/stat.csv" 2>/dev/null || true)
  row=$(
    {
      echo "step C=$C R=$R T=${T:-0} hold=$hold media=$MEDIA"
      echo "$summary"
      grep "^b2 status" "$dir/engine.out"
      cat "$dir/samples"
      echo "sipphead $stat_head"
      echo "sippstat $last_stat"
    } | awk "$CALLS_AWK_KV"'
      function kn(line, key) { return kv(line, key) + 0 }
      /^step / { C = kn($0, "C"); R = kn($0, "R"); T = kn($0, "T"); hold = kn($0, "hold"); media = kv($0, "media") }
      /^b2 summary/ { S = $0 }
      /^b2 status/ {
        n++; st_t[n] = kn($0, "t"); st_wall[n] = kn($0, "wall"); st_ans[n] = kn($0, "answered"); st_end[n] = kn($0, "ended")
        st_act[n] = kn($0, "active"); st_pk[n] = kn($0, "rtp_tx") + kn($0, "rtp_rx")
        st_cpu[n] = kn($0, "cpu_user_us") + kn($0, "cpu_sys_us"); st_sys[n] = kn($0, "cpu_sys_us"); st_rss[n] = kn($0, "rss_kb")
      }
      /^sample / {
        m++; sa_wall[m] = kn($0, "wall"); split(substr($0, index($0, "cpu=") + 4), c, " "); for (k = 1; k <= 8; k++) c[k] += 0
        sa_busy[m] = c[1] + c[2] + c[3] + c[6] + c[7] + c[8]; sa_tot[m] = sa_busy[m] + c[4] + c[5]
        sa_eng[m] = kn($0, "engine_cpu_ms"); sa_sipp[m] = kn($0, "sipp_cpu_ms"); sa_drops[m] = kn($0, "engine_drops")
        sa_srss[m] = kn($0, "sipp_rss_kb"); sa_thr[m] = kn($0, "sipp_threads")
        if (sa_thr[m] > maxthr) maxthr = sa_thr[m]
        if (sa_drops[m] > maxdrops) maxdrops = sa_drops[m]
      }
      /^sipphead / { nh = split(substr($0, 10), h, ";"); for (i = 1; i <= nh; i++) col[h[i]] = i }
      /^sippstat / {
        split(substr($0, 10), f, ";")
        created = f[col["TotalCallCreated"]] + 0; ok = f[col["SuccessfulCall(C)"]] + 0; failed = f[col["FailedCall(C)"]] + 0
      }
      function wall_idx(w,   i) { for (i = 1; i <= m; i++) if (sa_wall[i] >= w) return i; return m }
      END {
        maxdrops += 0; maxthr += 0
        answered = kn(S, "answered"); maxact = kn(S, "max_active")
        t1 = kn(S, "t_first_answer"); t2 = kn(S, "t_last_answer"); th = kn(S, "t_first_hangup"); te = kn(S, "t_last_end")
        cps = (t2 > t1) ? (answered - 1) / (t2 - t1) : 0
        # the window: quiet (all calls up, no signalling) for C/R; for C/R/T the
        # plateau between the first hang-up and the last answer (churn at R/s)
        if (T > 0) { w1 = th + 1; w2 = t2 - 1 } else { w1 = t2 + 1.5; w2 = th - 1 }
        a = 0; b = 0
        for (i = 1; i <= n; i++) { if (!a && st_t[i] >= w1) a = i; if (st_t[i] <= w2) b = i }
        us_pkt = "n/a"; cpu_pct = "n/a"; sys_share = "n/a"; pps = 0; mach = "n/a"; sipp_pct = "n/a"
        if (a && b > a) {
          dt = st_t[b] - st_t[a]; dpk = st_pk[b] - st_pk[a]; dcpu = st_cpu[b] - st_cpu[a]
          pps = dpk / dt
          if (dpk > 0) us_pkt = sprintf("%.2f", dcpu / dpk)
          cpu_pct = sprintf("%.0f", dcpu / dt / 1e4)
          sys_share = (dcpu > 0) ? sprintf("%.0f", 100 * (st_sys[b] - st_sys[a]) / dcpu) : "n/a"
          i = wall_idx(st_wall[a]); j = wall_idx(st_wall[b])
          if (j > i) {
            dw = sa_wall[j] - sa_wall[i]
            busy = 100 * (sa_busy[j] - sa_busy[i]) / (sa_tot[j] - sa_tot[i])
            mach = sprintf("%.0f", busy)
            sipp_pct = sprintf("%.0f", (sa_sipp[j] - sa_sipp[i]) / dw / 10)
          }
        }
        # CPU per call (churn steps): the CPU in the window over the calls set up in it,
        # their RTP included
        per_call = "-"
        if (T > 0 && a && b > a && st_ans[b] > st_ans[a]) per_call = sprintf("%.0f", dcpu / (st_ans[b] - st_ans[a]))
        kb_call = (kn(S, "peak_tick_active") > 0) ? sprintf("%.1f", (kn(S, "rss_at_peak_kb") - kn(S, "rss_base_kb")) / kn(S, "peak_tick_active")) : "n/a"
        tx_loss = (kn(S, "tx_expected") > 0) ? sprintf("%.2f", 100 * (1 - kn(S, "tx") / kn(S, "tx_expected"))) : "n/a"
        ptime = (media == "pcap") ? 0.030 : 0.020
        rx_exp = kn(S, "media_s") / ptime
        rx_loss = (rx_exp > 0 && hold >= 2) ? sprintf("%.2f", 100 * (1 - kn(S, "rx") / rx_exp)) : "n/a"
        pkt_lag = (kv(S, "lag_pkt_p99_below_ms") != "") ? sprintf("< %s (%.2f %%)", kv(S, "lag_pkt_p99_below_ms"), kn(S, "lag_pkt_over_5ms_pct")) : "n/a"
        printf "| %s | %s / %s | %.0f | %s | %.0f | %s | %s (%s %%) | %s | %s / %s (%s) | %s | %s / %s (%s) | %s | %s (%s) | %s |\n", \
          (T > 0 ? C "/" R " for " T " s" : C "/" R), ok, failed, cps, maxact, pps, cpu_pct, us_pkt, sys_share, per_call, \
          kv(S, "lag_p99_ms"), kv(S, "lag_max_ms"), kn(S, "lag_over_5ms"), pkt_lag, tx_loss, rx_loss, maxdrops, kb_call, \
          sipp_pct, maxthr, mach
      }'
  )
  rows+=("$row")
  {
    echo "step $step media=$MEDIA sipp_rc=$sipp_rc"
    echo "$summary"
    echo "sipp $last_stat"
  } >>"$results"
  echo "$row" >&2
  failed=$(awk -F'|' '{ gsub(/ /, "", $3); split($3, a, "/"); print a[2] + 0 }' <<<"$row")
  if [ "${failed:-0}" -gt 0 ] || [ "$sipp_rc" -ne 0 ]; then
    broke="step $step: sipp exit $sipp_rc, $failed failed calls (logs: B2_KEEP=dir)"
    echo "b2: $broke; stopping here" >&2
    break
  fi
done

calls_machine "media: $MEDIA."
echo
echo "| step: C calls / R per s | sipp calls ok / failed | set-up calls/s | max concurrent | RTP pkt/s (window) | engine CPU % | CPU µs / RTP pkt (kernel %) | CPU µs / call (churn) | send lag, per-call max: p99 / max ms (calls ≥ 5 ms) | send lag per packet: p99 (≥ 5 ms) | loss % tx / rx (socket drops) | KB / call (RSS) | sipp CPU % (threads) | machine busy % |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -n "$broke" ]; then
  echo
  echo "Stopped at $broke."
fi
