"""Which KIS server to talk to, with which credentials and limits.

With ``[sim] enabled = true`` the local simulator from ``[sim]`` with its own app key (whatever the
environment holds); otherwise ``KIS_APP_KEY`` / ``KIS_APP_SECRET`` from the environment and the real
(or, with ``KIS_ACCOUNT=mock``, the mock) servers from ``[kis]``, and without them a
`MissingCredentials` error: production never falls back to the simulator. Either way the rest of
the code sees one `KisSettings`.
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

    @property
    def multiprice_available(self) -> bool:
        """`intstock-multprice` exists on real accounts only (the mock server lacks it)."""
        return self.account == "real"


def resolve_kis_settings(cfg: Config, secrets: Secrets) -> KisSettings:
    """The KIS endpoints, credentials and request rate for this configuration and environment."""
    kis = cfg.kis
    if not cfg.sim.enabled:
        require_source(cfg, secrets)
        account = secrets.kis_account
        real = account == "real"
        return KisSettings(
            rest_url=(kis.rest_url if real else kis.mock_rest_url).rstrip("/"),
            ws_url=kis.ws_url if real else kis.mock_ws_url,
            master_url=kis.master_url.rstrip("/"),
            app_key=secrets.kis_app_key,
            app_secret=secrets.kis_app_secret,
            account=account,
            rate_limit_per_s=kis.rate_limit_per_s if real else kis.mock_rate_limit_per_s,
            request_timeout_s=kis.request_timeout_s,
            simulated=False,
        )
    sim = cfg.sim
    rest_url = f"http://{sim.host}:{sim.rest_port}"
    return KisSettings(
        rest_url=rest_url,
        ws_url=f"ws://{sim.host}:{sim.ws_port}",
        master_url=f"{rest_url}/master",
        app_key=Secret(sim.app_key),
        app_secret=Secret(sim.app_secret),
        account=sim.account,
        rate_limit_per_s=kis.rate_limit_per_s if sim.account == "real" else kis.mock_rate_limit_per_s,
        request_timeout_s=kis.request_timeout_s,
        simulated=True,
    )
