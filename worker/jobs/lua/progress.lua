-- Store the progress of a running attempt. Returns 1, or 0: not this attempt's job.
if redis.call('HGET', JOB, 'status') ~= 'running' then return 0 end
if redis.call('HGET', JOB, 'attempts') ~= tostring(P.attempt) then return 0 end
hset({progress = P.progress, updated_at = P.now_iso})
keep(JOB); keep(ALL); keep(INDEX.running)
redis.call('PUBLISH', P.channel, 'progress')
return 1
