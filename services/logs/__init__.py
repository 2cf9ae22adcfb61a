"""The log collector: every platform container's stdout and stderr, line by line, onto NATS.

It follows each container of this instance from its first line, publishes its
lines in batches (one `LogBatch` message per run of consecutive lines) to the
task's subject on the LOGS stream and keeps a cursor per container, so a
restart of the collector, NATS or dockerd neither loses nor repeats a line.
The deployer waits for a cursor's `done` before it removes an exited container.
"""
