-- `moonline console FILE` as a user runs it: a real process, stdin piped in
-- (or a terminal, through script(1)), the transcript on stdout, exit codes.
-- The LLM settings are removed from the environment, so the examples' own
-- scripted models answer.
local build = os.getenv("MOONLINE_BUILD") or "build"
local MOONLINE = build .. "/moonline"
local files = require "support.files"
local tmpfile, slurp = files.tmpfile, files.slurp
local NO_LLM_ENV = "env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u MOONLINE_LLM_MODEL "



local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- sh(script) -> exit code of the script's last `echo $?`, stdout, stderr
local function sh(script)
  local out, err = os.tmpname(), os.tmpname()
  local p = io.popen("timeout 60 sh -c " .. sh_quote(script:gsub("OUT", out):gsub("ERR", err)))
  local rc = tonumber((p:read("*a"):match("(%d+)%s*$")))
  p:close()
  local o, e = slurp(out), slurp(err)
  os.remove(out)
  os.remove(err)
  return rc, o, e
end

-- console(file, input) -> rc, stdout, stderr
local function console(file, input, env)
  return sh(("printf %%s %s | %s%s console --ledger %s >OUT 2>ERR; echo $?"):format(
    sh_quote(input), env or NO_LLM_ENV, MOONLINE, file))
end

local LEDGER_ZERO = "ledger: tasks=0 resources=0 timers=0 handles=0"

local HEADER = [[
moonline console: Weather (examples/weather.lua)
using the script's scripted model
Offline, the scripted model understands: hello, weather in Paris? (or London, Tokyo), weather in Atlantis?, thanks.
Type a message and press Enter; /quit or Ctrl-D to leave.

agent> Hi! I can look up the weather for you. Which city?
]]

describe("moonline console", function()
  it("talks to examples/weather.lua: greeting, tool call, reply, /quit exits 0", function()
    local rc, out, err = console("examples/weather.lua", "weather in Paris?\n/quit\n")
    assert.equal(0, rc, err)
    assert.equal(HEADER .. [[
you> weather in Paris?
  [tool] lookup_weather {"location":"Paris"}
  [tool] lookup_weather -> sunny, 21 degrees in Paris
agent> It is sunny in Paris, 21 degrees.
you> /quit
  [session closed: user_initiated]
bye
]], out)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  it("one turn per line; a tool error is shown; end of input closes and exits 0", function()
    local rc, out, err = console("examples/weather.lua", "hello\n\nweather in Atlantis?\nthanks")
    assert.equal(0, rc, err)
    -- (an empty line is a turn of nothing: a new prompt; "you> " ends in a space)
    assert.equal(HEADER .. table.concat({
      "you> hello",
      "agent> Hello! Ask me about the weather in a city, for example Paris or London.",
      "you> ",
      "you> weather in Atlantis?",
      '  [tool] lookup_weather {"location":"Atlantis"}',
      "  [tool] lookup_weather -> error: no forecast for Atlantis",
      "agent> Sorry, I have no forecast for Atlantis.",
      "you> thanks",
      "agent> You're welcome!",
      "you> ",
      "  [session closed: user_initiated]",
      "bye",
      "",
    }, "\n"), out)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  it("shows nested AgentTasks: tool calls and handoffs both ways", function()
    local rc, out, err = console("examples/research.lua", "research the moon\n/quit\n")
    assert.equal(0, rc, err)
    local transcript = out:match("you> research the moon\n(.-)you> /quit")
    assert.equal([[
  [tool] research {"topic":"the moon"}
  [handoff] Researcher -> ResearchTask
  [tool] deep_research {"question":"Why does the moon cause tides?"}
  [handoff] ResearchTask -> DeepResearchTask
  [tool] report {"findings":"The moon's gravity pulls the oceans into two bulges that Earth rotates through."}
  [tool] report -> (done, no output)
  [handoff] DeepResearchTask -> ResearchTask
  [tool] deep_research -> The moon's gravity pulls the oceans into two bulges that Earth rotates through.
  [tool] finish {"summary":"The moon orbits Earth every 27 days; its gravity raises the tides twice a day."}
  [tool] finish -> (done, no output)
  [handoff] ResearchTask -> Researcher
  [tool] research -> The moon orbits Earth every 27 days; its gravity raises the tides twice a day.
agent> Here is what I found: The moon orbits Earth every 27 days; its gravity raises the tides twice a day.
]], transcript)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  it("Ctrl-C while a task's tool sleeps: the tasks complete cancelled, the session closes, exit 130", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    local rc, out, err = sh(([[
      mkfifo %s || exit 1
      %s%s console --ledger examples/research.lua <%s >OUT 2>ERR &
      pid=$!
      exec 3>%s
      printf 'crunch the numbers\n' >&3
      i=0
      until grep -q 'tool\] crunch {}' OUT || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done
      start=$(date +%%s%%N)
      kill -INT $pid
      wait $pid
      rc=$?
      echo "took_ms=$(( ($(date +%%s%%N) - start) / 1000000 ))" >>ERR
      exec 3>&-
      rm -f %s
      echo $rc]]):format(fifo, NO_LLM_ENV, MOONLINE, fifo, fifo, fifo))
    assert.equal(130, rc, out .. err)
    assert.matches([[
you> crunch the numbers
  [tool] crunch_numbers {"dataset":"sales"}
  [handoff] Researcher -> SlowTask
  [tool] crunch {}
  [tool] crunch -> cancelled
  [handoff] SlowTask -> Researcher
  [tool] crunch_numbers -> error: SlowTask cancelled
  [session closed: job_shutdown]
]], out, 1, true)
    assert.matches(LEDGER_ZERO, err, 1, true)
    assert.is_true(tonumber(err:match("took_ms=(%d+)")) < 2000, err) -- not the tool's 30 s
  end)

  it("works in a terminal (stdin is a tty)", function()
    if os.execute("command -v script >/dev/null 2>&1") ~= 0 then
      pending("script(1) is not installed")
      return
    end
    local cmd = NO_LLM_ENV .. MOONLINE .. " console examples/weather.lua"
    local rc, out, err = sh(("printf 'weather in Paris?\\n/quit\\n' | script -qec %s /dev/null >OUT 2>ERR; echo $?")
      :format(sh_quote(cmd)))
    assert.equal(0, rc, out .. err)
    out = out:gsub("\r", "")
    assert.matches("agent> It is sunny in Paris, 21 degrees.\n", out, 1, true)
    assert.matches("bye\n", out, 1, true)
  end)

  it("without a model: a clear error and exit 1", function()
    local f = tmpfile([[
      local moonline = require "moonline"
      return moonline.serve{ agent = moonline.Agent:extend{ name = "Silent" } }
    ]])
    local rc, out, err = console(f, "hi\n")
    os.remove(f)
    assert.equal(1, rc)
    assert.equal("", out)
    assert.matches("^moonline: no model for the console: set OPENAI_API_KEY", err)
    assert.is_nil(err:find("stack traceback", 1, true))
  end)

  it("a script that does not return moonline.serve{...}: a clear error and exit 1", function()
    local f = tmpfile("return 42\n")
    local rc, _, err = console(f, "")
    os.remove(f)
    assert.equal(1, rc)
    assert.matches("must end with `return moonline.serve{ agent = … }` (it returned number)", err, 1, true)
  end)

  it("with OPENAI_BASE_URL set it uses moonline.llm.openai and says so", function()
    -- nothing listens on port 9: the greeting fails like a provider error, the console goes on
    local rc, out, err = console("examples/weather.lua", "/quit\n",
      "env -u OPENAI_API_KEY OPENAI_BASE_URL=http://127.0.0.1:9/v1 MOONLINE_LLM_MODEL=test-model ")
    assert.equal(0, rc, err)
    assert.matches("using http://127.0.0.1:9/v1 model test-model\n", out, 1, true)
    assert.matches("  [error] llm: ", out, 1, true)
    assert.matches("bye\n", out, 1, true)
  end)

  it("the usage names the console command; a missing FILE is a usage error", function()
    local rc, out = sh(MOONLINE .. " --help >OUT 2>ERR; echo $?")
    assert.equal(0, rc)
    assert.matches("console [--ledger] FILE", out, 1, true)
    local rc2, _, err = sh(MOONLINE .. " console >OUT 2>ERR; echo $?")
    assert.equal(2, rc2)
    assert.matches("moonline console: missing FILE", err, 1, true)
  end)
end)
