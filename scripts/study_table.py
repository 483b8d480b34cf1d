"""Print README "The study"'s table from a study report's metrics.json (docs/results/study_metrics.json, written
by `osrm report` for configs/study.yaml), arms in the config's order: tests/test_readme_verdicts.py checks that README
holds exactly this output. Usage: python scripts/study_table.py [METRICS_JSON] [CONFIG]"""

import json
import sys
from pathlib import Path

import yaml

from osrm_core.report import summary_table


def table(metrics: Path, config: Path) -> str:
    cfg = yaml.safe_load(config.read_text())
    return summary_table(json.loads(metrics.read_text()), list(cfg["arms"]), cfg["reference"])


if __name__ == "__main__":
    args = sys.argv[1:] + ["docs/results/study_metrics.json", "configs/study.yaml"][len(sys.argv) - 1:]
    print(table(Path(args[0]), Path(args[1])))
