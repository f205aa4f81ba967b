"""KIS real-time trades (``H0STCNT0``) as a `collectors.providers.IRealtimeStream`.

Ties the KIS pieces of Track B together behind the provider interface: the approval key
(`approval`), one WebSocket session at a time per app key (`ws.WsSession`), the registrations of a session and
what each KIS ack code means (`subscriptions`), and the frame formats (`ws_parser`). The WS
collector never imports this module; `collectors.providers.build_stream` does.
"""

from __future__ import annotations

from datetime import datetime

from collectors.kis.approval import ApprovalKeyProvider
from collectors.kis.settings import KisSettings, resolve_kis_keys
from collectors.kis.subscriptions import SubscriptionManager, request_text
from collectors.kis.ws import WsSession
from collectors.kis.ws_parser import ParsedFrame, parse_control_frame, parse_data_frame
from collectors.providers import (
    ControlOutcome,
    IParsedFrame,
    IRealtimeStream,
    IStreamSession,
    SessionWiring,
)
from observer.config import Config, Secrets, TrackBConfig

TR_ID = "H0STCNT0"  # KRX real-time trades


class KisStream:
    """See the module docstring."""

    name = "kis"

    def __init__(self, settings: KisSettings, tb: TrackBConfig):
        self.settings = settings
        self.key_index = settings.key_index
        self.url = settings.ws_url
        self.approval = ApprovalKeyProvider(settings)
        self.subscriptions = SubscriptionManager(
            max_registrations=tb.max_slots,
            tr_id=TR_ID,
            ack_timeout_s=tb.ack_timeout_s,
            cap_backoff_s=tb.cap_backoff_s,
            silent_after_s=tb.silent_symbol_s,
        )

    @classmethod
    def each_from_config(cls, cfg: Config, secrets: Secrets) -> list[KisStream]:
        """One stream per app key, in key order: each key has its own session and 41 registrations."""
        return [cls(settings, cfg.track_b) for settings in resolve_kis_keys(cfg, secrets)]

    def open_session(self, session_id: int, wiring: SessionWiring) -> WsSession:
        return WsSession(session_id, self.url, self.approval, wiring)

    def request_texts(self, now: float) -> list[str]:
        key = self.approval.cached
        if key is None:
            return []  # the session's thread fetches the key before it connects
        return [request_text(key, TR_ID, req) for req in self.subscriptions.next_requests(now)]

    def parse_data(self, text: str, received_at: datetime) -> ParsedFrame:
        return parse_data_frame(text, received_at)

    def on_control(self, data: bytes, now: float) -> ControlOutcome:
        ctl = parse_control_frame(data)
        if ctl.kind == "pingpong":
            return ControlOutcome("pingpong")
        if ctl.kind == "invalid":
            return ControlOutcome("invalid", message=ctl.error)
        return self.subscriptions.handle_ack(ctl, now)

    def invalidate_credentials(self) -> None:
        self.approval.invalidate()

    def close(self) -> None:
        self.approval.close()


def _conforms(stream: KisStream, session: WsSession, frame: ParsedFrame) -> None:
    """Never called: mypy checks here that the KIS types satisfy the provider interface."""
    as_stream: IRealtimeStream = stream
    as_session: IStreamSession = session
    as_frame: IParsedFrame = frame
    del as_stream, as_session, as_frame
