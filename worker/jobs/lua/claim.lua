-- Start an attempt, atomically with its lease. See RedisJobStore.claim.
-- Returns {'started', attempt} | {'missing'} | {'final', status} | {'cancelled'} |
-- {'busy', lease} | {'exhausted', attempts}.
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if FINAL[status] then return {'final', status} end
local stamp = {updated_at = P.now_iso, finished_at = P.now_iso}
if redis.call('HGET', JOB, 'cancel_requested') == '1' then
  stamp.error = P.cancel_reason
  move(status, 'cancelled', stamp)
  return {'cancelled'}
end
if status == 'running' then
  local lease = redis.call('GET', LEASE)
  if lease and lease ~= P.replace then return {'busy', lease} end
end
local attempts = tonumber(redis.call('HGET', JOB, 'attempts') or '0')
if attempts >= P.max_attempts then
  stamp.error = P.exhausted_reason
  move(status, 'failed', stamp)
  return {'exhausted', tostring(attempts)}
end
attempts = redis.call('HINCRBY', JOB, 'attempts', 1)
move(status, 'running', {started_at = P.now_iso, updated_at = P.now_iso, worker = P.worker,
                         progress = 'null', error = '',
                         started_ts = string.format('%.6f', now())})
redis.call('SET', LEASE, P.holder .. '|' .. attempts, 'PX', P.lease_ms)
return {'started', tostring(attempts)}
