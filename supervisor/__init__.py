"""The process supervisor (`observer run`): the only parent of every worker.

Data flow::

    observer run -> Supervisor (supervisor.py): lock the runtime dir (lock.py), run the event
        Forwarder, start one Watcher (watcher.py) per worker; each Watcher owns a state machine
        (states.py) and a WorkerProcess (process.py) = `python -m observer worker NAME`
    event bus  heartbeat.*  -> Watcher.heartbeat (silence -> kill + restart)
               slots / mitigation / stats.* -> BusView (view.py) for `ctl status`
    every state transition -> JSON log line + SystemEvent: ReliableSender -> ingest (archived
        in system/) and PUB topic `supervisor.state`
    observer ctl ... (cli.py) -> observer.control.ControlClient REQ -> control REP (control.py,
        the server side) -> Supervisor;
        pin/unpin -> Command on topic `ctl.observer` (the core acts on it)
"""
