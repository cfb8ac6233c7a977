"""Operations beside the API: the lease reaper that notices dead workers and requeues their
jobs, the reader of broker queue depths, and the fleet's Prometheus figures."""
