"""The Lua scripts the Redis feature back end runs inside Redis (features/redis_backend.py).

Written by hand because no library maintains bucketed window state with riskguard's exact semantics
(features/reference.py): each script does one event's whole work atomically, in one round trip.

Numbers: Lua 5.1 (Redis's) holds every number as a double. Event times (µs since the epoch, about 1.8e15
today) and amounts in integer 1/10,000 units are exact below 2^53 (9.007e15): a bucket's or a window's
sum of units must stay below that (900,719,925,474 currency units), which the engine documents. Counts
and sums are stored with HINCRBY (64-bit integers in Redis); integers go back into Redis through
``int()`` (``%.0f``), never Lua's ``tostring`` (``%.14g``, which rounds them).

Key layout (every key of a namespace carries the hash tag ``{ns}``, so one script may touch them all):

* ``{ns}:wm`` the watermark (latest folded ``occurred_at``, µs); ``{ns}:seen`` a sorted set of folded
  event ids scored by their time, trimmed below ``wm - lateness``; ``{ns}:features`` the signature
  registry (signature id -> the watermark when a process maintaining it last folded an event);
  ``{ns}:scratch`` a sketch used and deleted within one script.
* ``{ns}:<sig>:s:<key>`` one hash per (feature signature, key). count/sum/avg/min/max/first/last:
  fields ``n<bucket>`` (events) and ``x<bucket>`` (units summed, the extreme units, or the earliest/latest
  µs). distinct: fields ``<bucket>:<value>`` (events of that value in that bucket), meta fields ``lo``
  (lowest bucket held) and ``sk`` (switched to sketches), and ``b<bucket>`` (a bucket's sketch exists).
* ``{ns}:<sig>:z:<key>`` distinct's sorted set: value -> latest bucket holding it (exact mode).
* ``{ns}:<sig>:h:<key>:<bucket>`` distinct's HyperLogLog of one bucket (sketch mode).

Kinds (features/engine.py KIND_CODES): 1 count, 2 sum, 3 avg, 4 min, 5 max, 6 first_seen, 7 last_seen,
8 distinct.
"""

from __future__ import annotations

HELPERS = r"""
local function idiv(a, b)  -- floor(a / b) for integers held exactly in doubles
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1 elseif r >= b then q = q + 1 end
  return q
end

local function int(x)
  return string.format('%.0f', x)
end

local function chunked(command, key, list)
  for i = 1, #list, 500 do
    if key then
      redis.call(command, key, unpack(list, i, math.min(i + 499, #list)))
    else
      redis.call(command, unpack(list, i, math.min(i + 499, #list)))
    end
  end
end

-- an exact distinct field '<bucket>:<value>': its bucket, bucket text and value (nil for other fields)
local function exact_field(f)
  local c = string.byte(f)
  if c == 45 or (c >= 48 and c <= 57) then
    local p = string.find(f, ':', 2, true)
    local bs = string.sub(f, 1, p - 1)
    return tonumber(bs), bs, string.sub(f, p + 1)
  end
  return nil
end

local function lowest(kind)
  return kind == 4 or kind == 6
end

-- folds one event into a series bucket; `current` is the bucket's x (false: none, nil: unknown)
local function fold_series(key, kind, hbs, item, ttl, current)
  redis.call('HINCRBY', key, 'n' .. hbs, 1)
  if kind == 2 or kind == 3 then
    redis.call('HINCRBY', key, 'x' .. hbs, item)
  elseif kind ~= 1 then
    if current == nil then
      current = redis.call('HGET', key, 'x' .. hbs)
    end
    local v = tonumber(item)
    if not current or (lowest(kind) and v < tonumber(current)) or (not lowest(kind) and v > tonumber(current)) then
      redis.call('HSET', key, 'x' .. hbs, item)
    end
  end
  redis.call('PEXPIRE', key, ttl)
end

-- the window aggregate over buckets (low, hb], dropping buckets below `oldest`; and bucket hb's x
local function read_series(key, kind, hb, low, oldest)
  local flat = redis.call('HGETALL', key)
  local n, x, has, current = 0, 0, false, false
  local stale = {}
  for j = 1, #flat, 2 do
    local f = flat[j]
    local b = tonumber(string.sub(f, 2))
    local isx = string.byte(f) == 120
    if isx and b == hb then
      current = flat[j + 1]
    end
    if oldest and b < oldest then
      stale[#stale + 1] = f
    elseif b > low and b <= hb then
      local v = tonumber(flat[j + 1])
      if not isx then
        n = n + v
      elseif kind == 2 or kind == 3 then
        x = x + v
      elseif lowest(kind) then
        if not has or v < x then x = v end
        has = true
      else
        if not has or v > x then x = v end
        has = true
      end
    end
  end
  chunked('HDEL', key, stale)
  if kind == 1 then
    return n, current
  elseif kind == 2 then
    return x, current
  elseif kind == 3 then
    return {x, n}, current
  end
  return has and x or false, current
end

-- exact distinct values become one HyperLogLog per bucket
local function to_sketch(hkey, zkey, hll, ttl)
  local groups, exact = {}, {}
  for _, f in ipairs(redis.call('HKEYS', hkey)) do
    local b, bs, v = exact_field(f)
    if b then
      exact[#exact + 1] = f
      local g = groups[bs]
      if not g then
        g = {}
        groups[bs] = g
      end
      g[#g + 1] = v
    end
  end
  chunked('HDEL', hkey, exact)
  redis.call('DEL', zkey)
  for bs, values in pairs(groups) do
    chunked('PFADD', hll .. bs, values)
    redis.call('PEXPIRE', hll .. bs, ttl)
    redis.call('HSET', hkey, 'b' .. bs, 1)
  end
  redis.call('HSET', hkey, 'sk', 1)
end

-- folds one value into a distinct key; returns the lowest bucket held
local function fold_distinct(hkey, zkey, hll, hbs, item, ttl, limit, lo, sketched)
  local hb = tonumber(hbs)
  local grew = false
  if sketched then
    redis.call('PFADD', hll .. hbs, item)
    redis.call('PEXPIRE', hll .. hbs, ttl)
    redis.call('HSET', hkey, 'b' .. hbs, 1)
  else
    redis.call('HINCRBY', hkey, hbs .. ':' .. item, 1)
    grew = redis.call('ZADD', zkey, 'GT', hbs, item) == 1  -- a new value (GT: latest bucket only rises)
    redis.call('PEXPIRE', zkey, ttl)
  end
  if not lo or hb < lo then
    redis.call('HSET', hkey, 'lo', hbs)
    lo = hb
  end
  redis.call('PEXPIRE', hkey, ttl)
  if grew and redis.call('ZCARD', zkey) > limit then
    to_sketch(hkey, zkey, hll, ttl)
  end
  return lo
end

-- drops a distinct key's buckets below `oldest`; returns the lowest bucket left
local function evict_distinct(hkey, zkey, hll, oldest)
  local stale, dead, lo = {}, {}, false
  for _, f in ipairs(redis.call('HKEYS', hkey)) do
    local b = exact_field(f)
    local marker = false
    if not b and string.byte(f) == 98 then
      b = tonumber(string.sub(f, 2))
      marker = true
    end
    if b then
      if b < oldest then
        stale[#stale + 1] = f
        if marker then dead[#dead + 1] = hll .. string.sub(f, 2) end
      elseif not lo or b < lo then
        lo = b
      end
    end
  end
  chunked('HDEL', hkey, stale)
  chunked('DEL', false, dead)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. int(oldest))
  if lo then
    redis.call('HSET', hkey, 'lo', int(lo))
  else
    redis.call('HDEL', hkey, 'lo')
  end
  return lo
end

-- the sketches of a distinct key's buckets in (low, hb]
local function sketch_keys(hkey, hll, hb, low)
  local keys = {}
  for _, f in ipairs(redis.call('HKEYS', hkey)) do
    if string.byte(f) == 98 then
      local b = tonumber(string.sub(f, 2))
      if b > low and b <= hb then keys[#keys + 1] = hll .. string.sub(f, 2) end
    end
  end
  return keys
end

-- the cardinality of the union of `keys` (plus `extra` when given): PFCOUNT, or a merge for many
local function union_count(keys, extra, scratch)
  if not extra and #keys == 0 then
    return 0
  end
  if not extra and #keys <= 500 then
    return redis.call('PFCOUNT', unpack(keys))
  end
  redis.call('DEL', scratch)
  for i = 1, #keys, 500 do
    redis.call('PFMERGE', scratch, unpack(keys, i, math.min(i + 499, #keys)))
  end
  if extra then redis.call('PFADD', scratch, extra) end
  local n = redis.call('PFCOUNT', scratch)
  redis.call('DEL', scratch)
  return n
end

-- exact distinct count over (low, hb], with `probe` (a value, or false) counted once
local function read_exact(hkey, zkey, hb, low, probe)
  local top = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if #top == 0 then
    return probe and 1 or 0
  end
  if tonumber(top[2]) <= hb then  -- nothing held after this event: count values whose latest is in range
    local n = redis.call('ZCOUNT', zkey, '(' .. int(low), '+inf')
    if probe then
      local last = redis.call('ZSCORE', zkey, probe)
      if not last or tonumber(last) <= low then n = n + 1 end
    end
    return n
  end
  local found, n = {}, 0  -- an out-of-order event: scan the (value, bucket) fields
  for _, f in ipairs(redis.call('HKEYS', hkey)) do
    local b, _, v = exact_field(f)
    if b and b > low and b <= hb and v ~= probe and not found[v] then
      found[v] = true
      n = n + 1
    end
  end
  return probe and n + 1 or n
end
"""

#: One event: KEYS = wm, seen, registry, scratch, then per feature its hash (and, for distinct, its
#: sorted set). ARGV = t_us, event id, fold (1/0), lateness µs, namespace TTL ms, distinct limit, the
#: features as one MessagePack array (per feature: kind, g µs, width, bucket, flag (0 nothing, 1 item,
#: 2 item and probe), item, TTL ms, sketch key prefix), then the signature ids to stamp in the registry
#: (sent about once a minute of event time). Returns {duplicate, late, aggregate per feature}.
EXCHANGE = (
    HELPERS
    + r"""
local t = tonumber(ARGV[1])
local lateness = tonumber(ARGV[4])
local limit = tonumber(ARGV[6])
local e = cmsgpack.unpack(ARGV[7])
local wm_text = redis.call('GET', KEYS[1])
local wm = wm_text and tonumber(wm_text)
local late = wm ~= false and t < wm - lateness
local dup = false
if wm then
  local seen = redis.call('ZSCORE', KEYS[2], ARGV[2])
  dup = seen ~= false and tonumber(seen) >= wm - lateness
end
local fold = ARGV[3] == '1' and not late and not dup
local out = {dup and 1 or 0, late and 1 or 0}
local k = 5
for a = 1, #e, 8 do
  local kind, g, width, hbs, flag, item = e[a], e[a + 1], e[a + 2], e[a + 3], e[a + 4], e[a + 5]
  local ttl, hll = e[a + 6], e[a + 7]
  local hb = tonumber(hbs)
  local low, oldest = hb - width, false
  if wm then
    oldest = idiv(wm - lateness, g) - width + 1
    if low < oldest - 1 then low = oldest - 1 end
  end
  local add = fold and flag ~= 0
  if kind ~= 8 then
    local key = KEYS[k]
    k = k + 1
    local aggregate, current = read_series(key, kind, hb, low, oldest)
    out[#out + 1] = aggregate
    if add then fold_series(key, kind, hbs, item, ttl, current) end
  else
    local hkey, zkey = KEYS[k], KEYS[k + 1]
    k = k + 2
    local probe = flag == 2 and not dup and item
    local meta = redis.call('HMGET', hkey, 'lo', 'sk')
    local lo, sketched = meta[1] and tonumber(meta[1]), meta[2]
    if oldest and lo and lo < oldest then lo = evict_distinct(hkey, zkey, hll, oldest) end
    if not sketched then
      out[#out + 1] = read_exact(hkey, zkey, hb, low, probe)
      if add then fold_distinct(hkey, zkey, hll, hbs, item, ttl, limit, lo, false) end
    elseif probe and add then  -- fold first: the union over the window then holds the event
      fold_distinct(hkey, zkey, hll, hbs, item, ttl, limit, lo, true)
      out[#out + 1] = union_count(sketch_keys(hkey, hll, hb, low), false, KEYS[4])
    else
      out[#out + 1] = union_count(sketch_keys(hkey, hll, hb, low), probe, KEYS[4])
      if add then fold_distinct(hkey, zkey, hll, hbs, item, ttl, limit, lo, true) end
    end
  end
end
if fold then
  local ns_ttl = ARGV[5]
  local now = wm_text
  if not wm or t > wm then
    redis.call('SET', KEYS[1], ARGV[1])
    now = ARGV[1]
  end
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. int(tonumber(now) - lateness))
  if #ARGV > 7 then
    local stamps = {}
    for j = 8, #ARGV do
      stamps[#stamps + 1] = ARGV[j]
      stamps[#stamps + 1] = now
    end
    redis.call('HSET', KEYS[3], unpack(stamps))
    redis.call('PEXPIRE', KEYS[3], ns_ttl)
  end
  redis.call('PEXPIRE', KEYS[1], ns_ttl)
  redis.call('PEXPIRE', KEYS[2], ns_ttl)
end
return out
"""
)

#: One logged event folded into some features (no watermark, no duplicate memory, nothing read).
#: KEYS = per feature its hash (and distinct's sorted set); ARGV = distinct limit, then the features as
#: one MessagePack array (per feature: kind, bucket, item, TTL ms, sketch key prefix).
BACKFILL = (
    HELPERS
    + r"""
local limit = tonumber(ARGV[1])
local e = cmsgpack.unpack(ARGV[2])
local k = 1
for a = 1, #e, 5 do
  local kind, hbs, item, ttl, hll = e[a], e[a + 1], e[a + 2], e[a + 3], e[a + 4]
  if kind ~= 8 then
    fold_series(KEYS[k], kind, hbs, item, ttl, nil)
    k = k + 1
  else
    local hkey, zkey = KEYS[k], KEYS[k + 1]
    k = k + 2
    local meta = redis.call('HMGET', hkey, 'lo', 'sk')
    fold_distinct(hkey, zkey, hll, hbs, item, ttl, limit, meta[1] and tonumber(meta[1]), meta[2])
  end
end
return 1
"""
)

#: One event taken back out. KEYS = seen, then per feature its hash (and distinct's sorted set);
#: ARGV = event id, then the features as one MessagePack array (per feature: kind, bucket, item).
RETRACT = (
    HELPERS
    + r"""
redis.call('ZREM', KEYS[1], ARGV[1])
local e = cmsgpack.unpack(ARGV[2])
local k = 2
for a = 1, #e, 3 do
  local kind, hbs, item = e[a], e[a + 1], e[a + 2]
  if kind ~= 8 then
    local key = KEYS[k]
    k = k + 1
    local n = redis.call('HGET', key, 'n' .. hbs)
    if n then
      if tonumber(n) <= 1 then  -- an emptied bucket goes; a min/max of a bucket that keeps others stays
        redis.call('HDEL', key, 'n' .. hbs, 'x' .. hbs)
      else
        redis.call('HINCRBY', key, 'n' .. hbs, -1)
        if kind == 2 or kind == 3 then
          local negated = string.sub(item, 1, 1) == '-' and string.sub(item, 2) or '-' .. item
          redis.call('HINCRBY', key, 'x' .. hbs, negated)
        end
      end
    end
  else  -- sketches cannot forget: a sketched key keeps the value until its bucket expires
    local hkey, zkey = KEYS[k], KEYS[k + 1]
    k = k + 2
    local field = hbs .. ':' .. item
    local n = redis.call('HGET', hkey, field)
    if n then
      if tonumber(n) > 1 then
        redis.call('HINCRBY', hkey, field, -1)
      else
        redis.call('HDEL', hkey, field)
        local latest = false
        for _, f in ipairs(redis.call('HKEYS', hkey)) do
          local b, _, v = exact_field(f)
          if b and v == item and (not latest or b > latest) then latest = b end
        end
        if latest then
          redis.call('ZADD', zkey, int(latest), item)
        else
          redis.call('ZREM', zkey, item)
        end
      end
    end
  end
end
return 1
"""
)

#: Deletes a lock only when its value is the caller's token.
RELEASE = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
