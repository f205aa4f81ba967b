"""``observer replay`` and ``observer tap`` (argument parsing only; the work is in the modules)."""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import click

from observer.bus import BusError, Endpoints
from observer.clock import KST
from observer.config import data_dir
from observer.days import day_option

TIME_HELP = "HH:MM[:SS] on --day, or YYYY-MM-DDTHH:MM[:SS] (KST unless it carries an offset)"


def parse_time(text: str, day: date | None) -> datetime:
    try:
        if "T" in text or " " in text.strip():
            at = datetime.fromisoformat(text)
            return at.replace(tzinfo=KST) if at.tzinfo is None else at
        if day is None:
            raise click.BadParameter(f"{text!r} needs --day (or give a full date and time)")
        return datetime.combine(day, time.fromisoformat(text), KST)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected {TIME_HELP}") from None


def parse_speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text.rstrip("xX"))
    except ValueError:
        raise click.BadParameter(f"--speed {text!r}: a number (1, 10, 0.5) or 'max'") from None
    if speed <= 0:
        raise click.BadParameter("--speed must be > 0")
    return speed


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip() for item in values for v in item.split(",") if v.strip())


def _fail(message: str) -> None:
    click.echo(f"observer replay: {message}", err=True)
    sys.exit(2)


@click.command("replay")
@click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    help="archive to read (read-only; default: the configured one)",
)
@click.option("--day", help="the trading day (YYYY-MM-DD or YYYYMMDD), the whole day unless --from/--to")
@click.option("--from", "from_", help=f"start of the range: {TIME_HELP}")
@click.option("--to", help=f"end of the range (exclusive): {TIME_HELP}")
@click.option("--tracks", multiple=True, help="swing,scalp,raw,system,overflow,metrics (default: all)")
@click.option(
    "--symbols", multiple=True, help="only these symbols (swing, scalp and the raw frames naming them)"
)
@click.option("--market", multiple=True, help="only these markets (path component, e.g. KOSPI, KRX)")
@click.option("--speed", default="1", show_default=True, help="1 = as recorded, N = N times faster, max")
@click.option("--endpoint", help="publish here instead of the configured replay_feed endpoint")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait for a subscriber first")
@click.option("--wait-timeout", type=float, default=None, help="give up waiting after this many seconds")
@click.option("--quiet", is_flag=True, help="no progress line")
@click.option("--rederive", is_flag=True, help="re-derive the day through a fresh core and writer into --out")
@click.option("--out", type=click.Path(path_type=Path), help="--rederive: the new archive directory")
@click.pass_context
def replay_cmd(
    ctx: click.Context,
    data: Path | None,
    day: str | None,
    from_: str | None,
    to: str | None,
    tracks: tuple[str, ...],
    symbols: tuple[str, ...],
    market: tuple[str, ...],
    speed: str,
    endpoint: str | None,
    wait: bool,
    wait_timeout: float | None,
    quiet: bool,
    rederive: bool,
    out: Path | None,
) -> None:
    """Publish a recorded range on a feed endpoint, exactly as the live feed (flag `replay`)."""
    from observer.cli import config_of
    from observer.replay.pacing import Pacer, install_signal_pause
    from observer.replay.progress import ProgressBar
    from observer.replay.publisher import replay
    from observer.replay.reader import TRACKS, ReplayError, Selection

    cfg = config_of(ctx)
    the_day = day_option(day) if day else None
    if the_day is None and not (from_ and to):
        raise click.UsageError("give --day, or --from and --to")
    start = parse_time(from_, the_day) if from_ else datetime.combine(the_day, time(), KST)  # type: ignore[arg-type]
    end = parse_time(to, the_day) if to else datetime.combine(the_day, time(), KST) + timedelta(days=1)  # type: ignore[arg-type]
    if end <= start:
        raise click.BadParameter("--to must be after --from")
    chosen = _split(tracks) or frozenset(TRACKS)
    if unknown := chosen - set(TRACKS):
        raise click.BadParameter(f"unknown track(s) {sorted(unknown)}; known: {', '.join(TRACKS)}")
    root = data or data_dir(cfg)
    pacing = parse_speed(speed)
    if rederive:
        from observer.replay.rederive import RederiveError, rederive_day

        if the_day is None or out is None:
            raise click.UsageError("--rederive needs --day and --out")
        # a re-derivation feeds a fresh core the whole day's inputs (its slot table and samplers
        # need everything before any moment): a narrower selection would be silently ignored
        ignored = [
            name
            for name, given in (
                ("--from", from_),
                ("--to", to),
                ("--tracks", tracks),
                ("--symbols", symbols),
                ("--market", market),
                ("--endpoint", endpoint),
            )
            if given
        ]
        if ignored:
            raise click.UsageError(
                f"--rederive re-derives the whole recorded day; {', '.join(ignored)} cannot narrow it"
            )
        try:
            summary = rederive_day(cfg, root, the_day, out, speed=pacing or 1.0, quiet=quiet)
        except RederiveError as e:
            _fail(str(e))
        click.echo(summary, err=True)
        return
    sel = Selection(root, start, end, chosen, _split(symbols), _split(market))
    address = endpoint or Endpoints(cfg)["replay_feed"]
    pacer = Pacer(pacing)
    install_signal_pause(pacer)
    bar = ProgressBar(sel, sys.stderr, pacing) if sys.stderr.isatty() and not quiet else None
    try:
        result = replay(
            cfg,
            sel,
            address,
            pacer,
            wait=wait,
            wait_s=wait_timeout,
            progress=bar,
            on_waiting=None if quiet else lambda a: click.echo(f"waiting for a subscriber on {a}", err=True),
        )
    except (ReplayError, BusError) as e:  # BusError: the endpoint is taken (another replay?)
        _fail(str(e))
        return
    except KeyboardInterrupt:
        _fail("interrupted")
        return
    finally:
        if bar is not None:
            bar.close()
    rate = result.published / result.seconds if result.seconds > 0 else 0.0
    per_track = ", ".join(f"{t} {n}" for t, n in sorted(result.report.selected.items()))
    click.echo(
        f"replayed {result.published} lines ({per_track}) from {result.first_at} to {result.last_at} "
        f"in {result.seconds:.1f} s ({rate:,.0f}/s) on {address}",
        err=True,
    )
    if result.report.out_of_order:
        click.echo(
            f"{result.report.out_of_order} line(s) were out of time order by more than the reorder window",
            err=True,
        )
    if result.report.bad_lines:
        click.echo(result.report.format(), err=True)


@click.command("tap")
@click.option("--topics", multiple=True, help="topic prefixes, e.g. scalp.,event.gap_marker (default: all)")
@click.option(
    "--replay", "from_replay", is_flag=True, help="tap the replay_feed endpoint instead of the live feed"
)
@click.option("--endpoint", help="tap this address")
@click.option("--counts", is_flag=True, help="per-topic-group messages per second instead of JSON lines")
@click.option("--count", "max_messages", type=int, default=0, help="stop after this many messages")
@click.option(
    "--until-final", is_flag=True, help="stop at the publisher's final feed.stats (end of a replay)"
)
@click.option("--duration", type=float, default=0.0, help="stop after this many seconds")
@click.pass_context
def tap_cmd(
    ctx: click.Context,
    topics: tuple[str, ...],
    from_replay: bool,
    endpoint: str | None,
    counts: bool,
    max_messages: int,
    until_final: bool,
    duration: float,
) -> None:
    """Print what the public feed (or a replay) publishes: JSON lines, or counts per second."""
    from observer.cli import config_of
    from observer.replay.tap import run_tap

    cfg = config_of(ctx)
    address = endpoint or Endpoints(cfg)["replay_feed" if from_replay else "feed"]
    prefixes = sorted(_split(topics))
    run_tap(
        cfg,
        address,
        prefixes,
        counts=counts,
        out=sys.stdout,
        max_messages=max_messages,
        until_final=until_final,
        duration_s=duration,
    )


commands = [replay_cmd, tap_cmd]
