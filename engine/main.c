/* moonline: the command line entry. Owns the process's libuv loop, binds luv
 * to it, embeds LuaJIT and runs a script as the root task of a root scope. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "luajit.h"
#include "lualib.h"
#include "luv/lhandle.h"
#include "luv/luv.h"
#include "ml_internal.h"

int luaopen_moonline_core(lua_State *L);

static const char USAGE[] =
    "usage: moonline <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [--ledger] FILE [ARGS...]   run FILE as the main task; exit 0 on success,\n"
    "                                  1 on an uncaught error (with a traceback)\n"
    "  console [--ledger] FILE         talk to the agent of FILE (a script ending in\n"
    "                                  `return moonline.serve{...}`) in the terminal;\n"
    "                                  uses OpenAI-compatible settings from the\n"
    "                                  environment, else the script's own llm\n"
    "  start [--ledger] FILE [--sip HOST:PORT] [--transport udp|tcp|both]\n"
    "        [--grammar FILE.gram] [--stt-pool N] [--voice NAME] [--for SECONDS]\n"
    "                                  answer SIP calls (default 127.0.0.1:5060)\n"
    "                                  with the agent of FILE, talking: local\n"
    "                                  pocketsphinx listens, espeak-ng speaks\n"
    "  help                            show this text\n"
    "  version                         print the version\n"
    "\n"
    "options:\n"
    "  --ledger        at exit print `ledger: tasks=N resources=N timers=N handles=N`\n"
    "                  to stderr and exit 3 if anything is still live\n"
    "                  (also MOONLINE_LEDGER=1)\n"
    "  -h, --help      show this text\n"
    "  -v, --version   print the version\n"
    "\n"
    "environment:\n"
    "  MOONLINE_LOG=error|warn|info|debug   log level (default warn)\n"
    "  MOONLINE_LUA_PATH                    extra Lua search path, prepended\n"
    "  OPENAI_BASE_URL, OPENAI_API_KEY,     the model `console` talks to (when one of\n"
    "  MOONLINE_LLM_MODEL                   the first two is set)\n"
    "\n"
    "SIGINT/SIGTERM cancel the root scope (reason \"signal\"); the process exits\n"
    "after cleanup with 128+signal.\n"
    "\n"
    "examples (in the source tree):\n"
    "  moonline console examples/weather.lua                 an agent, offline\n"
    "  moonline start examples/weather.lua --sip 127.0.0.1:5060  the agent on the phone\n"
    "  moonline run examples/answer_tone.lua 127.0.0.1 5060  answer calls with a tone\n"
    "  moonline run examples/conference.lua 127.0.0.1 5060   a conference bridge\n"
    "docs: README.md, docs/agents.md, docs/telephony.md, docs/voice.md\n";

typedef struct cli {
  uv_loop_t uv;
  lua_State *L;
  ml_loop *loop;
  ml_task *root;
  uv_signal_t sigint, sigterm;
  int signal_seen;
} cli;

/* ---- luv on the engine loop --------------------------------------------- */

static int traceback_handler(lua_State *L)
{
  if (!lua_isstring(L, 1)) return 1;
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* luv calls every script callback through here: an error is logged with its
 * traceback and never ends the process (DESIGN.md §2). */
static int luv_callback_pcall(lua_State *L, int nargs, int nresults, int flags)
{
  (void)flags;
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (rc != 0) {
    ml_log(ML_LOG_ERROR, "error in a libuv callback: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -rc;
  }
  return lua_gettop(L) - base + 1;
}

static int refuse_uv_run(lua_State *L)
{
  return luaL_error(L, "uv.run: moonline owns the loop; wait with moonline.task primitives instead");
}

static int open_luv(lua_State *L)
{
  luaopen_luv(L);
  lua_pushcfunction(L, refuse_uv_run);
  lua_setfield(L, -2, "run");
  lua_pushnil(L); /* Debian's luv 1.44 aborts in walk on handles it did not create */
  lua_setfield(L, -2, "walk");
  return 1;
}

/* Handles a script left open are luv's (moonline's own resources are closed
 * by then). Close them through luv, while Lua is whole: luv's own teardown
 * inside lua_close runs close callbacks into finalized userdata. */
typedef struct leftovers {
  const ml_loop *loop;
  uv_handle_t *h[64];
  int n;
} leftovers;

static void collect_leftover(uv_handle_t *h, void *arg)
{
  leftovers *l = arg;
  if (ml_loop_is_core_handle(l->loop, h) || uv_is_closing(h) || !h->data || l->n == 64) return;
  l->h[l->n++] = h;
}

static void close_leftover_handles(lua_State *L, ml_loop *loop)
{
  leftovers l = {loop, {0}, 0};
  uv_walk(loop->uv, collect_leftover, &l);
  for (int i = 0; i < l.n; i++) {
    luv_handle_t *data = l.h[i]->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, data->ref); /* the handle's userdata */
    lua_getfield(L, -1, "close");
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);
  }
  while (uv_run(loop->uv, UV_RUN_NOWAIT)) {
  }
}

/* ---- Lua search path ------------------------------------------------------ */

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

/* Find moonline's Lua library: next to the executable (installed tree), the
 * build's source tree, or the configured install prefix. */
static void set_lua_path(lua_State *L)
{
  char exe[4096], dir[4200], probe[4300];
  size_t n = sizeof exe;
  const char *found = NULL;
  static char chosen[4300];
  if (uv_exepath(exe, &n) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(dir, sizeof dir, "%s/../share/lua/5.1", exe);
    snprintf(probe, sizeof probe, "%s/moonline/task.lua", dir);
    if (file_exists(probe)) found = dir;
  }
  if (!found) {
    snprintf(probe, sizeof probe, "%s/moonline/task.lua", MOONLINE_SOURCE_LUA);
    if (file_exists(probe)) found = MOONLINE_SOURCE_LUA;
  }
  if (!found) found = MOONLINE_INSTALL_LUA;
  snprintf(chosen, sizeof chosen, "%s", found);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *extra = getenv("MOONLINE_LUA_PATH");
  lua_pushfstring(L, "%s%s%s/?.lua;%s/?/init.lua;%s", extra ? extra : "", extra ? ";" : "", chosen, chosen,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

static void preload(lua_State *L, const char *name, lua_CFunction fn)
{
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

/* ---- signals -------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
  cli *c = h->data;
  if (!c->root || c->root->state == ML_TASK_DONE) return;
  if (!c->signal_seen) {
    c->signal_seen = signum;
    ml_log(ML_LOG_WARN, "received %s: cancelling the root scope", signum == SIGINT ? "SIGINT" : "SIGTERM");
    ml_task_cancel(c->root, "signal");
  } else {
    ml_log(ML_LOG_WARN, "second signal: abandoning cleanup");
    ml_task_abandon(c->root, "second signal");
  }
}

static void start_signal(cli *c, uv_signal_t *h, int signum)
{
  uv_signal_init(&c->uv, h);
  h->data = c;
  uv_signal_start(h, on_signal, signum);
  uv_unref((uv_handle_t *)h); /* never keeps the loop alive by itself */
  ml_loop_add_core_handle(c->loop, (uv_handle_t *)h);
}

/* ---- run ------------------------------------------------------------------- */

static void print_error(lua_State *L, int idx)
{
  if (idx < 0) idx = lua_gettop(L) + idx + 1;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    fprintf(stderr, "moonline: %s\n", lua_tostring(L, -1));
    lua_getfield(L, idx, "traceback");
    if (lua_isstring(L, -1)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_pop(L, 2);
    return;
  }
  const char *msg = lua_tostring(L, idx);
  fprintf(stderr, "moonline: %s\n", msg ? msg : luaL_typename(L, idx));
}

/* The chunks `moonline console FILE` and `moonline start FILE …` run as the
 * main task, with FILE (and what follows it) as their arguments. */
static const char CONSOLE_CHUNK[] = "return require('moonline.console').main(...)";
static const char START_CHUNK[] = "return require('moonline.start').main(...)";

/* run FILE (builtin == NULL) or the chunk `builtin` with FILE as its first
 * argument, as the root task; `cmd` names the command in messages. */
static int cmd_run(const char *cmd, const char *builtin, int argc, char **argv)
{
  int ledger = getenv("MOONLINE_LEDGER") && strcmp(getenv("MOONLINE_LEDGER"), "0") != 0;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--ledger"))
      ledger = 1;
    else if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else {
      fprintf(stderr, "moonline %s: unknown option %s\n%s", cmd, argv[i], USAGE);
      return 2;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "moonline %s: missing FILE\n%s", cmd, USAGE);
    return 2;
  }
  const char *file = argv[i];
  /* a built-in chunk gets FILE too; a script gets what follows it */
  int nargs = builtin ? argc - i : argc - i - 1;
  char **args = builtin ? argv + i : argv + i + 1;

  /* a peer that resets a connection must give a write error, not kill us */
  signal(SIGPIPE, SIG_IGN);
  static cli c;
  if (uv_loop_init(&c.uv) != 0) {
    fprintf(stderr, "moonline: cannot create the event loop\n");
    return 1;
  }
  lua_State *L = c.L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "moonline: cannot create the Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  luv_set_loop(L, &c.uv);
  luv_set_callback(L, luv_callback_pcall);
  preload(L, "luv", open_luv);
  preload(L, "moonline.core", luaopen_moonline_core);
  set_lua_path(L);

  lua_pushcfunction(L, traceback_handler);
  int handler = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonline.task");
  if (lua_pcall(L, 1, 0, handler) != 0) {
    print_error(L, -1);
    return 1;
  }
  c.loop = ml_loop_get(L);
  start_signal(&c, &c.sigint, SIGINT);
  start_signal(&c, &c.sigterm, SIGTERM);

  /* the conventional global `arg`, as the lua interpreters set it */
  lua_createtable(L, nargs, 1);
  lua_pushstring(L, file);
  lua_rawseti(L, -2, 0);
  for (int k = 0; k < nargs; k++) {
    lua_pushstring(L, args[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setglobal(L, "arg");

  int status = 0;
  int loaded = builtin ? luaL_loadbuffer(L, builtin, strlen(builtin), "=moonline") : luaL_loadfile(L, file);
  if (loaded != 0) {
    print_error(L, -1);
    status = 1;
  } else {
    /* root task: the chunk with the script's arguments */
    int chunk = lua_gettop(L);
    ml_task *root;
    lua_pushvalue(L, chunk);
    for (int k = 0; k < nargs; k++) lua_pushstring(L, args[k]);
    root = ml_task_spawn(c.loop, L, NULL, nargs, 0, "main");
    c.root = root;
    int task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ml_loop_run(c.loop, root);
    lua_settop(L, chunk);
    ml_task_push_result(root, L);
    if (!lua_toboolean(L, chunk + 1)) {
      print_error(L, chunk + 2);
      status = c.signal_seen ? 128 + c.signal_seen : 1;
    }
    c.root = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, task_ref);
  }

  ml_loop_shutdown(c.loop); /* nothing is live normally; run while Lua is whole */
  uv_close((uv_handle_t *)&c.sigint, NULL);
  uv_close((uv_handle_t *)&c.sigterm, NULL);
  uv_run(&c.uv, UV_RUN_NOWAIT); /* finish the closes */
  if (ledger) {
    ml_ledger *lg = &c.loop->ledger;
    int handles = ml_loop_handles(c.loop);
    fprintf(stderr, "ledger: tasks=%lld resources=%lld timers=%zu handles=%d\n", (long long)lg->tasks,
            (long long)lg->resources, c.loop->heap_len, handles);
    if (lg->tasks || lg->resources || c.loop->heap_len || handles) status = 3;
  }
  fflush(stdout);
  close_leftover_handles(L, c.loop);
  /* lua_close runs __gc of the module (frees the runtime); the loop is ours */
  lua_close(L);
  while (uv_run(&c.uv, UV_RUN_NOWAIT)) { /* let the last closes finish */
  }
  uv_loop_close(&c.uv);
  return status;
}

int main(int argc, char **argv)
{
  /* scripts are long-running services: a line printed is a line seen, even
   * through a pipe or a log collector */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fputs(USAGE, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(USAGE, stdout);
    return 0;
  }
  if (!strcmp(cmd, "-v") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("moonline %s (%s, libuv %s)\n", MOONLINE_VERSION, LUAJIT_VERSION, uv_version_string());
    return 0;
  }
  if (!strcmp(cmd, "run")) return cmd_run("run", NULL, argc - 2, argv + 2);
  if (!strcmp(cmd, "console")) return cmd_run("console", CONSOLE_CHUNK, argc - 2, argv + 2);
  if (!strcmp(cmd, "start")) return cmd_run("start", START_CHUNK, argc - 2, argv + 2);
  fprintf(stderr, "moonline: unknown command '%s'\n\n%s", cmd, USAGE);
  return 2;
}
