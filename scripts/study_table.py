"""Print README "The study"'s table from a study report's metrics.json (docs/results/study_metrics.json, written
by `osrm report` for configs/study.yaml), arms in the config's order: tests/test_readme_verdicts.py checks that README
holds exactly this output. Usage: python scripts/study_table.py [METRICS_JSON] [CONFIG]"""

import json
import sys
from pathlib import Path

from osrm_core.report import summary_table
from osrm_pipeline.pipeline_config import load_config


def table(metrics: Path, config: Path) -> str:
    cfg = load_config(config)  # arms in the config's order, those under `derived` after them
    return summary_table(json.loads(metrics.read_text()), list(cfg.arms), cfg.reference)


if __name__ == "__main__":
    args = sys.argv[1:] + ["docs/results/study_metrics.json", "configs/study.yaml"][len(sys.argv) - 1:]
    print(table(Path(args[0]), Path(args[1])))
