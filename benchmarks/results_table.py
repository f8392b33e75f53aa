"""Rebuild the results table in README.md from the JSON files in benchmarks/results/.

python benchmarks/results_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
HEADER = [
    "| benchmark | data | result | speed | machine | date |",
    "| --- | --- | --- | --- | --- | --- |",
]
DATA_NOTES = {
    "mnist": "binarized MNIST, 9k/1k subset (`mnist_10k.npz`)",
    "shapes": "binary shapes 20x20, 10k/2k",
}


def pixelcnn_quality_row(record: dict) -> str:
    epochs = record["epochs"]
    result = f"test {record['final_test_nats_per_dim']:.4f} nats/dim after {len(epochs)} epochs"
    if record.get("course_reference_nats_per_dim"):
        result += f" (course: {record['course_reference_nats_per_dim']} on 60k after 10)"
    speed = f"{record['median_train_images_per_second']:.0f} train images/s (median of epochs)"
    return row(record, "PixelCNN course net", DATA_NOTES[record["dataset"]], result, speed)


def row(record: dict, name: str, data: str, result: str, speed: str) -> str:
    machine = record["machine"]
    where = f"{machine['device']}, {machine['cpu_cores']} cores ({machine['cpu']})"
    return f"| {name} | {data} | {result} | {speed} | {where} | {record['date'][:10]} |"


ROWS = {"pixelcnn_quality": pixelcnn_quality_row}


def table() -> str:
    lines = list(HEADER)
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        record = json.loads(path.read_text())
        family = record["benchmark"].rsplit("_", 1)[0]
        lines.append(ROWS[family](record))
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    readme.write_text(f"{before}{START}\n{table()}\n{END}{after}")


if __name__ == "__main__":
    main()
