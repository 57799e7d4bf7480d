-- Record webhook delivery state; P.pending: keep (true) or drop (false) the outbox entry.
-- Returns 1, or 0: the job is gone.
if redis.call('EXISTS', JOB) == 0 then
  redis.call('ZREM', OUTBOX, P.id)
  return 0
end
redis.call('HSET', JOB, 'webhook', P.state)
keep(JOB)
if P.pending then
  redis.call('ZADD', OUTBOX, now(), P.id); keep(OUTBOX)
else
  redis.call('ZREM', OUTBOX, P.id)
end
return 1
