-- A running attempt whose lease expired: re-queue it, or end it. See RedisJobStore.reap.
-- Returns 'requeued' | 'failed' | 'cancelled' | 'alive' | 'skip'.
local status = redis.call('HGET', JOB, 'status')
local attempts = redis.call('HGET', JOB, 'attempts')
if status ~= 'running' or attempts ~= tostring(P.attempt) then return 'skip' end
if redis.call('EXISTS', LEASE) == 1 then return 'alive' end
local stamp = {updated_at = P.now_iso}
if redis.call('HGET', JOB, 'cancel_requested') == '1' then
  stamp.finished_at = P.now_iso; stamp.error = P.cancel_reason
  move('running', 'cancelled', stamp)
  return 'cancelled'
end
if tonumber(attempts) >= P.max_attempts then
  stamp.finished_at = P.now_iso; stamp.error = P.exhausted_reason
  move('running', 'failed', stamp)
  return 'failed'
end
stamp.error = P.lost_reason
stamp.queued_ts = string.format('%.6f', now())
move('running', 'queued', stamp)
return 'requeued'
