"""Track B feed state as the ws-collector reports it on the ingest hop, for the sampler's output.

* ``ws_disconnected`` (every failed session or attempt): the feed is down from that event's time;
  samples of windows starting after it carry ``quality_flag: "gap"`` — they repeat the last state
  while nothing could be received, and the outage's gap marker follows when the feed is back.
* ``ws_failure`` (CRITICAL, after ``track_b.pause_after_failure_s`` of consecutive failure): scalp
  recording pauses — samples are not written (they still count as expected, so the collection rate
  shows the failure) until a data frame arrives again.
* any data frame: the feed is up.
"""

from __future__ import annotations

from datetime import datetime

from observer.schema import GapMarker, SystemEvent

WS_PRODUCER_SOURCE = "ws-collector"


class FeedState:
    def __init__(self) -> None:
        self.down_since: datetime | None = None
        self.paused = False

    def observe(self, event: SystemEvent | GapMarker) -> None:
        if not isinstance(event, SystemEvent) or event.source != WS_PRODUCER_SOURCE:
            return
        if event.type == "ws_disconnected" and self.down_since is None:
            self.down_since = event.at
        elif event.type == "ws_failure":
            self.paused = True
            if self.down_since is None:
                self.down_since = event.at

    def frame_arrived(self) -> None:
        self.down_since = None
        self.paused = False

    def is_gap(self, window_start: datetime) -> bool:
        return self.down_since is not None and window_start >= self.down_since
