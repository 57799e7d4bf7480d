-- A queued job the broker lost is sent again: note the time, unless it moved meanwhile.
-- Returns 1, or 0: the job moved on.
if redis.call('HGET', JOB, 'status') ~= 'queued' then return 0 end
if redis.call('HGET', JOB, 'queued_ts') ~= P.queued_ts then return 0 end
redis.call('HSET', JOB, 'queued_ts', string.format('%.6f', now()))
return 1
