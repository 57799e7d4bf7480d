-- Delete a final job. KEYS[12..] the indexes beside the status ones: the owner's (or the
-- all-jobs index), the sweep's and the tags'.
-- Returns {'deleted'} | {'missing'} | {'conflict', status}.
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if not FINAL[status] then return {'conflict', status} end
local id = redis.call('HGET', JOB, 'id')
for _, key in pairs(INDEX) do redis.call('ZREM', key, id) end
redis.call('ZREM', ALL, id); redis.call('ZREM', OUTBOX, id)
for i = 12, #KEYS do redis.call('ZREM', KEYS[i], id) end
redis.call('DEL', JOB, LEASE)
redis.call('PUBLISH', P.channel, 'deleted')
return {'deleted'}
