"""A job's data: arrays in memory and deterministic batching (``arrays``), data files by
format (``formats``), the local download cache (``cache``), prefixes of shards streamed
one at a time (``shards``). The order of batches is a pure function of (seed, epoch, step)."""
