"""Ground truth: a protocol-following client receives exactly what was published; REST == WS."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import requests
from click.testing import CliRunner

from collectors.kis_sim.cli import sim as sim_cli
from observer.clock import ManualClock
from tests.collectors.kis_sim.conftest import (
    MONDAY_0900,
    Feed,
    Kis,
    SimFactory,
    busy_codes,
    split_frame,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]


def test_clean_run_client_receives_exactly_the_truth(make_sim: SimFactory) -> None:
    sim = make_sim()
    codes = busy_codes(sim, 5)
    feed = Feed(sim, Kis(sim).approval())
    got: dict[str, list[tuple[int, int]]] = {c: [] for c in codes}
    for code in codes:
        feed.send("1", "H0STCNT0", code)
        while (text := feed.recv()) and not text.startswith("{"):  # earlier symbols' data: kept
            for r in split_frame(text)[3]:
                got[r[0]].append((int(r[12]), int(r[13])))
        assert json.loads(text)["body"]["msg_cd"] == "OPSP0000"
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        text = feed.recv()
        if text.startswith("{"):
            continue
        for r in split_frame(text)[3]:
            got[r[0]].append((int(r[12]), int(r[13])))
    for code in codes:
        feed.send("2", "H0STCNT0", code)
    acks = 0
    while acks < len(codes):
        text = feed.recv()
        if text.startswith("{"):
            assert json.loads(text)["body"]["msg_cd"] == "OPSP0001"
            acks += 1
        else:
            for r in split_frame(text)[3]:
                got[r[0]].append((int(r[12]), int(r[13])))
    truth = sim.truth()
    session = truth.sessions[0]
    for code in codes:
        records = got[code]
        published = session.symbols[code]
        assert len(records) == published.published_records > 20
        assert sum(v for v, _ in records) == published.published_volume
        assert records[0][1] == published.first_acml_vol and records[-1][1] == published.last_acml_vol
        for (_, prev), (vol, acml) in itertools.pairwise(records):
            assert acml == prev + vol  # no hole: cumulative volume is continuous
        assert truth.symbols[code].published_records == len(records)
        assert truth.symbols[code].market_acml_vol >= published.last_acml_vol
        per_trade = sim.trades([code]).symbols[code]  # the per-trade ground truth
        assert per_trade.acml_vol == [acml for _, acml in records] and not per_trade.damaged_acml_vol
        assert len(per_trade.at_ms) == len(records) and per_trade.at_ms == sorted(per_trade.at_ms)
    feed.close()


def test_rest_and_ws_agree(make_sim: SimFactory) -> None:
    virtual = ManualClock(MONDAY_0900)
    sim = make_sim(clock=virtual)
    code = busy_codes(sim, 1)[0]
    kis = Kis(sim)
    kis.get_token()
    feed = Feed(sim, kis.approval())
    feed.send("1", "H0STCNT0", code)
    feed.next_json()
    virtual.advance(20)
    last: list[str] = []
    n_records = 0

    def drained() -> bool:
        nonlocal last, n_records
        q = sim.market.quote(code)
        assert q is not None
        while n_records < q.trades:
            text = feed.recv()
            if text.startswith("{"):
                continue
            recs = split_frame(text)[3]
            n_records += len(recs)
            last = recs[-1]
            if int(last[13]) == q.acml_vol:
                return True
        return bool(last) and int(last[13]) == q.acml_vol

    wait_for(drained, what="feed caught up with the market")
    out = kis.price(code).json()["output"]
    assert out["acml_vol"] == last[13] and out["stck_prpr"] == last[2] and out["acml_tr_pbmn"] == last[14]
    assert out["stck_hgpr"] == last[8] and out["stck_lwpr"] == last[9] and out["stck_oprc"] == last[7]
    row = kis.get(
        "intstock-multprice", "FHKST11300006", {"FID_COND_MRKT_DIV_CODE_1": "J", "FID_INPUT_ISCD_1": code}
    ).json()["output"][0]
    assert row["acml_vol"] == last[13] and row["inter2_prpr"] == last[2]
    feed.close()
    wait_for(lambda: not sim.ws.sessions(), what="session closed")
    virtual.advance(timedelta(hours=8).total_seconds())  # after the close: frozen
    assert "090020" < kis.price(code).json()["output"]["stck_cntg_hour"] < "153000"


def test_cli_fault_and_truth(make_sim: SimFactory) -> None:
    sim = make_sim()
    runner = CliRunner()
    result = runner.invoke(
        sim_cli, ["fault", "silence", "--admin", sim.urls["admin"], "--symbols", "000010", "--duration", "5"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "silence"
    result = runner.invoke(sim_cli, ["fault", "clear", "--admin", sim.urls["admin"]])
    assert result.exit_code == 0 and json.loads(result.output)[0]["end"] is not None
    result = runner.invoke(sim_cli, ["truth", "--admin", sim.urls["admin"]])
    assert result.exit_code == 0 and json.loads(result.output)["faults"][0]["kind"] == "silence"
    result = runner.invoke(sim_cli, ["truth", "--admin", "http://127.0.0.1:9"])
    assert result.exit_code != 0 and "unreachable" in result.output


def test_serve_process_ready_line_and_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "OBSERVER_CONFIG": str(tmp_path / "none.toml")}
    env.pop("OBSERVER_CONFIG")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collectors.kis_sim",
            "serve",
            "--rest-port",
            "0",
            "--ws-port",
            "0",
            "--admin-port",
            "0",
            "--symbols",
            "200",
            "--speed",
            "10",
            "--start-at",
            "2026-01-05T09:00:00+09:00",
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert line["event"] == "ready" and line["virtual_now"].startswith("2026-01-05T09:00")
        assert json.loads(wait_for(lambda: ready.exists() and ready.read_text(), what="ready file")) == line
        health = requests.get(line["urls"]["admin"] + "/admin/health", timeout=5).json()
        assert health["market_open"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert '"stopped"' in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_honours_the_top_level_config(tmp_path: Path) -> None:
    """`observer --config X sim serve` reads X (it used to read only `sim serve --config X`)."""
    from testkit.config import write_config
    from tests.conftest import free_port

    admin_port = free_port()
    cfg = write_config(
        tmp_path,
        f"[sim]\nenabled = true\nrest_port = 0\nws_port = 0\nadmin_port = {admin_port}\nsymbol_count = 150\n",
    )
    env = {k: v for k, v in os.environ.items() if k != "OBSERVER_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg), "sim", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert line["event"] == "ready"
        assert line["urls"]["admin"] == f"http://127.0.0.1:{admin_port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
