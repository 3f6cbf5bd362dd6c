"""Lua that the bridge's Redis scripts share."""

from __future__ import annotations

#: `clock()` → Redis's clock in ms: every process's scripts judge time by the one clock.
CLOCK_LUA = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
