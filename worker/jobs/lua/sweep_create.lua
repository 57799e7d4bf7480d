-- Store a new sweep. KEYS[1] sweep hash; KEYS[2] index. ARGV: ttl, id, field/value pairs.
-- Returns the order.
local now = redis.call('TIME')
local order = tonumber(now[1]) * 1000000 + tonumber(now[2])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= order then order = tonumber(top[2]) + 1 end
order = string.format('%.0f', order)
local fields = {'order', order}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], order, ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return order
