"""`evaluate`'s report as terminal tables: the protocol's headline first, then the details."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

PROTOCOL_NOTES = {
    "plain": "pooled over the clip, keyframes excluded",
    "cityscapes": "cityscapesScripts: 19 evaluated classes, other ids ignored, keyframes excluded",
    "davis": "davis2017-evaluation semi-supervised: frames between the first and last ground truth",
}


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:.1f} %"


def report_table(report: dict) -> list[Table]:
    """Summary (headline first), per-class or per-object, by-distance and calibration tables."""
    if report.get("protocol") == "davis":
        return davis_tables(report)
    metric = report["metric"]
    headline = report.get("headline", {"name": metric})["name"]
    summary = Table(title=f"Evaluation, protocol {report.get('protocol', 'plain')}: "
                          f"{PROTOCOL_NOTES[report.get('protocol', 'plain')]}")
    summary.add_column("Measure")
    summary.add_column("Value", justify="right")
    summary.add_row(f"[bold]{headline} (%), the headline[/]", f"[bold]{_number(report['score'])}[/]")
    if report.get("frame_mean_score") is not None:
        summary.add_row(f"{metric}, mean of per-frame scores (%)", _number(report["frame_mean_score"]))
    summary.add_row("boundary F (%)", _number(report["boundary_f"]))
    summary.add_row("ECE", _number(report["ece"], 4))
    summary.add_row("wrong pixels in the least-confident 5 %", _percent(report.get("errors_in_least_confident_5")))
    summary.add_row("frames scored", str(report["frames_scored"]))
    if "keyframes_excluded" in report:
        summary.add_row("keyframes excluded", str(report["keyframes_excluded"]))
    summary.add_row("predictions without ground truth", str(report["skipped_predictions"]))
    if report.get("not_in_keyframes"):
        summary.add_row("classes in no keyframe (IoU 0)", str(len(report["not_in_keyframes"])))
        summary.add_row(f"so {metric} can reach at most (%)", _number(report["max_reachable"]))
    if report.get("format"):
        summary.add_row("format", report["format"])
    for note in report.get("notes", []):
        summary.add_row("note", escape(note))
    tables = [summary]

    names = report.get("class_names", {})
    missing = report.get("not_in_keyframes")
    per_class = Table(title="IoU per object" if metric == "J" else "IoU per class")
    per_class.add_column("Id", justify="right")
    if names:
        per_class.add_column("Class")
    per_class.add_column("IoU (%)", justify="right")
    if missing is not None:
        per_class.add_column("In a keyframe")
    for class_id, iou in report["per_class"].items():
        row = [class_id] + ([names.get(class_id, "")] if names else []) + [_number(iou)]
        if missing is not None:
            row.append("[red]no: caps the score[/]" if int(class_id) in missing else "yes")
        per_class.add_row(*row)
    tables.append(per_class)

    if report["by_distance"]:
        by_distance = Table(title=f"{metric} by distance from the nearest keyframe")
        by_distance.add_column("Frames away", justify="right")
        by_distance.add_column("Frames", justify="right")
        by_distance.add_column(f"{metric} (%)", justify="right")
        frame_counts = report.get("frames_by_distance", {})
        for distance, score in report["by_distance"].items():
            by_distance.add_row(distance, str(frame_counts.get(distance, "")), _number(score))
        tables.append(by_distance)

    if report["calibration"]:
        calibration = Table(title="Calibration (reliability diagram)")
        calibration.add_column("Confidence", justify="right")
        calibration.add_column("Pixels", justify="right")
        calibration.add_column("Mean confidence", justify="right")
        calibration.add_column("Accuracy", justify="right")
        for row in report["calibration"]:
            calibration.add_row(f"{row['lo']:.1f}–{row['hi']:.1f}", str(row["count"]),
                                _number(row["confidence"], 3), _number(row["accuracy"], 3))
        tables.append(calibration)
    return tables


def davis_tables(report: dict) -> list[Table]:
    summary = Table(title=f"Evaluation, protocol davis: {PROTOCOL_NOTES['davis']}")
    summary.add_column("Measure")
    summary.add_column("Value", justify="right")
    summary.add_row("[bold]J&F-Mean (%), the headline[/]", f"[bold]{_number(report['J&F-Mean'])}[/]")
    for measure in ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        summary.add_row(f"{measure} (%)", _number(report[measure]))
    summary.add_row("frames scored", f"{report['frames_scored']} ({report['window'][0]} … {report['window'][1]})")
    summary.add_row("objects", str(report["objects"]))
    summary.add_row("format", report["format"])
    for note in report.get("notes", []):
        summary.add_row("note", escape(note))
    per_object = Table(title="Per object (the official per-sequence rows)")
    for column in ("Object", "J-Mean (%)", "F-Mean (%)", "J-Recall (%)", "J-Decay (%)"):
        per_object.add_column(column, justify="right")
    for obj, row in report["per_object"].items():
        per_object.add_row(obj, *(_number(row[m]) for m in ("J-Mean", "F-Mean", "J-Recall", "J-Decay")))
    return [summary, per_object]
