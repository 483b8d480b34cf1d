"""Regenerate configs/starter/dvc.yaml (what `osrm init` writes) from the repository's dvc.yaml, without its
dependencies on this repository's source files. Run from the repository root after changing dvc.yaml;
tests/test_install.py fails while the two disagree."""

from pathlib import Path

from stages.init import render_dvc

if __name__ == "__main__":
    (Path("configs") / "starter" / "dvc.yaml").write_text(render_dvc(Path("dvc.yaml")))
