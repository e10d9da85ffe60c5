-- Prints the B1 tables (one per variant, moonline and LiveKit side by side,
-- with the ratios) from the results bench/run_b1.sh collected: one line per
-- run, "moonline <json>" or "livekit <json>".
--
--   build/moonline run bench/b1_table.lua RESULTS_FILE
local cjson = require "cjson"

local file = ...
assert(file, "usage: moonline run bench/b1_table.lua RESULTS_FILE")

local runs = {} -- runs[variant][system][N] = result
local sizes = { moonline = {}, livekit = {} }
for line in io.lines(file) do
  local system, json = line:match("^(%a+) (.+)$")
  if system then
    local r = assert(cjson.decode(json))
    runs[r.variant] = runs[r.variant] or { moonline = {}, livekit = {} }
    runs[r.variant][system][r.N] = r
    sizes[system][r.N] = true
  end
end

local function sorted(set)
  local list = {}
  for n in pairs(set) do list[#list + 1] = n end
  table.sort(list)
  return list
end

local function thousands(n)
  local s = tostring(n)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function num(x, digits)
  if type(x) ~= "number" then return tostring(x or "–") end
  if digits then return ("%." .. digits .. "f"):format(x) end
  if x >= 1000 then return thousands(math.floor(x + 0.5)) end
  if x >= 100 then return ("%.0f"):format(x) end
  if x >= 10 then return ("%.1f"):format(x) end
  if x >= 1 then return ("%.2f"):format(x) end
  return ("%.3f"):format(x)
end

-- rows: label, value(r) -> number|string, ratio kind
-- ("higher": moonline/peer, "lower": peer/moonline, nil: no ratio)
local function per_cpu(r) return r.cpu_ms_per_turn > 0 and 1000 / r.cpu_ms_per_turn or nil end
local ROWS = {
  { "turns/s (wall, N concurrent)", function(r) return r.turns_per_s end, "higher" },
  { "turns per CPU-second", per_cpu, "higher" },
  { "CPU ms / turn", function(r) return r.cpu_ms_per_turn end, "lower" },
  { "CPU ms / session start", function(r) return r.cpu_ms_per_session_start end, "lower" },
  { "CPU ms / session close", function(r) return r.cpu_ms_per_session_close end, "lower" },
  { "RSS KB / idle session, after start", function(r) return r.per_session_started_rss_kb end, "lower" },
  { "RSS KB / session, after the turn", function(r) return r.per_session_after_turn_rss_kb end, "lower" },
  { "heap KB / session, after the turn", function(r) return r.per_session_after_turn_heap_kb end, "lower" },
  { "close all N: wall ms", function(r) return r.close_ms end, "lower" },
  { "turn latency p50 / p99 ms", function(r)
    return num(tonumber(r.turn_latency_ms_p50)) .. " / " .. num(tonumber(r.turn_latency_ms_p99))
  end },
  { "RSS MB: baseline → after close → released", function(r)
    return ("%s → %s → %s"):format(num(r.baseline_rss_mb), num(r.after_close_rss_mb), num(r.after_release_rss_mb))
  end },
  { "heap MB: baseline → after close → released", function(r)
    return ("%s → %s → %s"):format(num(r.baseline_heap_mb), num(r.after_close_heap_mb), num(r.after_release_heap_mb))
  end },
  { "turns ok / failed, close events", function(r)
    return ("%d / %d, %d"):format(r.turns_ok, r.turns_failed, r.close_events)
  end },
}

local VARIANT_TITLE = { tool = "tool", ["tool+AgentTask"] = "--task (tool runs an AgentTask)" }

for _, variant in ipairs({ "tool", "tool+AgentTask" }) do
  local v = runs[variant]
  if v then
    local ml, lk = sorted(sizes.moonline), sorted(sizes.livekit)
    -- the ratio at the largest N both systems ran
    local common
    for _, n in ipairs(ml) do
      if v.livekit[n] and v.moonline[n] then common = n end
    end
    local head = { "figure" }
    for _, n in ipairs(ml) do head[#head + 1] = "moonline N=" .. thousands(n) end
    for _, n in ipairs(lk) do head[#head + 1] = "LiveKit N=" .. thousands(n) end
    if common then head[#head + 1] = "moonline vs LiveKit (N=" .. thousands(common) .. ")" end
    print(("### B1, variant %s"):format(VARIANT_TITLE[variant] or variant))
    print()
    print("| " .. table.concat(head, " | ") .. " |")
    print("|" .. string.rep("---|", #head))
    for _, row in ipairs(ROWS) do
      local label, get, kind = row[1], row[2], row[3]
      local cells = { label }
      local function cell(r)
        if not r then return "–" end
        local x = get(r)
        return type(x) == "number" and num(x) or tostring(x)
      end
      for _, n in ipairs(ml) do cells[#cells + 1] = cell(v.moonline[n]) end
      for _, n in ipairs(lk) do cells[#cells + 1] = cell(v.livekit[n]) end
      if common then
        local a, b = get(v.moonline[common]), get(v.livekit[common])
        local ratio = ""
        if kind and type(a) == "number" and type(b) == "number" and a > 0 and b > 0 then
          local x = kind == "higher" and a / b or b / a
          ratio = (kind == "higher" and "%s× more" or "%s× less"):format(num(x, x < 10 and 1 or 0))
        end
        cells[#cells + 1] = ratio
      end
      print("| " .. table.concat(cells, " | ") .. " |")
    end
    print()
  end
end
