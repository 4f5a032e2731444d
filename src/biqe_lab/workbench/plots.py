"""Matplotlib figures of an evaluation: CER per page, raw vs corrected per page, character confusions, CER vs confidence."""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _empty(message: str, title: str) -> Figure:
    fig = Figure(figsize=(7, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#555", transform=ax.transAxes)
    return fig


def cer_per_page(pages: pd.DataFrame, column: str = "CER") -> Figure:
    """Horizontal bars, one per page (coloured by dataset and tier), with the corpus CER of each as a line."""
    title = f"{column} per page"
    if not len(pages):
        return _empty("no page was evaluated", title)
    groups = list(dict.fromkeys(zip(pages["dataset"], pages["tier"])))
    label_of = {g: (g[0] if len({t for _, t in groups}) == 1 else f"{g[0]} · {g[1]}") for g in groups}
    height = min(14.0, 1.9 + 0.32 * len(pages) + 0.15 * len(groups))
    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(len(pages)))[::-1]
    colors = [PALETTE[groups.index((d, t)) % len(PALETTE)] for d, t in zip(pages["dataset"], pages["tier"])]
    bars = ax.barh(ys, pages[column], color=colors)
    ax.set_yticks(ys, [p if len(p) <= 34 else p[:32] + "…" for p in pages["page"]], fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    top = max(1.0, float(pages[column].max()) * 1.15)
    ax.set_xlim(0, top)
    for bar, value in zip(bars, pages[column]):
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, f"{value:.1%}",
                va="center", fontsize=8)
    for g in groups:
        sel = pages[(pages["dataset"] == g[0]) & (pages["tier"] == g[1])]
        errors = sel["char_errors"] if column == "CER" else sel[column] * sel["ref_chars"]
        total = float(errors.sum() / sel["ref_chars"].sum()) if sel["ref_chars"].sum() else 0.0
        ax.axvline(total, color=PALETTE[groups.index(g) % len(PALETTE)], ls="--", lw=1,
                   label=f"{label_of[g]}: {total:.1%} over {int(sel['ref_chars'].sum())} chars")
    fig.legend(loc="outside lower center", fontsize=8, title="corpus CER (dashed line)", title_fontsize=8,
               ncols=min(2, len(groups)), frameon=False)
    ax.set_xlabel("character error rate (errors / reference characters, NFC)")
    ax.set_title(title, loc="left")
    return fig


def _confusion_panel(ax, confusions: pd.DataFrame, title: str) -> None:
    if not len(confusions):
        ax.set_axis_off()
        ax.text(0.5, 0.5, "none", ha="center", va="center", color="#555", transform=ax.transAxes)
        ax.set_title(title, loc="left", fontsize=10)
        return
    ys = list(range(len(confusions)))[::-1]
    kinds = [KIND_COLORS[_kind(a, b)] for a, b in zip(confusions["reference"], confusions["recognized"])]
    ax.barh(ys, confusions["count"], color=kinds)
    ax.set_yticks(ys, [f"{a}  →  {b}" for a, b in zip(confusions["reference"], confusions["recognized"])],
                  fontsize=10)
    for y, n, share in zip(ys, confusions["count"], confusions["share of errors"]):
        ax.text(n, y, f" {n} ({share:.1%})", va="center", fontsize=8)
    ax.set_xlim(0, confusions["count"].max() * 1.3)
    ax.set_xlabel("count")
    ax.set_title(title, loc="left", fontsize=10)


KIND_COLORS = {"substituted": "#ff7f0e", "deleted": "#d62728", "inserted": "#2ca02c"}


def _kind(reference: str, recognized: str) -> str:
    return "deleted" if recognized == "∅" else "inserted" if reference == "∅" else "substituted"


def confusion_bars(confusions: pd.DataFrame, substitutions: Optional[pd.DataFrame] = None) -> Figure:
    """The most frequent character errors as bars ('reference → recognized'; ∅: missing, ␣: space).

    With ``substitutions`` (the most frequent substitutions alone) a second panel shows them, as
    deletions often crowd them out of the first.
    """
    title = "most frequent character errors"
    if not len(confusions):
        return _empty("no character error", title)
    rows = max(len(confusions), len(substitutions) if substitutions is not None else 0)
    panels = 1 if substitutions is None else 2
    fig = Figure(figsize=(6 * panels, 1.6 + 0.3 * rows), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _confusion_panel(axes[0], confusions, "all errors (share of all character errors)")
    if substitutions is not None:
        _confusion_panel(axes[1], substitutions, "substitutions only (share of all character errors)")
    present = {_kind(a, b) for a, b in zip(confusions["reference"], confusions["recognized"])}
    if substitutions is not None and len(substitutions):
        present.add("substituted")
    fig.legend(handles=[Patch(color=c, label=k) for k, c in KIND_COLORS.items() if k in present],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle(f"{title}: reference → recognized (∅ = nothing, ␣ = space)", x=0.01, ha="left", fontsize=11)
    return fig


def cer_vs_confidence(lines: pd.DataFrame, bins: int = 5) -> Figure:
    """Line CER against the engine's line confidence, with the corpus CER of each confidence bin."""
    title = "line CER vs recognizer confidence"
    data = lines.dropna(subset=["confidence", "CER"]) if len(lines) else lines
    if not len(data):
        return _empty("the engine reported no line confidences", title)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    capped = data["CER"].clip(upper=1.0)
    ax.scatter(data["confidence"], capped, s=12 + data["ref_chars"].clip(upper=80) / 2, alpha=0.45,
               color="#1f77b4", label="one line (size: its length)")
    edges = [i / bins for i in range(bins + 1)]
    centers, rates, counts = [], [], []
    for lo, hi in zip(edges, edges[1:]):
        sel = data[(data["confidence"] >= lo) & ((data["confidence"] < hi) | (hi == 1.0))]
        if sel["ref_chars"].sum():
            centers.append((lo + hi) / 2)
            rates.append(min(1.0, sel["char_errors"].sum() / sel["ref_chars"].sum()))
            counts.append(len(sel))
    ax.plot(centers, rates, "o-", color="#d62728", label=f"corpus CER of each {1 / bins:.0%} confidence bin")
    for x, y, n in zip(centers, rates, counts):
        ax.annotate(f"{n} line{'s' if n > 1 else ''}", (x, y), textcoords="offset points", xytext=(6, 6),
                    fontsize=8, color="#d62728")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("line confidence reported by the recognizer")
    ax.set_ylabel("line CER (capped at 100%)")
    corr = data["confidence"].corr(data["CER"]) if len(data) > 2 else float("nan")
    ax.set_title(title + (f" (Pearson r = {corr:.2f}, {len(data)} lines)" if not math.isnan(corr) else ""),
                 loc="left")
    ax.legend(fontsize=8, loc="upper right")
    return fig


def raw_vs_corrected(pages: pd.DataFrame) -> Figure:
    """Per page, the CER of the raw recognition beside the CER after correction (paired bars)."""
    title = "CER per page: raw recognition vs after correction"
    if not len(pages):
        return _empty("no ground truth: nothing to score", title)
    if "CER corrected" not in pages or pages["CER corrected"].isna().all():
        return _empty("no correction ran: only the raw recognition was scored", title)
    return paired_cer(pages, "CER", "CER corrected", ("raw recognition (htr)", "after correction"), title)


def paired_cer(pages: pd.DataFrame, before: str, after: str, labels: tuple[str, str], title: str) -> Figure:
    """Per page (column ``page``), two CERs side by side with the change written beside them."""
    if not len(pages):
        return _empty("no page was scored", title)
    names = [p if len(p) <= 30 else p[:28] + "…" for p in pages["page"]]
    height = min(14.0, 1.8 + 0.45 * len(pages))
    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(len(pages)))[::-1]
    a_values, b_values = pages[before].astype(float), pages[after].astype(float)
    ax.barh([y + 0.2 for y in ys], a_values, height=0.4, color="#7f7f7f", label=labels[0])
    ax.barh([y - 0.2 for y in ys], b_values, height=0.4, color="#2ca02c", label=labels[1])
    top = max(0.05, float(max(a_values.max(), b_values.max())) * 1.35)
    for y, a, b in zip(ys, a_values, b_values):
        delta = b - a
        ax.text(max(a, b) + top * 0.01, y, f"{a:.1%} → {b:.1%} ({delta:+.1%})", va="center", fontsize=8,
                color="#060" if delta < 0 else ("#a00" if delta > 0 else "#555"))
    ax.set_yticks(ys, names, fontsize=8)
    ax.set_xlim(0, top)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("character error rate (NFC, corpus totals per page)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, loc="left")
    return fig
