-- Renew the lease of a running attempt. Returns 'ok' | 'cancel' | 'lost'.
if redis.call('HGET', JOB, 'status') ~= 'running'
   or redis.call('HGET', JOB, 'attempts') ~= tostring(P.attempt) then
  return 'lost'
end
redis.call('SET', LEASE, P.lease, 'PX', P.lease_ms)
keep(JOB)
if redis.call('HGET', JOB, 'cancel_requested') == '1' then return 'cancel' end
return 'ok'
