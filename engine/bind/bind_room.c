/* moonline.room (C half): rooms, tracks and audio endpoints as resources of
 * the scope that made them. Closing a room kicks everyone still inside (a
 * SIP leg hangs up, a track ends, an endpoint's reader sees "closed"); a
 * member that closes first simply leaves.
 *
 *   core.room_create(name [, max [, outermost]]) -> room
 *   room:join(member)  room:leave(member)  room:mute(member, bool)
 *   room:tone(hz, level, seconds) -> track      room:clip(path, loop) -> track | false, err
 *   room:endpoint(speak_ms, hear_ms) -> endpoint
 *   room:name()  room:count()  room:stats()  room:closed()  room:close()
 *   room:data_wait()  room:data_notify()  (the wait queue under data messages)
 *   track:wait() (woken when done)  track:done()  track:close()
 *   endpoint:write(s16le) -> samples taken   endpoint:read(max) -> s16le | nil, "closed"
 *   endpoint:wait() (woken every tick)  endpoint:clear()  endpoint:stats()
 *
 * A member is a SIP call (its RTP stream), a track or an endpoint. Audio is
 * 16 kHz mono signed 16-bit little-endian in and out of endpoints. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "ml_bind.h"
#include "room.h"
#include "track.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "endpoint audio is copied as s16le: port the byte order first"
#endif

static const char ROOM_MT[] = "moonline.room";
static const char TRACK_MT[] = "moonline.room_track";
static const char ENDPOINT_MT[] = "moonline.room_endpoint";

#define ROOM_MAX_DEFAULT 64
#define ROOM_MAX_LIMIT 4096

typedef struct room_res {
  ml_res res; /* first */
  ml_room *room;
  ml_waitq data_waiters; /* data subscribers waiting for a message (the queues are Lua's) */
  char name[64];
} room_res;

typedef struct track_res {
  ml_res res; /* first */
  ml_track track;
  ml_waitq waiters;
  int ended; /* done, kicked or closed */
} track_res;

typedef struct endpoint_res {
  ml_res res; /* first */
  ml_endpoint ep;
  ml_waitq waiters;
  int kicked; /* its room closed with it inside */
} endpoint_res;

/* ---- room ------------------------------------------------------------------------ */

static void room_close(ml_res *r)
{
  room_res *rr = (room_res *)r;
  ml_room_free(rr->room); /* kicks the members still inside */
  rr->room = NULL;
  ml_waitq_wake(&rr->data_waiters, INT_MAX); /* they find the room closed */
  ml_res_closed(r);
}

static void room_free(ml_res *r) { free(r); }

static ml_res_type room_type = {"room", 0, room_close, room_free};

static room_res *check_room(lua_State *L, int idx)
{
  room_res *rr = (room_res *)ml_box_get(L, idx, ROOM_MT);
  if (!rr || !rr->room) luaL_error(L, "moonline.room: the room is closed");
  return rr;
}

/* room_create(name, max, outermost): outermost opens the room in the task's
 * outermost scope instead of the innermost (a call's ctx.room made on first
 * use, wherever that is, lives as long as the call's handler) */
static int l_room_create(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "room.create");
  const char *name = luaL_optstring(L, 1, "room");
  lua_Integer max = luaL_optinteger(L, 2, ROOM_MAX_DEFAULT);
  ml_scope *scope = lua_toboolean(L, 3) ? t->body : t->cur;
  if (max < 1 || max > ROOM_MAX_LIMIT) return luaL_argerror(L, 2, "between 1 and 4096 members");
  room_res *rr = calloc(1, sizeof *rr);
  if (!rr) return luaL_error(L, "out of memory");
  rr->room = ml_room_create(t->loop, (uint32_t)max);
  if (!rr->room) {
    free(rr);
    return luaL_error(L, "out of memory");
  }
  snprintf(rr->name, sizeof rr->name, "%s", name);
  ml_waitq_init(&rr->data_waiters);
  ml_bind_open(L, t->loop, &rr->res, &room_type, scope, ROOM_MT);
  return 1;
}

ml_room *ml_bind_room_get(lua_State *L, int idx) { return check_room(L, idx)->room; }

/* the room member behind a handle, or a Lua error naming what is wrong */
static ml_room_member *member_of(lua_State *L, int idx)
{
  if (luaL_testudata(L, idx, TRACK_MT)) {
    track_res *tr = (track_res *)ml_box_get(L, idx, TRACK_MT);
    if (!tr) luaL_error(L, "moonline.room: the track is closed");
    return &tr->track.member;
  }
  if (luaL_testudata(L, idx, ENDPOINT_MT)) {
    endpoint_res *er = (endpoint_res *)ml_box_get(L, idx, ENDPOINT_MT);
    if (!er) luaL_error(L, "moonline.room: the endpoint is closed");
    return &er->ep.member;
  }
  const char *err = NULL;
  ml_room_member *m = ml_bind_sip_room_member(L, idx, &err);
  if (!m) luaL_error(L, "moonline.room: %s", err ? err : "not a room member (a call, track or endpoint)");
  return m;
}

static int l_room_join(lua_State *L)
{
  room_res *rr = check_room(L, 1);
  ml_room_member *m = member_of(L, 2);
  if (ml_room_join(rr->room, m) != 0) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "the room '%s' is full", rr->name);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_room_leave(lua_State *L)
{
  room_res *rr = check_room(L, 1);
  ml_room_member *m = member_of(L, 2);
  if (m->room == rr->room) ml_room_leave(m);
  return 0;
}

static int l_room_mute(lua_State *L)
{
  check_room(L, 1);
  ml_room_set_mute(member_of(L, 2), lua_toboolean(L, 3));
  return 0;
}

/* has(member) -> bool */
static int l_room_has(lua_State *L)
{
  room_res *rr = check_room(L, 1);
  lua_pushboolean(L, member_of(L, 2)->room == rr->room);
  return 1;
}

/* data_wait() -> (woken: the Lua half looks again) | false, "closed" */
static int l_room_data_wait(lua_State *L)
{
  room_res *rr = (room_res *)ml_box_get(L, 1, ROOM_MT);
  ml_task *t = ml_bind_wait_task(L, "room data:recv");
  if (!rr || !rr->room) {
    return ml_bind_fail(L, "closed");
  }
  return ml_bind_park(L, t, &rr->data_waiters, "room data");
}

static int l_room_data_notify(lua_State *L)
{
  room_res *rr = (room_res *)ml_box_get(L, 1, ROOM_MT);
  if (rr) ml_waitq_wake(&rr->data_waiters, INT_MAX);
  return 0;
}

static int l_room_closed(lua_State *L)
{
  room_res *rr = (room_res *)ml_box_get(L, 1, ROOM_MT);
  lua_pushboolean(L, !rr || !rr->room);
  return 1;
}

static int l_room_name(lua_State *L)
{
  room_res *rr = (room_res *)ml_box_get(L, 1, ROOM_MT);
  luaL_argcheck(L, luaL_testudata(L, 1, ROOM_MT) != NULL, 1, "a room");
  lua_pushstring(L, rr ? rr->name : "(closed)");
  return 1;
}

static int l_room_count(lua_State *L)
{
  room_res *rr = (room_res *)ml_box_get(L, 1, ROOM_MT);
  lua_pushinteger(L, rr && rr->room ? ml_room_members(rr->room) : 0);
  return 1;
}

static int l_room_stats(lua_State *L)
{
  room_res *rr = check_room(L, 1);
  const ml_room_stats *s = &rr->room->stats;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, ml_room_members(rr->room));
  lua_setfield(L, -2, "members");
  lua_pushnumber(L, (lua_Number)s->ticks);
  lua_setfield(L, -2, "ticks");
  lua_pushnumber(L, (lua_Number)s->late_ticks);
  lua_setfield(L, -2, "late_ticks");
  lua_pushnumber(L, (lua_Number)s->max_tick_lag_ns / 1e6);
  lua_setfield(L, -2, "max_tick_lag_ms");
  return 1;
}

/* ---- tracks ---------------------------------------------------------------------- */

static void track_end(track_res *tr)
{
  tr->ended = 1;
  ml_waitq_wake(&tr->waiters, INT_MAX);
}

static void on_track_done(ml_track *t, void *data)
{
  (void)t;
  track_end(data);
}

static void on_track_kicked(ml_room_member *m, void *data)
{
  (void)m;
  track_end(data);
}

static void track_close(ml_res *r)
{
  track_res *tr = (track_res *)r;
  ml_track_release(&tr->track);
  track_end(tr);
  ml_res_closed(r);
}

static void track_free(ml_res *r) { free(r); }

static ml_res_type track_type = {"room track", 0, track_close, track_free};

/* a new track, opened in the caller's scope, joined to the room at 1 */
static track_res *track_open(lua_State *L, ml_task *t, room_res *rr, track_res *tr)
{
  ml_waitq_init(&tr->waiters);
  tr->track.on_done = on_track_done;
  tr->track.data = tr;
  tr->track.member.kick = on_track_kicked;
  tr->track.member.kick_data = tr;
  ml_bind_open(L, t->loop, &tr->res, &track_type, t->cur, TRACK_MT);
  if (ml_room_join(rr->room, &tr->track.member) != 0) {
    ml_res_close(&tr->res);
    luaL_error(L, "moonline.room: the room '%s' is full", rr->name);
  }
  return tr;
}

static int l_room_tone(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "room:tone");
  room_res *rr = check_room(L, 1);
  double hz = luaL_checknumber(L, 2), level = luaL_optnumber(L, 3, 0.3), seconds = luaL_optnumber(L, 4, 0);
  luaL_argcheck(L, hz > 0 && hz < ML_MIX_RATE / 2, 2, "a frequency between 0 and 8000 Hz");
  track_res *tr = calloc(1, sizeof *tr);
  if (!tr) return luaL_error(L, "out of memory");
  ml_track_init_tone(&tr->track, hz, level, seconds);
  track_open(L, t, rr, tr);
  return 1;
}

static int l_room_clip(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "room:clip");
  room_res *rr = check_room(L, 1);
  const char *path = luaL_checkstring(L, 2);
  int loop = lua_toboolean(L, 3);
  char err[256];
  ml_clip *clip = ml_clip_load(path, ML_MIX_RATE, err, sizeof err); /* shared with other tracks of it */
  if (!clip) return ml_bind_fail(L, err);
  track_res *tr = calloc(1, sizeof *tr);
  if (!tr) {
    ml_clip_unref(clip);
    return luaL_error(L, "out of memory");
  }
  ml_track_init_shared(&tr->track, clip, loop);
  track_open(L, t, rr, tr);
  return 1;
}

static int l_track_wait(lua_State *L)
{
  track_res *tr = (track_res *)ml_box_get(L, 1, TRACK_MT);
  ml_task *t = ml_bind_wait_task(L, "track:wait");
  if (!tr || tr->ended) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return ml_bind_park(L, t, &tr->waiters, "room track end");
}

static int l_track_done(lua_State *L)
{
  track_res *tr = (track_res *)ml_box_get(L, 1, TRACK_MT);
  lua_pushboolean(L, !tr || tr->ended);
  return 1;
}

/* ---- endpoints ------------------------------------------------------------------- */

static void on_endpoint_tick(ml_endpoint *e, void *data)
{
  (void)e;
  ml_waitq_wake(&((endpoint_res *)data)->waiters, INT_MAX);
}

static void on_endpoint_kicked(ml_room_member *m, void *data)
{
  (void)m;
  endpoint_res *er = data;
  er->kicked = 1;
  ml_waitq_wake(&er->waiters, INT_MAX);
}

static void endpoint_close(ml_res *r)
{
  endpoint_res *er = (endpoint_res *)r;
  ml_endpoint_release(&er->ep);
  ml_waitq_wake(&er->waiters, INT_MAX);
  ml_res_closed(r);
}

static void endpoint_free(ml_res *r) { free(r); }

static ml_res_type endpoint_type = {"room endpoint", 0, endpoint_close, endpoint_free};

#define ENDPOINT_MAX_MS 60000

static int l_room_endpoint(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "room:endpoint");
  room_res *rr = check_room(L, 1);
  lua_Integer speak = luaL_optinteger(L, 2, 10000), hear = luaL_optinteger(L, 3, 2000);
  luaL_argcheck(L, speak >= 20 && speak <= ENDPOINT_MAX_MS, 2, "20..60000 ms");
  luaL_argcheck(L, hear >= 20 && hear <= ENDPOINT_MAX_MS, 3, "20..60000 ms");
  endpoint_res *er = calloc(1, sizeof *er);
  if (!er || ml_endpoint_init(&er->ep, (unsigned)speak, (unsigned)hear) != 0) {
    free(er);
    return luaL_error(L, "out of memory");
  }
  ml_waitq_init(&er->waiters);
  er->ep.on_tick = on_endpoint_tick;
  er->ep.data = er;
  er->ep.member.kick = on_endpoint_kicked;
  er->ep.member.kick_data = er;
  ml_bind_open(L, t->loop, &er->res, &endpoint_type, t->cur, ENDPOINT_MT);
  if (ml_room_join(rr->room, &er->ep.member) != 0) {
    ml_res_close(&er->res);
    return luaL_error(L, "moonline.room: the room '%s' is full", rr->name);
  }
  return 1;
}

static endpoint_res *check_endpoint(lua_State *L)
{
  endpoint_res *er = (endpoint_res *)ml_box_get(L, 1, ENDPOINT_MT);
  if (!er) luaL_error(L, "moonline.room: the endpoint is closed");
  return er;
}

/* write(s16le [, from_sample]) -> samples taken: from_sample (0-based) lets
 * a writer that is waiting for room go on without copying the rest */
static int l_endpoint_write(lua_State *L)
{
  endpoint_res *er = check_endpoint(L);
  size_t len;
  const char *pcm = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len % 2 == 0, 2, "16-bit samples: an even number of bytes");
  lua_Integer from = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, from >= 0 && (size_t)from <= len / 2, 3, "a sample offset within the audio");
  const int16_t *samples = (const int16_t *)(const void *)pcm + from;
  lua_pushinteger(L, (lua_Integer)ml_endpoint_write(&er->ep, samples, len / 2 - (size_t)from));
  return 1;
}

/* read([max]) -> s16le | nil, "closed" (not an error: a reader woken by the
 * last tick may find the endpoint closed by then) */
static int l_endpoint_read(lua_State *L)
{
  endpoint_res *er = (endpoint_res *)ml_box_get(L, 1, ENDPOINT_MT);
  luaL_argcheck(L, luaL_testudata(L, 1, ENDPOINT_MT) != NULL, 1, "an endpoint");
  if (!er) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_Integer max = luaL_optinteger(L, 2, ML_MIX_FRAME);
  luaL_argcheck(L, max >= 0, 2, "a sample count");
  size_t n = er->ep.hear.len < (size_t)max ? er->ep.hear.len : (size_t)max;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  while (n) { /* in chunks that fit luaL_Buffer's block */
    size_t k = LUAL_BUFFERSIZE / 2 < n ? LUAL_BUFFERSIZE / 2 : n;
    char *dst = luaL_prepbuffer(&b);
    k = ml_endpoint_read(&er->ep, (int16_t *)(void *)dst, k);
    luaL_addsize(&b, k * 2);
    n -= k;
  }
  luaL_pushresult(&b);
  return 1;
}

/* wait() -> true after the next tick | false, "closed" */
static int l_endpoint_wait(lua_State *L)
{
  endpoint_res *er = (endpoint_res *)ml_box_get(L, 1, ENDPOINT_MT);
  ml_task *t = ml_bind_wait_task(L, "endpoint:wait");
  if (!er || er->kicked || !er->ep.member.room) {
    return ml_bind_fail(L, "closed");
  }
  return ml_bind_park(L, t, &er->waiters, "room endpoint tick");
}

static int l_endpoint_clear(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)ml_endpoint_clear(&check_endpoint(L)->ep));
  return 1;
}

static int l_endpoint_stats(lua_State *L)
{
  endpoint_res *er = check_endpoint(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)er->ep.speak.len);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, (lua_Integer)er->ep.hear.len);
  lua_setfield(L, -2, "heard");
  lua_pushnumber(L, (lua_Number)er->ep.spoken);
  lua_setfield(L, -2, "spoken");
  lua_pushnumber(L, (lua_Number)er->ep.heard_dropped);
  lua_setfield(L, -2, "heard_dropped");
  return 1;
}

int ml_open_room(lua_State *L)
{
  static const luaL_Reg room_methods[] = {
      {"join", l_room_join},         {"leave", l_room_leave},         {"mute", l_room_mute},
      {"has", l_room_has},           {"name", l_room_name},           {"count", l_room_count},
      {"stats", l_room_stats},       {"tone", l_room_tone},           {"clip", l_room_clip},
      {"endpoint", l_room_endpoint}, {"data_wait", l_room_data_wait}, {"data_notify", l_room_data_notify},
      {"closed", l_room_closed},     {"close", ml_box_close},         {NULL, NULL}};
  static const luaL_Reg track_methods[] = {
      {"wait", l_track_wait}, {"done", l_track_done}, {"close", ml_box_close}, {NULL, NULL}};
  static const luaL_Reg endpoint_methods[] = {{"write", l_endpoint_write},
                                              {"read", l_endpoint_read},
                                              {"wait", l_endpoint_wait},
                                              {"clear", l_endpoint_clear},
                                              {"stats", l_endpoint_stats},
                                              {"close", ml_box_close},
                                              {NULL, NULL}};
  ml_res_type_register(&room_type);
  ml_res_type_register(&track_type);
  ml_res_type_register(&endpoint_type);
  ml_bind_class(L, ROOM_MT, room_methods);
  ml_bind_class(L, TRACK_MT, track_methods);
  ml_bind_class(L, ENDPOINT_MT, endpoint_methods);
  lua_pushcfunction(L, l_room_create);
  lua_setfield(L, -2, "room_create");
  return 0;
}
