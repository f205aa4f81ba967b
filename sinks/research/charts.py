"""PNG charts of a `DayStats` (matplotlib, Agg backend: no display needed). Each function writes
one file and returns its path; an empty series gives a chart that says so, never a missing file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from observer.clock import KST
from sinks.research.daystats import TRACK_A_TARGET, TRACK_B_TARGET, DayStats

_DPI = 100


def _figure(height: float = 3.2) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(10, height), dpi=_DPI)
    return fig, ax


def _time_axis(ax: plt.Axes) -> None:
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=KST, maxticks=10))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=KST))


def _x(times: list[datetime]) -> list[float]:
    """Matplotlib date numbers (what the date formatter of `_time_axis` reads)."""
    return [float(mdates.date2num(t)) for t in times]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} this day", ha="center", va="center", transform=ax.transAxes, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


def track_a(stats: DayStats, path: Path) -> Path:
    fig, ax = _figure()
    if stats.sweeps:
        labels = [s.sweep_id[-4:-2] + ":" + s.sweep_id[-2:] for s in stats.sweeps]
        rates = [s.rate * 100 for s in stats.sweeps]
        colors = ["#2a9d8f" if s.rate >= TRACK_A_TARGET else "#e76f51" for s in stats.sweeps]
        ax.bar(labels, rates, color=colors)
        ax.axhline(TRACK_A_TARGET * 100, color="black", linestyle="--", linewidth=1, label="target 99.5 %")
        ax.set_ylim(min(95.0, min(rates) - 1), 100.5)
        ax.set_ylabel("% of universe")
        ax.legend(loc="lower right")
    else:
        _empty(ax, "Track A sweeps")
    ax.set_title("Track A: coverage per sweep")
    return _save(fig, path)


def track_b_rate(stats: DayStats, path: Path) -> Path:
    """Samples per second, gap markers shaded: also the chart of the Telegram summary."""
    fig, ax = _figure()
    if stats.per_second:
        ax.plot(_x([t for t, _ in stats.per_second]), [n for _, n in stats.per_second], linewidth=0.8)
        for g in stats.gaps:
            start, end = _x([g["start"], max(g["end"], g["start"])])
            ax.axvspan(start, end, color="#e76f51", alpha=0.3)
        ax.set_ylabel("samples / s")
        _time_axis(ax)
    else:
        _empty(ax, "Track B samples")
    ax.set_title("Track B: samples per second (gap markers shaded)")
    return _save(fig, path)


def track_b_heatmap(stats: DayStats, path: Path) -> Path:
    fig, ax = _figure(max(3.2, 0.12 * len(stats.slot_minutes) + 1.5))
    minutes = sorted({m for cells in stats.slot_minutes.values() for m in cells})
    if minutes:
        slots = list(stats.slot_minutes)
        grid = [
            [
                (w / e * 100 if e else float("nan")) if (w, e) != (0, 0) else float("nan")
                for w, e in (stats.slot_minutes[s].get(m, (0, 0)) for m in minutes)
            ]
            for s in slots
        ]
        image = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=90, vmax=100, interpolation="nearest")
        fig.colorbar(image, ax=ax, label="% of expected (target 97 %)")
        step = max(1, len(minutes) // 12)
        ax.set_xticks(
            range(0, len(minutes), step), [minutes[i].strftime("%H:%M") for i in range(0, len(minutes), step)]
        )
        ax.set_yticks(
            range(0, len(slots), max(1, len(slots) // 10)),
            [str(slots[i]) for i in range(0, len(slots), max(1, len(slots) // 10))],
        )
        ax.set_ylabel("slot")
        for y, row in enumerate(grid):
            for x, value in enumerate(row):
                if value == value and value < TRACK_B_TARGET * 100:
                    ax.text(x, y, "x", ha="center", va="center", fontsize=6)
    else:
        _empty(ax, "Track B samples")
    ax.set_title("Track B: samples recorded per slot and minute (x: below 97 %)")
    return _save(fig, path)


def gap_timeline(stats: DayStats, path: Path) -> Path:
    fig, ax = _figure(max(2.4, 0.35 * len(stats.gaps) + 1.5))
    if stats.gaps:
        for y, g in enumerate(stats.gaps):
            width = max((g["end"] - g["start"]).total_seconds(), 1.0) / 86400
            ax.barh(y, width, left=mdates.date2num(g["start"]), color="#e76f51")
        ax.set_yticks(
            range(len(stats.gaps)),
            [f"{g['track']} {g['reason']} ({g['detected_by']}, {len(g['symbols'])} sym)" for g in stats.gaps],
            fontsize=7,
        )
        ax.xaxis_date(KST)
        _time_axis(ax)
    else:
        _empty(ax, "gap markers")
    ax.set_title("Gap markers (start - end, cause)")
    return _save(fig, path)


def latency(stats: DayStats, path: Path) -> Path:
    fig, ax = _figure()
    rows = [m for m in stats.metrics if m["latency_p50_ms"] is not None]
    if rows:
        at = _x([m["at"] for m in rows])
        ax.plot(at, [m["latency_p50_ms"] for m in rows], marker=".", label="p50")
        ax.plot(at, [m["latency_p99_ms"] for m in rows], marker=".", label="p99")
        ax.set_ylabel("receive -> fsync, ms")
        ax.legend()
        _time_axis(ax)
    else:
        _empty(ax, "latency figures")
    ax.set_title("Event lag, receive -> fsync (5-minute metrics)")
    return _save(fig, path)


def system(stats: DayStats, path: Path) -> Path:
    fig, ax = _figure()
    if stats.metrics:
        at = _x([m["at"] for m in stats.metrics])
        for key, label in (
            ("cpu_usage_percent", "CPU %"),
            ("memory_usage_percent", "memory %"),
            ("disk_usage_percent", "disk %"),
        ):
            ax.plot(at, [m[key] for m in stats.metrics], marker=".", label=label)
        ax.set_ylim(0, 105)
        level = ax.twinx()
        level.step(
            at, [m["mitigation_level"] for m in stats.metrics], where="post", color="black", label="level"
        )
        level.set_ylim(-0.2, 2.2)
        level.set_yticks([0, 1, 2])
        level.set_ylabel("mitigation level")
        ax.legend(loc="upper left")
        _time_axis(ax)
    else:
        _empty(ax, "metrics")
    ax.set_title("CPU, memory, disk and mitigation level")
    return _save(fig, path)


CHARTS = {
    "track_a.png": track_a,
    "track_b_rate.png": track_b_rate,
    "track_b_heatmap.png": track_b_heatmap,
    "gaps.png": gap_timeline,
    "latency.png": latency,
    "system.png": system,
}
SUMMARY_CHART = "track_b_rate.png"
