-- baresip (Debian's baresip 1.0) as a peer of the interop specs, headless, on
-- loopback and without a sound card: as the caller (spec/03-interop/
-- baresip_spec.lua) or as an auto-answering callee (baresip_callee_spec.lua).
--   local baresip = require "support.baresip"
--   local why = baresip.missing("baresip", "sox"); if why then pending(why) return end
--   local dir = baresip.tmpdir()                  -- removed when the scope ends
--   local code, out, err = baresip.call(dir, "say.wav", "sip:agent@127.0.0.1:5080", 5)
--   local proc, port = baresip.answer(dir, "say.wav", 5)   -- a callee on `port`
--   local wav = baresip.recording(dir, "-dec.wav")           -- what baresip heard
--
-- How baresip is driven (all in the temporary directory, given with -f):
--   config    sip_listen 127.0.0.1:<port> (0 for a caller), net_interface
--             127.0.0.1 (SDP and RTP on loopback), G.711 only; audio_source
--             `aufile,<wav>` (what baresip says: 8 kHz mono S16 WAV; at its
--             end baresip hangs up), audio_player `aubridge` (a player with no
--             device), and the `sndfile` filter, which dumps the decoded audio
--             of the call, what baresip heard, to <snd_path>/dump-<time>-dec.wav
--             (and what it sent to …-enc.wav). No stdio module: stdin is not a
--             terminal.
--   accounts  one local account, no registration; a callee's has
--             ;answermode=auto (baresip answers incoming calls at once)
--   command   baresip -f <dir> -s [-e "/dial <uri>"] -t <seconds>: a caller
--             dials at start (the menu module's command); both quit after
--             <seconds>. Its output is flushed only when it exits: read it then.
local task = require "moonline.task"
local process = require "support.process"
local net = require "support.net"
local audio = require "support.audio"
local uv = require "luv"

local _M = {}

_M.BARESIP, _M.SOX, _M.ESPEAK = audio.which("baresip"), audio.which("sox"), audio.which("espeak-ng")
local TOOLS = { baresip = _M.BARESIP, sox = _M.SOX, ["espeak-ng"] = _M.ESPEAK }

local CONFIG = [[
poll_method		epoll
sip_listen		LISTEN
sip_transports		udp
net_interface		127.0.0.1
audio_player		aubridge,moonline-spec
audio_alert		aubridge,moonline-spec
audio_source		aufile,SOURCE
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_app		account.so
module_app		menu.so
snd_path		DIR
]]

--- missing("baresip", "sox", …) -> nil when all are installed, else why not, for
-- busted's pending() (a global of the spec files only):
--   local why = baresip.missing("baresip", "sox"); if why then pending(why) return end
function _M.missing(...)
  local missing = {}
  for _, tool in ipairs({ ... }) do
    if not TOOLS[tool] then missing[#missing + 1] = tool end
  end
  if #missing > 0 then
    return table.concat(missing, ", ") .. " not installed (scripts/setup installs them)"
  end
end

--- list(dir) -> the names in a directory
function _M.list(dir)
  local names, req = {}, uv.fs_scandir(dir)
  while req do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    names[#names + 1] = name
  end
  return names
end

--- tmpdir() -> a temporary directory, removed with its files when the current scope ends
function _M.tmpdir()
  local dir = assert(uv.fs_mkdtemp("/tmp/moonline-baresip-XXXXXX"))
  task.defer(function()
    for _, name in ipairs(_M.list(dir)) do os.remove(dir .. "/" .. name) end
    uv.fs_rmdir(dir)
  end)
  return dir
end

-- writes dir/config and dir/accounts
local function configure(dir, source, listen, account)
  -- a function as replacement: a path's '%' is not a capture reference
  local config = CONFIG:gsub("LISTEN", function() return listen end)
    :gsub("SOURCE", function() return source end):gsub("DIR", function() return dir end)
  local f = assert(io.open(dir .. "/config", "w"))
  f:write(config)
  f:close()
  f = assert(io.open(dir .. "/accounts", "w"))
  f:write(account, "\n")
  f:close()
end

--- call(dir, source_wav, target, seconds) -> exit code, stdout, stderr:
-- baresip calls target, saying source_wav, and quits after `seconds`
function _M.call(dir, source, target, seconds)
  configure(dir, source, "127.0.0.1:0", "<sip:caller@127.0.0.1>;regint=0")
  return process.run(_M.BARESIP, { "-f", dir, "-s", "-e", "/dial " .. target, "-t", tostring(seconds) },
    { timeout = seconds + 15, cwd = dir })
end

--- answer(dir, source_wav, seconds) -> proc, port: baresip listening on
-- 127.0.0.1:port as sip:human@127.0.0.1, answering every call at once and
-- saying source_wav; it quits after `seconds`. proc (support.process) is
-- stopped when the current scope ends; proc:wait(t) -> code, signal, stdout, stderr.
function _M.answer(dir, source, seconds)
  local port = net.free_port()
  configure(dir, source, "127.0.0.1:" .. port, "<sip:human@127.0.0.1>;regint=0;answermode=auto")
  local proc = process.start(_M.BARESIP, { "-f", dir, "-s", "-t", tostring(seconds) }, { cwd = dir })
  return proc, port
end

--- recording(dir, suffix) -> the one file of dir whose name ends with suffix
function _M.recording(dir, suffix)
  local found = {}
  for _, name in ipairs(_M.list(dir)) do
    if name:sub(-#suffix) == suffix then found[#found + 1] = dir .. "/" .. name end
  end
  assert(#found == 1, ("expected one *%s in %s, found: %s"):format(suffix, dir, table.concat(_M.list(dir), " ")))
  return found[1]
end

--- near(expected, tolerance, actual, what): fails unless |actual - expected| <= tolerance
function _M.near(expected, tolerance, actual, what)
  assert(actual and math.abs(actual - expected) <= tolerance,
    ("%s: expected %.2f ± %.2f, got %s"):format(what, expected, tolerance, tostring(actual)))
end

--- speech(dir, text, extra) -> wav, raw, duration: espeak-ng says text, as aufile
-- wants it (8 kHz mono S16), padded with silence to n.5 s (+ extra s): baresip
-- 1.0's aufile notices the end of its file on a 1 s timer, then hangs up.
-- raw: the speech's own length (s); duration: the file's.
function _M.speech(dir, text, extra)
  local spoken, source = dir .. "/spoken.wav", dir .. "/speech.wav"
  local code, _, err = process.run(_M.ESPEAK, { "-w", spoken, text }, { timeout = 30 })
  assert(code == 0, "espeak-ng: " .. tostring(code) .. " " .. err)
  local raw = audio.info(spoken).duration
  local duration = math.ceil(raw + 0.5) - 0.5 + (extra or 0)
  audio.sox({ spoken, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", source,
              "pad", "0", ("%.4f"):format(duration - raw) })
  _M.near(duration, 0.01, audio.info(source).duration, "speech file duration (s)")
  return source, raw, duration
end

--- silence(dir, seconds) -> wav: what a peer that says nothing plays
function _M.silence(dir, seconds)
  local source = dir .. "/silence.wav"
  audio.sox({ "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", source, "trim", "0",
              tostring(seconds) })
  return source
end

--- log(out, err) -> baresip's output, to append to a failure message
function _M.log(out, err)
  return "\n--- baresip stdout:\n" .. (out or "") .. "\n--- stderr:\n" .. (err or "")
end

return _M
