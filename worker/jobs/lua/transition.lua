-- Generic transition (finish, legacy start). Returns {'ok', old} | {'missing'} |
-- {'conflict', current} | {'stale', current, attempts}.
local current = redis.call('HGET', JOB, 'status')
if not current then return {'missing'} end
local allowed = false
for _, s in ipairs(P.from) do if s == current then allowed = true end end
if not allowed then return {'conflict', current} end
local attempts = redis.call('HGET', JOB, 'attempts')
if P.attempt and tostring(P.attempt) ~= attempts then return {'stale', current, attempts} end
if P.count_attempt then redis.call('HINCRBY', JOB, 'attempts', 1) end
move(current, P.new, P.fields)
return {'ok', current}
