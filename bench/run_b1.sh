#!/usr/bin/env bash
# Benchmark B1 (specs/performance.md), both systems in one invocation:
# moonline (bench/text_turns.lua) for N = 100, 1000, 10000 and LiveKit Agents
# for Node (../shared/peers/livekit-node/run.sh, which installs
# @livekit/agents from the npm registry into a cache the first time) for
# N = 100, 1000; both variants (tool, --task). Prints the machine and one
# markdown table per variant with the ratios.
#
#   bench/run_b1.sh [--warm]          (from the checkout, after scripts/build)
#
# Environment: MOONLINE (default build/moonline), PEER (default
# ../shared/peers/livekit-node/run.sh), B1_MOONLINE_N / B1_PEER_N (space-separated
# sizes), B1_RESULTS (keep the raw JSON lines in this file).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
MOONLINE=${MOONLINE:-build/moonline}
PEER=${PEER:-$ROOT/../shared/peers/livekit-node/run.sh}
ML_SIZES=${B1_MOONLINE_N:-"100 1000 10000"}
PEER_SIZES=${B1_PEER_N:-"100 1000"}
EXTRA=("$@")

results=${B1_RESULTS:-$(mktemp)}
: >"$results"

for variant in "" --task; do
  for n in $ML_SIZES; do
    echo "moonline N=$n ${variant:-tool} ..." >&2
    echo "moonline $("$MOONLINE" run bench/text_turns.lua "$n" $variant "${EXTRA[@]}" --json)" >>"$results"
  done
  if [ -x "$PEER" ]; then
    for n in $PEER_SIZES; do
      echo "LiveKit N=$n ${variant:-tool} ..." >&2
      # the peer exits non-zero when a turn failed; its JSON still says so
      line=$("$PEER" "$n" $variant "${EXTRA[@]}" --json | tail -n 1) || true
      case "$line" in
        "{"*) echo "livekit $line" >>"$results" ;;
        *) echo "LiveKit N=$n ${variant:-tool}: no result" >&2 ;;
      esac
    done
  else
    echo "peer not found at $PEER: moonline only" >&2
  fi
done

cache="${MOONLINE_PEER_CACHE:-${TMPDIR:-/tmp}/moonline-peer-livekit-node}"
agents_version=$(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$cache/node_modules/@livekit/agents/package.json" 2>/dev/null \
  | head -n 1)
echo "Machine: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
  "$(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo);" \
  "$("$MOONLINE" --version);" \
  "LiveKit: @livekit/agents ${agents_version:-?} on Node $(node --version 2>/dev/null || echo '?')." \
  "${EXTRA[*]:+Flags: ${EXTRA[*]}.}"
echo
"$MOONLINE" run bench/b1_table.lua "$results"
[ -n "${B1_RESULTS:-}" ] || rm -f "$results"
