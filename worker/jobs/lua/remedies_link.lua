-- End a remedies launch. KEYS[1] link; KEYS[2] launch lock. ARGV: ttl, token, sweep id ('' :
-- the launch failed, link nothing). The link is written even if the lock expired meanwhile:
-- the sweep exists, and losing track of it would launch it again. Returns 1 when the lock
-- was still this launch's.
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1]) end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
