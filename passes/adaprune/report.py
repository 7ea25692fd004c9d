"""The pruning report: what AdaPruner removed, what it cost, and how the choice was made.

`build_report` collects per-layer channels, MACs and parameters before and after, the channel
groups with their importance and kept counts, the budget search, every criterion's held-out
score, and the accuracies before pruning, after pruning (BN recalibrated) and after
fine-tuning. `write_prune_report` writes it as ``<stem>.json`` and ``<stem>.md`` and, only when
matplotlib is importable (it is not a pqc dependency), ``<stem>.png``: channels per layer.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pqc.ir import Graph
from pqc.quant import LAYER_OPS
from pqc.summary import format_table, summarize

from pqc.passes.adaprune.budget import BudgetResult
from pqc.passes.channel_groups import ChannelDeps

if TYPE_CHECKING:  # pragma: no cover
    from pqc.passes.adaprune import PruneConfig



def layer_rows(before: Graph, after: Graph) -> list[dict[str, Any]]:
    """Per Conv/Gemm layer (matched by node name): input/output channels, MACs and params, before and after."""
    stats = [{layer["name"]: layer for layer in summarize(g)["layers"]} for g in (before, after)]
    rows = []
    for node in before.nodes:
        if node.op not in LAYER_OPS:
            continue
        pruned = after.node(node.name)
        row: dict[str, Any] = {"name": node.name, "op": node.op}
        for key, g, n, s in (("before", before, node, stats[0]), ("after", after, pruned, stats[1])):
            row[key] = {
                "in_channels": int(g.values[n.inputs[0]].shape[1]),
                "out_channels": int(g.values[n.outputs[0]].shape[1]),
                "macs": s[n.name]["macs"],
                "params": s[n.name]["params"],
            }
        rows.append(row)
    return rows


def build_report(
    before: Graph,
    after: Graph,
    deps: ChannelDeps,
    importance: dict[int, float],
    budget: BudgetResult,
    config: "PruneConfig",
    scores: dict[str, float],
    chosen: str,
    accuracies: dict[str, dict[str, float]],
    fine_tune_seconds: float,
    history: list[dict[str, float]],
    *,
    data_name: str,
    eval_name: str | None,
) -> dict[str, Any]:
    """The report as JSON-ready data (see the module doc)."""
    totals = [summarize(g)["totals"] for g in (before, after)]
    return {
        "model": before.name,
        "budget": {
            "flops": config.flops, "t": budget.t, "original_macs": budget.original_macs,
            "budget_macs": budget.budget_macs, "macs": budget.macs, "ratio": budget.ratio,
            "k_min": config.rule.k_min, "c_min": config.rule.c_min, "round_to": config.rule.round_to,
            "uniform": config.uniform,
        },
        "totals": {
            "macs": {"before": totals[0]["macs"], "after": totals[1]["macs"]},
            "params": {"before": totals[0]["params"], "after": totals[1]["params"]},
        },
        "groups": [
            {"id": g.id, "channels": g.size, "kept": budget.counts.get(g.id, g.size), "importance": importance.get(g.id),
             "frozen": g.frozen, "values": g.values}
            for g in deps.groups
        ],
        "criteria": {"scores": scores, "chosen": chosen, "metric": "held-out top-1 after BN recalibration"},
        "accuracy": accuracies,
        "data": {"train": data_name, "val_samples": config.val_samples, "calib_samples": config.calib_samples,
                 "eval": eval_name},
        "fine_tune": {"epochs": config.train.epochs, "lr": config.train.lr, "batch_size": config.train.batch_size,
                      "device": config.train.device, "seconds": round(fine_tune_seconds, 2), "history": history},
        "layers": layer_rows(before, after),
    }


def format_markdown(report: dict[str, Any]) -> str:
    """The report for people: budget, accuracies, criterion scores, per-layer table."""
    b, t = report["budget"], report["totals"]
    lines = [
        f"# Pruning report: {report['model']}",
        "",
        f"MACs {t['macs']['before']:,} -> {t['macs']['after']:,} ({b['ratio']:.4f} of the original; budget "
        f"{b['flops']:g} = {b['budget_macs']:,}), parameters {t['params']['before']:,} -> {t['params']['after']:,}.",
        f"Budget search: t = {b['t']:.6g}, k_min {b['k_min']}, c_min {b['c_min']}, round_to {b['round_to']}"
        + (", uniform width" if b["uniform"] else ", BN importance") + ".",
        "",
        "## Accuracy (top-1)",
        "",
    ]
    acc = report["accuracy"]
    sets = [("val", f"held-out {report['data']['val_samples']} of {report['data']['train']}")]
    if report["data"]["eval"]:
        sets.append(("eval", report["data"]["eval"]))
    lines.append(format_table(
        [[label] + [f"{acc[stage][key]:.4f}" for stage in ("before", "pruned", "fine_tuned")] for key, label in sets],
        ["data", "before pruning", "after pruning", "after fine-tuning"],
    ))
    ft = report["fine_tune"]
    lines += ["", f"Fine-tuning: {ft['epochs']} epoch(s), lr {ft['lr']}, {ft['seconds']} s on {ft['device']}.", "",
              "## Weight-inheritance criteria", "",
              f"Score: {report['criteria']['metric']}; chosen: **{report['criteria']['chosen']}**.", ""]
    lines.append(format_table([[c, f"{s:.4f}"] for c, s in report["criteria"]["scores"].items()], ["criterion", "score"]))
    lines += ["", "## Layers", ""]
    rows = [
        [r["name"], r["op"], f"{r['before']['in_channels']} -> {r['after']['in_channels']}",
         f"{r['before']['out_channels']} -> {r['after']['out_channels']}",
         f"{r['before']['macs']:,}", f"{r['after']['macs']:,}", f"{r['before']['params']:,}", f"{r['after']['params']:,}"]
        for r in report["layers"]
    ]
    lines.append(format_table(rows, ["layer", "op", "in ch", "out ch", "MACs before", "MACs after", "params before",
                                     "params after"]))
    return "\n".join(lines) + "\n"


def report_paths(stem: str | Path) -> dict[str, Path]:
    """The files `write_prune_report` may write for ``stem``, by kind (json, md, png)."""
    stem = Path(stem)
    return {kind: stem.with_name(f"{stem.name}.{kind}") for kind in ("json", "md", "png")}


def write_prune_report(report: dict[str, Any], stem: str | Path) -> tuple[list[Path], str | None]:
    """Write ``<stem>.json``, ``<stem>.md`` and, with matplotlib, ``<stem>.png``.

    Returns the files written and a note when the plot was skipped.
    """
    paths = report_paths(stem)
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(format_markdown(report))
    written = [paths["json"], paths["md"]]
    if importlib.util.find_spec("matplotlib") is None:
        return written, "channel plot skipped: matplotlib is not installed (it is not a pqc dependency)"
    written.append(_plot_channels(report, paths["png"]))
    return written, None


def _plot_channels(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    xs = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(layers)), 4))
    ax.bar([x - 0.2 for x in xs], [r["before"]["out_channels"] for r in layers], width=0.4, label="before")
    ax.bar([x + 0.2 for x in xs], [r["after"]["out_channels"] for r in layers], width=0.4, label="after")
    ax.set_xticks(list(xs), [str(i) for i in xs])
    ax.set_xlabel("layer (Conv/Gemm, in graph order)")
    ax.set_ylabel("output channels")
    ax.set_title(f"{report['model']}: {report['budget']['ratio']:.3f} of the MACs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
