"""Which KIS server to talk to, with which credentials and limits.

With ``[sim] enabled = true`` the local simulator from ``[sim]`` with its own app keys (``[sim] keys``
of them, whatever the environment holds); otherwise the app keys from the environment
(``KIS_APP_KEY`` / ``KIS_APP_SECRET``, or ``KIS_APP_KEY_1`` / ``KIS_APP_SECRET_1``, ``_2``...: see
`observer.config.secrets`) and the real (or, with ``KIS_ACCOUNT=mock``, the mock) servers from
``[kis]``, and without them a `MissingCredentials` error: production never falls back to the
simulator. `resolve_kis_keys` gives one `KisSettings` per app key (each key has its own request
budget); `resolve_kis_settings` the first one, for what uses a single key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from observer.config import Config, Secret, Secrets, require_source


@dataclass(frozen=True)
class KisSettings:
    rest_url: str
    ws_url: str
    master_url: str
    app_key: Secret
    app_secret: Secret
    account: Literal["real", "mock"]
    rate_limit_per_s: float
    request_timeout_s: float
    simulated: bool
    key_index: int = 1  # which app key (1-based): how logs and stats name it, never by its value

    @property
    def multiprice_available(self) -> bool:
        """`intstock-multprice` exists on real accounts only (the mock server lacks it)."""
        return self.account == "real"


def resolve_kis_keys(cfg: Config, secrets: Secrets) -> list[KisSettings]:
    """The KIS endpoints and request rate for this configuration and environment, once per app
    key, in key order (at least one; `MissingCredentials` when production has none)."""
    kis = cfg.kis
    if not cfg.sim.enabled:
        require_source(cfg, secrets)
        account = secrets.kis_account
        real = account == "real"
        return [
            KisSettings(
                rest_url=(kis.rest_url if real else kis.mock_rest_url).rstrip("/"),
                ws_url=kis.ws_url if real else kis.mock_ws_url,
                master_url=kis.master_url.rstrip("/"),
                app_key=app_key,
                app_secret=app_secret,
                account=account,
                rate_limit_per_s=kis.rate_limit_per_s if real else kis.mock_rate_limit_per_s,
                request_timeout_s=kis.request_timeout_s,
                simulated=False,
                key_index=n,
            )
            for n, (app_key, app_secret) in enumerate(secrets.kis_keys, start=1)
        ]
    sim = cfg.sim
    rest_url = f"http://{sim.host}:{sim.rest_port}"
    return [
        KisSettings(
            rest_url=rest_url,
            ws_url=f"ws://{sim.host}:{sim.ws_port}",
            master_url=f"{rest_url}/master",
            app_key=Secret(app_key),
            app_secret=Secret(app_secret),
            account=sim.account,
            rate_limit_per_s=kis.rate_limit_per_s if sim.account == "real" else kis.mock_rate_limit_per_s,
            request_timeout_s=kis.request_timeout_s,
            simulated=True,
            key_index=n,
        )
        for n, (app_key, app_secret) in enumerate(sim.accounts(), start=1)
    ]


def resolve_kis_settings(cfg: Config, secrets: Secrets) -> KisSettings:
    """The first app key's settings (what the WebSocket side uses: one key)."""
    return resolve_kis_keys(cfg, secrets)[0]
