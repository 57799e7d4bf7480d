-- Shared by every job store script (loaded in front of each).
-- Every script gets the same first keys and one JSON argument (P), decoded here:
-- KEYS[1] job hash, [2] all-jobs index, [3] lease, [4] webhook outbox, [5] duration histogram,
-- [6..11] status indexes in STATUSES order; script-specific keys follow.

local P = cjson.decode(ARGV[1])
local JOB, ALL, LEASE, OUTBOX, HIST = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local INDEX = {queued = KEYS[6], running = KEYS[7], succeeded = KEYS[8], failed = KEYS[9],
               cancelled = KEYS[10], timed_out = KEYS[11]}
local FINAL = {succeeded = true, failed = true, cancelled = true, timed_out = true}
local TTL = tonumber(P.ttl)

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function keep(key) redis.call('EXPIRE', key, TTL) end

local function hset(fields)
  local flat = {}
  for k, v in pairs(fields) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  if #flat > 0 then redis.call('HSET', JOB, unpack(flat)) end
end

-- Move the job from status `current` to `new`, setting `fields`; a final status also ends
-- the lease, queues the webhook (if any) and counts the duration.
local function move(current, new, fields)
  local id = redis.call('HGET', JOB, 'id')
  local score = redis.call('HGET', JOB, 'order')
  if current ~= new then redis.call('ZREM', INDEX[current], id) end
  redis.call('ZADD', INDEX[new], score, id)
  redis.call('ZADD', ALL, score, id)
  fields.status = new
  hset(fields)
  keep(JOB); keep(ALL); keep(INDEX[new])
  if FINAL[new] then
    redis.call('DEL', LEASE)
    local t = now()
    local callback = redis.call('HGET', JOB, 'callback_url')
    if callback and callback ~= '' then
      redis.call('ZADD', OUTBOX, t, id); keep(OUTBOX)
    end
    local started = tonumber(redis.call('HGET', JOB, 'started_ts') or '')
    if started then
      local d = math.max(0, t - started)
      for _, b in ipairs(P.buckets) do
        if d <= b[1] then redis.call('HINCRBY', HIST, new .. '|' .. b[2], 1) end
      end
      redis.call('HINCRBY', HIST, new .. '|+Inf', 1)
      redis.call('HINCRBYFLOAT', HIST, new .. '|sum', string.format('%.6f', d))
      keep(HIST)
    end
  end
  redis.call('PUBLISH', P.channel, new)
end

-- Record a delivery's state (the webhook's, an MLflow export's) in the job's hash ``field``, and
-- keep (P.pending) or drop its entry in ``outbox``. 1, or 0: the job is gone (nothing recorded).
local function record_delivery(field, outbox)
  if redis.call('EXISTS', JOB) == 0 then
    redis.call('ZREM', outbox, P.id)
    return 0
  end
  redis.call('HSET', JOB, field, P.state)
  keep(JOB)
  if P.pending then
    redis.call('ZADD', outbox, now(), P.id); keep(outbox)
  else
    redis.call('ZREM', outbox, P.id)
  end
  return 1
end
