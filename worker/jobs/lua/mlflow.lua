-- Record MLflow export state. KEYS[12] the exports' outbox; P.pending: keep (true) or drop
-- (false) the job's entry there. Returns 1, or 0: the job is gone (nothing recorded).
return record_delivery('mlflow', KEYS[12])
