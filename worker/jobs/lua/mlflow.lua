-- Record MLflow export state. KEYS[12] the exports' outbox; P.pending: keep (true) or drop
-- (false) the job's entry there. Returns 1, or 0: the job is gone (nothing recorded).
local MLFLOW_OUTBOX = KEYS[12]
if redis.call('EXISTS', JOB) == 0 then
  redis.call('ZREM', MLFLOW_OUTBOX, P.id)
  return 0
end
redis.call('HSET', JOB, 'mlflow', P.state)
keep(JOB)
if P.pending then
  redis.call('ZADD', MLFLOW_OUTBOX, now(), P.id); keep(MLFLOW_OUTBOX)
else
  redis.call('ZREM', MLFLOW_OUTBOX, P.id)
end
return 1
