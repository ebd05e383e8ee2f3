"""The Lua scripts of the Redis store, written once for Redis, Valkey, Sentinel and Cluster.

Layout of one session (a hash at ``<prefix>{<storage key>}``; the braces make the storage
key the Cluster hash tag, so everything about one session lives in one slot):

    f:<name>   one application field: its encoded (JSON) value
    m          the Meta, as JSON
    e          expires_at (a float as text), copied out of ``m`` so scripts can compare it
    x          the name of the user index key, when the session has a user
    xe         how far (PEXPIREAT, ms) that index was extended for this session: a write
               with the same user and no later absolute end leaves the index alone

A session is *live* while ``e`` is present and ``e > now``. Two other shapes share the key
space and are never live because they have no ``e``:

    tombstone  ``t`` = the storage key it was renamed to, ``te`` = its old ``e``, ``tm`` = 1
               if the rename brings its own meta, plus the old fields; short-lived (see
               the Cluster rename in ``_redis_plan``)
    marker     ``d`` = 1: a Delete killed a rename in flight (blocks that rename's step 2),
               or deleted a session whose predecessor's tombstone may still lead to it

A Cluster rename's step 2 also writes ``o`` (the storage key the session moved from) and
``od`` (that move's deadline, server ms) into the new session: an Apply following a
tombstone only writes into the session that came from it, and a Delete of a session that
a tombstone may still lead to leaves a marker (so the follower learns it is gone).

User index: a sorted set at ``<prefix>u:{<sha256 of user id>}``; members are storage keys,
scores the (caller-clock) time each was added, which lets a Cluster's self-healing read leave
members alone while their session may still be on its way (see ``RedisPlans.list_user``).

Write scripts share one argument layout (``WRITE_HEADER`` values, then the field changes):

    ARGV[1]  now: refuse unless ``e > now`` ('' = no check, for Create)
    ARGV[2]  storage key of the session written (the index member)
    ARGV[3]  meta JSON ('' = keep the stored meta)
    ARGV[4]  expires_at text          ARGV[5]  PEXPIREAT of the session, ms
    ARGV[6]  index key of the new meta's user ('' = none)
    ARGV[7]  index score              ARGV[8]  PEXPIREAT of the index, ms (extend only)
    ARGV[9]  '1' = the script maintains user indexes itself (single server: index keys are
             on the same server; in a Cluster they are in other slots, so Python does it)
    ARGV[10] script specific (Rename: the old storage key; Create: deadline ms or '';
             Apply: '' or, following a Cluster rename, the key it moved from: see ``o``)
    ARGV[11] number of fields to delete, then those ``f:`` names, then the number of ARGV
             entries of the nested patches (below), those entries, then ``f:`` name/value pairs

Nested patches (``Delta.patch``; merge rules in core/patch.py), per patched field:
``f:<name>``, its number of ops, then per op: ``s``/``d``/``a``, the path length, the path's
keys *as JSON string text* (``"k"``, escaped exactly as the codec writes keys), and, for ``s``
and ``a``, the value or items as JSON text. The script edits the stored JSON *text*: it finds
a key by comparing its raw spelling (every stored value and every key was written by the same
encoder, core/codec.py: compact, ``ensure_ascii=False``, so one key has one spelling) and
splices the new text in. It never decodes a value with cjson, so numbers (large integers,
``1.0``, 17-digit floats), empty ``{}`` vs ``[]`` and key order come back byte for byte.

On a single server the scripts read the old index name from ``x`` and ZREM from it, a key
they do not declare in KEYS: Redis and Valkey allow this outside Cluster mode, and it keeps
Delete and Rename at one round trip. Scripts run with ARGV[9] = '0' in a Cluster and then
touch only KEYS[1].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

FIRST_FIELD_ARG = 12  # ARGV index after the header and the delete count


@dataclass(frozen=True, slots=True)
class Script:
    """Lua source and its SHA-1, for EVALSHA with an EVAL fallback on NOSCRIPT."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324


# Helpers pasted in front of the scripts that need them (Lua has no imports in EVAL).
_EXTEND = """
local function extend(k, ms)
  -- Set the expiry of k to ms unless it already expires later (PTTL -1: none yet).
  ms = tonumber(ms)
  local ttl = redis.call('PTTL', k)
  if ttl >= 0 then
    local t = redis.call('TIME')
    if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl >= ms then return end
  end
  redis.call('PEXPIREAT', k, ms)
end
"""

# Raw JSON text editing for nested patches (see the module docstring). Values are compact
# JSON as core/codec.py writes it; positions are byte indexes; "after" = one past the end.
_JSON_EDIT = r"""
local function str_after(s, i)
  -- s[i] is the opening quote of a string: the index after its closing quote
  local j = i + 1
  while true do
    local q = string.find(s, '["\\]', j)
    if not q then error('sessionkeeper: corrupt JSON string') end
    if string.byte(s, q) == 92 then j = q + 2 else return q + 1 end
  end
end

local function val_after(s, i)
  local c = string.byte(s, i)
  if c == 34 then return str_after(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local p = string.find(s, '[%[%]{}"]', j)
      if not p then error('sessionkeeper: corrupt JSON value') end
      local b = string.byte(s, p)
      if b == 34 then
        j = str_after(s, p)
      else
        if b == 123 or b == 91 then depth = depth + 1 else depth = depth - 1 end
        j = p + 1
        if depth == 0 then return j end
      end
    end
  end
  return string.find(s, '[,%]}]', i) or (#s + 1)
end

local function members(s)
  -- s is an object's text: its members as {key start, key after, value start, value after}
  local out, j = {}, 2
  if string.byte(s, j) == 125 then return out end
  while true do
    local ka = str_after(s, j)
    local va = val_after(s, ka + 1)
    out[#out + 1] = {j, ka, ka + 1, va}
    if string.byte(s, va) == 125 then return out end
    j = va + 1
  end
end

local function as_object(s)
  -- members of s if it is an object that is not a tagged codec value, else nil
  if not s or string.byte(s, 1) ~= 123 then return nil end
  local m = members(s)
  for _, e in ipairs(m) do
    if string.sub(s, e[1], e[2] - 1) == '"__sk"' then return nil end
  end
  return m
end

local function find(s, m, key)
  for idx, e in ipairs(m) do
    if string.sub(s, e[1], e[2] - 1) == key then return idx, e end
  end
  return nil, nil
end

local function edit(s, path, k, fn)
  -- s (text, or nil if missing) with fn applied at path[k..]: parents that are missing or
  -- not objects become {} (merge rule M5)
  if k > #path then return fn(s) end
  local m = as_object(s)
  if not m then s, m = '{}', {} end
  local _, e = find(s, m, path[k])
  if e then
    return string.sub(s, 1, e[3] - 1) .. edit(string.sub(s, e[3], e[4] - 1), path, k + 1, fn)
      .. string.sub(s, e[4])
  end
  local v = edit(nil, path, k + 1, fn)
  local sep = ','
  if #m == 0 then sep = '' end
  return string.sub(s, 1, #s - 1) .. sep .. path[k] .. ':' .. v .. '}'
end

local function remove(s, path, k)
  -- s without the entry at path[k..]; unchanged if it or a parent is not there (M3)
  local m = as_object(s)
  if not m then return s end
  local idx, e = find(s, m, path[k])
  if not e then return s end
  if k < #path then
    return string.sub(s, 1, e[3] - 1) .. remove(string.sub(s, e[3], e[4] - 1), path, k + 1)
      .. string.sub(s, e[4])
  end
  if #m == 1 then return '{}' end
  if idx < #m then return string.sub(s, 1, e[1] - 1) .. string.sub(s, m[idx + 1][1]) end
  return string.sub(s, 1, m[idx - 1][4] - 1) .. string.sub(s, e[4])
end

local function nested(k, i)
  -- Apply the nested patches that start at ARGV[i]; return the index after them.
  local stop = i + tonumber(ARGV[i])
  i = i + 1
  while i <= stop do
    local name = ARGV[i]
    local nops = tonumber(ARGV[i + 1])
    i = i + 2
    local v = redis.call('HGET', k, name)
    if not v then v = nil end
    for _ = 1, nops do
      local kind, depth = ARGV[i], tonumber(ARGV[i + 1])
      local path = {}
      for d = 1, depth do path[d] = ARGV[i + 1 + d] end
      i = i + 2 + depth
      if kind == 'd' then
        if v then v = remove(v, path, 1) end
      else
        local text = ARGV[i]
        i = i + 1
        if kind == 's' then
          v = edit(v, path, 1, function(_) return text end)
        else
          v = edit(v, path, 1, function(old)
            if old and string.byte(old, 1) == 91 then
              if text == '[]' then return old end
              if old == '[]' then return text end
              return string.sub(old, 1, #old - 1) .. ',' .. string.sub(text, 2)
            end
            return text
          end)
        end
      end
    end
    if v then redis.call('HSET', k, name, v) end
  end
  return i
end
"""

_WRITE = _EXTEND + _JSON_EDIT + """
local function patch(k, extra)
  -- Delete, then set, the f: fields listed after the header, then apply the nested
  -- patches. ``extra`` (name/value pairs: the meta's entries) goes into the same HSET, so a
  -- typical write is one HSET; chunks keep unpack() small.
  local nd = tonumber(ARGV[11])
  local i = 12
  while nd > 0 do
    local n = math.min(nd, 500)
    redis.call('HDEL', k, unpack(ARGV, i, i + n - 1))
    i = i + n
    nd = nd - n
  end
  local np = i
  i = i + 1 + tonumber(ARGV[np])
  if #ARGV - i < 1000 then
    local t = {unpack(ARGV, i, #ARGV)}
    for _, v in ipairs(extra) do t[#t + 1] = v end
    if #t > 0 then redis.call('HSET', k, unpack(t)) end
  else
    while i <= #ARGV do
      local j = math.min(i + 499, #ARGV)
      redis.call('HSET', k, unpack(ARGV, i, j))
      i = j + 1
    end
    if #extra > 0 then redis.call('HSET', k, unpack(extra)) end
  end
  nested(k, np)
end

local function meta_pairs(oldx, xe)
  -- The meta's hash entries (for patch), the index the session is in after this write, and
  -- whether it must (re)join that index: a new user, or an absolute end (ARGV[8]) later than
  -- the index was extended to for it (``xe``). A write by the same user with the same
  -- absolute end, the common case, touches no index.
  if ARGV[3] == '' then return {}, oldx, false end
  local t = {'m', ARGV[3], 'e', ARGV[4]}
  local join = ARGV[6] ~= '' and (ARGV[6] ~= oldx or not xe or tonumber(xe) < tonumber(ARGV[8]))
  if join then
    t[5], t[6], t[7], t[8] = 'x', ARGV[6], 'xe', ARGV[8]
  end
  return t, ARGV[6], join
end

local function finish_meta(k, oldx, newx)
  -- After patch: drop the index name of a session that left its user; the session's expiry.
  if ARGV[3] == '' then return end
  if newx == '' and oldx ~= '' then redis.call('HDEL', k, 'x', 'xe') end
  redis.call('PEXPIREAT', k, ARGV[5])
end

local function enlist(x, member, ms)
  redis.call('ZADD', x, ARGV[7], member)
  extend(x, ms)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

LOAD = Script("load", """
-- KEYS[1] session. -> ONE bulk string of JSON, because redis-py's pure-Python reply parser
-- costs about as much per bulk string as the round trip itself (HGETALL's two per field):
--   a session with meta and expiry: {"e":"<e>","m":<the meta JSON as stored>,"f":{name: value}}
--   so the caller parses once (the meta is not a string inside the string);
--   anything else (nothing, a tombstone, a marker): the whole hash, [name, value, ...]
--   ({} when there is none), for the Cluster's rename logic.
local h = redis.call('HGETALL', KEYS[1])
local f, m, e = {}, nil, nil
for i = 1, #h, 2 do
  local k = h[i]
  if string.byte(k, 1) == 102 and string.byte(k, 2) == 58 then f[string.sub(k, 3)] = h[i + 1]
  elseif k == 'm' then m = h[i + 1]
  elseif k == 'e' then e = h[i + 1] end
end
if not (e and m) then return cjson.encode(h) end
return '{"e":' .. cjson.encode(e) .. ',"m":' .. m .. ',"f":' .. cjson.encode(f) .. '}'
""")

CREATE = Script("create", _WRITE + """
-- KEYS[1] session [, KEYS[2] its user index]. -> {1} created, {0} key taken, {-1} too late
if ARGV[10] ~= '' and now_ms() > tonumber(ARGV[10]) then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local extra, newx, join = meta_pairs('', nil)
patch(KEYS[1], extra)
finish_meta(KEYS[1], '', newx)
if ARGV[9] == '1' and join then enlist(newx, ARGV[2], ARGV[8]) end
return {1}
""")

APPLY = Script("apply", _WRITE + """
-- KEYS[1] session [, KEYS[2] index of the new meta's user].
-- -> 1: written (single server: the script kept the index too)
--    {1, index before, 1 if the session must (re)join its index}: written (Cluster, where
--       Python keeps the indexes, which live in other slots)
--    {0}: dead at now (expired, or a marker: deleted while or after it moved)
--    {2, successor key, '1' if the move brings its own meta}: a live tombstone (Cluster)
--    {3}: nothing here (yet), or, with ARGV[10], not the session that moved from there
local h = redis.call('HMGET', KEYS[1], 'e', 't', 'te', 'tm', 'd', 'o', 'x', 'xe')
if h[5] then return {0} end
if ARGV[10] ~= '' and h[6] ~= ARGV[10] then return {3} end
if not h[1] then
  if not h[2] then return {3} end
  if tonumber(h[3]) <= tonumber(ARGV[1]) then return {0} end
  return {2, h[2], h[4] or ''}
end
if tonumber(h[1]) <= tonumber(ARGV[1]) then return {0} end
local oldx = h[7] or ''
local extra, newx, join = meta_pairs(oldx, h[8])
patch(KEYS[1], extra)
finish_meta(KEYS[1], oldx, newx)
if ARGV[9] ~= '1' then return {1, oldx, join and 1 or 0} end
if oldx ~= '' and oldx ~= newx then redis.call('ZREM', oldx, ARGV[2]) end
if join then enlist(newx, ARGV[2], ARGV[8]) end
return 1
""")

RENAME = Script("rename", _WRITE + """
-- Single server only. KEYS[1] old, KEYS[2] new [, KEYS[3] index of the new meta's user].
-- -> {1} moved, {0} old gone or expired, or new taken (nothing written)
local h = redis.call('HMGET', KEYS[1], 'e', 'x', 'xe')
if not h[1] or tonumber(h[1]) <= tonumber(ARGV[1]) then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
redis.call('RENAME', KEYS[1], KEYS[2])
local oldx = h[2] or ''
local extra, newx = meta_pairs(oldx, h[3])
patch(KEYS[2], extra)
finish_meta(KEYS[2], oldx, newx)
if oldx ~= '' then redis.call('ZREM', oldx, ARGV[10]) end
if newx ~= '' then
  local ms = ARGV[8]
  if ARGV[3] == '' then ms = now_ms() + redis.call('PTTL', KEYS[2]) end
  enlist(newx, ARGV[2], ms)
end
return {1}
""")

DETACH = Script("detach", """
-- Cluster rename, step 1, on the old slot. KEYS[1] old; ARGV now, new storage key, ttl ms,
-- '1' if the rename brings its own meta (else '').
-- Atomically turn a live session into a tombstone naming its successor.
-- -> {0} | {1, all fields of the old hash, server seconds, server microseconds}
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[1]) then return {0} end
local data = redis.call('HGETALL', KEYS[1])
redis.call('HDEL', KEYS[1], 'e')
redis.call('HSET', KEYS[1], 't', ARGV[2], 'te', e)
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'tm', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local t = redis.call('TIME')
return {1, data, t[1], t[2]}
""")

RESTORE = Script("restore", """
-- Cluster rename, undo of step 1 when step 2 was refused. KEYS[1] old; ARGV new key, ms.
-- Only the tombstone this rename made is turned back; anything else is left alone.
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'e', redis.call('HGET', KEYS[1], 'te'))
redis.call('HDEL', KEYS[1], 't', 'te', 'tm')
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
""")

DROP = Script("drop", """
-- Delete (ARGV[3] = '') or purge (ARGV[3] = now: only if expired). KEYS[1] session;
-- ARGV local, storage key, now, marker slack ms (Cluster: the rename ttl).
-- -> {0} | {1, index to clean ('' if done)} | {2, target}
local h = redis.call('HMGET', KEYS[1], 'e', 't', 'x', 'od')
if h[1] then
  if ARGV[3] ~= '' and tonumber(h[1]) > tonumber(ARGV[3]) then return {0} end
  redis.call('DEL', KEYS[1])
  if h[4] then
    -- Moved here moments ago: its predecessor's tombstone may still lead here. A marker
    -- (until that tombstone is surely gone) tells an Apply following it: deleted, not late.
    local t = redis.call('TIME')
    local left = tonumber(h[4]) - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    if left > 0 then
      redis.call('HSET', KEYS[1], 'd', '1')
      redis.call('PEXPIRE', KEYS[1], left + tonumber(ARGV[4]))
    end
  end
  local x = h[3] or ''
  if x ~= '' and ARGV[1] == '1' then
    redis.call('ZREM', x, ARGV[2])
    x = ''
  end
  return {1, x}
end
if h[2] and ARGV[3] == '' then return {2, h[2]} end
return {0}
""")

KILL = Script("kill", """
-- Delete of a tombstone, on the rename target's slot. KEYS[1] target; ARGV marker ttl ms.
-- Whatever is there goes, and a marker stays so a late step 2 cannot create the session.
-- -> {was live (0/1), its index ('' if none)}
local h = redis.call('HMGET', KEYS[1], 'e', 'x')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {h[1] and 1 or 0, h[2] or ''}
""")

ENLIST = Script("enlist", _EXTEND + """
-- Cluster: add a member to a user index. KEYS[1] index; ARGV score, member, expiry ms.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], ARGV[3])
return 1
""")

HEAL = Script("heal", """
-- Drop index members. KEYS[1] index; ARGV cutoff, n, n members to drop, then members to
-- drop only if added at or before the cutoff (their session may still be being written).
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('ZREM', KEYS[1], ARGV[i]) end
for i = 3 + n, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 1
""")
