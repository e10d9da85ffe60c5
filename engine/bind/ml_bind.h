/* Helpers shared by the Lua bindings (one file per feature, DESIGN.md §8). */
#ifndef ML_BIND_H
#define ML_BIND_H

#include "lauxlib.h"
#include "lua.h"
#include "ml_internal.h"

/* The current task, or a Lua error naming the primitive and why it cannot run. */
ml_task *ml_bind_task(lua_State *L, const char *prim);
/* For primitives that wait. The Lua half has already checked, with
 * coroutine.isyieldable(), that the task can yield here. */
ml_task *ml_bind_wait_task(lua_State *L, const char *prim);
int ml_bind_cannot_wait(lua_State *L); /* core.cannot_wait(name): raises */
/* If the task is cancelled, arrange for the cancellation to be delivered after
 * one trip through the loop and return 1: the caller returns lua_yield(L, 0). */
int ml_bind_cancelled(ml_task *t);
/* The usual end of a waiting method: park the task on q until woken (it is
 * resumed with `true` and the Lua half asks again), or deliver its
 * cancellation. Returns lua_yield's value. */
int ml_bind_park(lua_State *L, ml_task *t, ml_waitq *q, const char *what);
/* true, true: a success the Lua half returns as true (await). Returns 2. */
int ml_bind_ok(lua_State *L);
/* false, msg: a failure the Lua half returns as nil, msg. Returns 2. */
int ml_bind_fail(lua_State *L, const char *msg);
/* "file:line" of the first caller outside moonline's own Lua files. */
void ml_bind_where(lua_State *L, char *buf, size_t n);

/* Resource handles: a userdata holding one ml_res* (NULL once closed). */
/* Open r in scope s (recording the script position that opened it, for leak
 * logs) and push its handle: the usual start of a resource constructor. */
ml_res **ml_bind_open(lua_State *L, ml_loop *loop, ml_res *r, const ml_res_type *type, ml_scope *s,
                      const char *mt);
ml_res **ml_box_new(lua_State *L, ml_res *r, const char *mt);
ml_res *ml_box_get(lua_State *L, int idx, const char *mt); /* NULL when closed */
int ml_box_gc(lua_State *L); /* __gc: a handle dropped while open is a leak */
int ml_box_close(lua_State *L); /* :close() */
int ml_box_tostring(lua_State *L);
void ml_bind_class(lua_State *L, const char *mt, const luaL_Reg *methods);

int ml_open_task(lua_State *L); /* fills the module table at -1 */
int ml_open_timer(lua_State *L);
int ml_open_tcp(lua_State *L);
int ml_open_http(lua_State *L);
int ml_open_lifecycle(lua_State *L);
int ml_open_sip(lua_State *L);
int ml_open_room(lua_State *L);
int ml_open_voice(lua_State *L);

/* The room member of the SIP call handle at idx (its RTP stream, ready to
 * join a room), or NULL with *err saying why (not a call, not answered,
 * ended). A room that closes with the call inside hangs it up. */
struct ml_room_member *ml_bind_sip_room_member(lua_State *L, int idx, const char **err);

/* The room of the room handle at idx, or a Lua error (not a room, closed). */
struct ml_room *ml_bind_room_get(lua_State *L, int idx);

#endif
