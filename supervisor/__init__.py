"""The process supervisor: starts each worker as its own interpreter, watches heartbeats,
restarts with backoff, declares FATAL on flapping, runs the event forwarder and control socket."""
