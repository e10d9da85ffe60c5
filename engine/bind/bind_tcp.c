/* placeholder until the TCP client lands (being written now) */
#include "ml_bind.h"
int ml_open_tcp(lua_State *L)
{
  static const luaL_Reg methods[] = {{"close", ml_box_close}, {"read", ml_box_close}, {"write", ml_box_close}, {"shutdown", ml_box_close}, {NULL, NULL}};
  ml_bind_class(L, "moonline.tcp", methods);
  return 0;
}
