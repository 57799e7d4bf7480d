-- Record webhook delivery state; P.pending: keep (true) or drop (false) the outbox entry.
-- Returns 1, or 0: the job is gone.
return record_delivery('webhook', OUTBOX)
