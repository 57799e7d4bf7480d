-- Flag the job for cancellation; a queued job is cancelled at once.
-- Returns {'missing'} | {'conflict', status} | {'cancelled'} | {'requested', status}.
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if FINAL[status] then return {'conflict', status} end
hset({cancel_requested = '1', cancel_requested_at = P.now_iso, updated_at = P.now_iso})
keep(JOB)
if status == 'queued' then
  move('queued', 'cancelled', {finished_at = P.now_iso, error = P.queued_reason})
  return {'cancelled'}
end
redis.call('PUBLISH', P.channel, 'cancel')
return {'requested', status}
