-- Delete a final job. KEYS[12] the owner's index.
-- Returns {'deleted'} | {'missing'} | {'conflict', status}.
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if not FINAL[status] then return {'conflict', status} end
local id = redis.call('HGET', JOB, 'id')
for _, key in pairs(INDEX) do redis.call('ZREM', key, id) end
for _, key in ipairs({ALL, OUTBOX, KEYS[12]}) do redis.call('ZREM', key, id) end
redis.call('DEL', JOB, LEASE)
redis.call('PUBLISH', P.channel, 'deleted')
return {'deleted'}
