-- Append a job to a sweep point. KEYS[1] sweep hash; KEYS[2] index.
-- ARGV: ttl, field, job id, now. Returns 1, or 0: no sweep.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ids = redis.call('HGET', KEYS[1], ARGV[2])
if ids and ids ~= '' then ids = ids .. ' ' .. ARGV[3] else ids = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[2], ids, 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
