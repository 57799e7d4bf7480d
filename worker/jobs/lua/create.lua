-- Record a new queued job.
-- KEYS[12] owner index (unused when P.owner is ''); KEYS[13] idempotency key (unused when
-- P.fingerprint is ''); KEYS[14] the broker list of the job's queue (unused when P.message is
-- ''); KEYS[15..] the job's sweep and tag indexes.
-- P.message: the run task's broker message (worker/jobs/task_message.py), pushed as kombu
-- pushes it, so that the job and its task are written together or not at all.
-- Returns {'created', order} | {'replay', id} | {'mismatch', id} | {'quota', count}.
if P.fingerprint ~= '' then
  local prev = redis.call('GET', KEYS[13])
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    local fingerprint, job = string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)
    if redis.call('EXISTS', P.job_prefix .. job) == 1 then
      if fingerprint == P.fingerprint then return {'replay', job} end
      return {'mismatch', job}
    end
  end
end
if P.owner ~= '' and P.max_active > 0 then
  local active = redis.call('ZINTERCARD', 2, KEYS[12], INDEX.queued, 'LIMIT', P.max_active)
  if active < P.max_active then
    active = active + redis.call('ZINTERCARD', 2, KEYS[12], INDEX.running,
                                 'LIMIT', P.max_active)
  end
  if active >= P.max_active then return {'quota', tostring(active)} end
end
local tm = redis.call('TIME')
local order = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local top = redis.call('ZREVRANGE', ALL, 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= order then order = tonumber(top[2]) + 1 end
order = string.format('%.0f', order)
local fields = P.fields
fields.order = order
fields.queued_ts = string.format('%.6f', now())
hset(fields)
keep(JOB)
for _, key in ipairs({ALL, INDEX.queued}) do
  redis.call('ZADD', key, order, fields.id); keep(key)
end
if P.owner ~= '' then redis.call('ZADD', KEYS[12], order, fields.id); keep(KEYS[12]) end
for i = 15, #KEYS do redis.call('ZADD', KEYS[i], order, fields.id); keep(KEYS[i]) end
if P.fingerprint ~= '' then
  redis.call('SET', KEYS[13], P.fingerprint .. ' ' .. fields.id, 'EX', P.idempotency_ttl)
end
if P.message ~= '' then redis.call('LPUSH', KEYS[14], P.message) end
redis.call('PUBLISH', P.channel, 'queued')
return {'created', order}
