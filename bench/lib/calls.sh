# shellcheck shell=bash
# What bench/b2_calls.sh and bench/rooms.sh share: sipp on the same machine
# calls an engine script (`moonline run bench/..._engine.lua`) over SIP/UDP on
# loopback with bench/sipp/b2_call.xml, G.711 RTP both ways.
#
# Sourced from the checkout's root (the scripts cd there first). The script
# sets TAG (the prefix of its messages and of the engine's `TAG listening`
# line) and PORT (the engine's SIP port; sipp uses +2 and +4..), calls
# calls_check, then per run: calls_bounds, starts the engine, calls_engine_wait,
# calls_sipp, calls_sipp_wait, calls_engine_stop. Its EXIT trap calls
# calls_cleanup.
#
# Environment: MOONLINE (default build/moonline), SIPP (default sipp).
MOONLINE=${MOONLINE:-build/moonline}
case "$MOONLINE" in /*) ;; *) MOONLINE="$PWD/$MOONLINE" ;; esac
HOST=127.0.0.1
PCAP=/usr/share/sip-tester/g711a.pcap
SIPP=${SIPP:-sipp}
engine_pid="" sipp_pid="" sipp_rc=0 work=""

# awk: kv(LINE, KEY) -> the value of KEY=value in a line of such pairs ("" if none)
# shellcheck disable=SC2034 # used by the scripts that source this file
CALLS_AWK_KV='function kv(line, key,   m) { if (match(line, "(^| )" key "=[^ ]*")) { m = substr(line, RSTART, RLENGTH); sub(/^ /, "", m); sub(/^[^=]*=/, "", m); return m } return "" }'

# calls_check: sipp, the engine and the capture are there (else exit 2); makes
# the work dir $work
calls_check() {
  command -v "$SIPP" >/dev/null || { echo "$TAG: sipp not found (apt-get install sip-tester)" >&2; exit 2; }
  [ -x "$MOONLINE" ] || { echo "$TAG: $MOONLINE not built (cmake --build build -j2)" >&2; exit 2; }
  [ -r "$PCAP" ] || { echo "$TAG: $PCAP missing (sip-tester)" >&2; exit 2; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/$TAG.XXXXXX")
}

# calls_cleanup KEEP PID...: TERM the PIDs (empty ones skipped), KILL them
# 0.2 s later; the logs to KEEP (a dir, if not empty); $work removed
calls_cleanup() {
  local keep=$1 p
  shift
  for p in "$@"; do [ -z "$p" ] || kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "$@"; do [ -z "$p" ] || kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$keep" ]; then
    mkdir -p "$keep" && cp -r "$work"/. "$keep"/ && echo "$TAG: logs in $keep" >&2
  fi
  rm -rf "$work"
}

# calls_rtp_stream_scenario OUT: bench/sipp/b2_call.xml with sipp's rtp_stream
# instead of play_pcap_audio, looping the raw A-law audio of the capture
# ($work/g711a.alaw: 236 packets of 240 bytes after Ethernet + IPv4 + UDP + RTP
# headers: 24 + 16 + 54 + 12) at 20 ms per packet from one UDP socket per call
calls_rtp_stream_scenario() {
  local out=$1 i
  : >"$work/g711a.alaw"
  for ((i = 0; i < 236; i++)); do
    dd if="$PCAP" of="$work/g711a.alaw" iflag=skip_bytes,count_bytes skip=$((24 + i * 310 + 16 + 54)) count=240 \
      oflag=append conv=notrunc status=none
  done
  sed -e 's|m=audio \[media_port\]|m=audio [rtpstream_audio_port]|' \
    -e "s|<exec play_pcap_audio=\"$PCAP\"/>|<exec rtp_stream=\"$work/g711a.alaw,-1,8\"/>|" \
    -e 's|<recv request="BYE" timeout="7100" ontimeout="1"/>|<recv request="BYE"/>|' \
    bench/sipp/b2_call.xml >"$out"
  grep -q rtp_stream "$out" || { echo "$TAG: could not derive the rtp_stream scenario" >&2; exit 2; }
}

# calls_bounds CALLS R HOLD -> gen, sipp_timeout, engine_max (s): the engine and
# sipp stop on their own; the driver kills them past these
# shellcheck disable=SC2034 # the figures are the caller's
calls_bounds() {
  gen=$(awk -v n="$1" -v r="$2" 'BEGIN { printf "%d", n / r + 1 }')
  sipp_timeout=$(awk -v g="$gen" -v h="$3" 'BEGIN { printf "%d", g + h + 30 }')
  engine_max=$((sipp_timeout + 30))
}

# calls_engine_wait DIR: up to 5 s for the engine's `TAG listening` line in
# DIR/engine.out (else exit 1)
calls_engine_wait() {
  local dir=$1
  for _ in $(seq 50); do grep -q "^$TAG listening" "$dir/engine.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "^$TAG listening" "$dir/engine.out" || { echo "$TAG: the engine did not start: $(cat "$dir/engine.err")" >&2; exit 1; }
}

# calls_sipp DIR SCENARIO R LIMIT CALLS SIPP_TIMEOUT HOLD [SIPP_ARG...]: sipp in
# the background (sipp_pid), in DIR: CALLS calls at R/s, at most LIMIT at a time,
# DIR/stat.csv, DIR/errors.log, DIR/sipp.out
calls_sipp() {
  local dir=$1 scenario=$2 r=$3 limit=$4 calls=$5 timeout=$6 hold=$7
  shift 7
  (cd "$dir" && exec "$SIPP" -sf "$scenario" -i "$HOST" -p $((PORT + 2)) -mi "$HOST" -mp $((PORT + 4)) \
    -r "$r" -l "$limit" -m "$calls" -nostdin -timeout "${timeout}s" \
    -recv_timeout $(((${hold%.*} + 20) * 1000)) -rtp_threadtasks 50 \
    -trace_stat -stf "$dir/stat.csv" -trace_err -error_file "$dir/errors.log" "$@" "$HOST:$PORT" >"$dir/sipp.out" 2>&1) &
  sipp_pid=$!
}

# calls_sipp_wait SIPP_TIMEOUT: until sipp ends (killed 15 s past its timeout)
# -> sipp_rc
# shellcheck disable=SC2034 # sipp_rc is the caller's
calls_sipp_wait() {
  local deadline=$((SECONDS + $1 + 15))
  while kill -0 "$sipp_pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$TAG: sipp overran its timeout: killing it" >&2
      kill -TERM "$sipp_pid" 2>/dev/null || true
      sleep 2
      kill -KILL "$sipp_pid" 2>/dev/null || true
    fi
    sleep 0.5
  done
  sipp_rc=0
  wait "$sipp_pid" || sipp_rc=$?
  sipp_pid=""
}

# calls_engine_stop: SIGTERM (the engine prints its summary), KILL after 10 s
calls_engine_stop() {
  kill -TERM "$engine_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$engine_pid" 2>/dev/null || true
  wait "$engine_pid" 2>/dev/null || true
  engine_pid=""
}

# calls_machine TAIL: the `Machine: ...` line above the table, TAIL at its end
calls_machine() {
  echo "Machine: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
    "$(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r);" \
    "$("$MOONLINE" --version); $("$SIPP" -v 2>&1 | sed -n "s/^ *\(SIPp v[0-9.]*[0-9]\).*/\1/p" | head -n 1) on the same machine;" \
    "$1"
}
