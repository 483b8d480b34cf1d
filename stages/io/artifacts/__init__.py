"""One typed class per artifact kind. Each owns its path (through `Layout`), its manifest (a pydantic
model, schema-versioned), `open(run, ...)` with the single compatibility check of that kind, and `seal`
(the manifest, written last into a folder that `atomic_dir` renames into place)."""

from stages.io.artifacts.adapter import TaskAdapter
from stages.io.artifacts.evaluation import Evaluation
from stages.io.artifacts.exported import Exported
from stages.io.artifacts.features import Features
from stages.io.artifacts.merged import Merged
from stages.io.artifacts.outputs import Converted, Diagnostics, DiagnosticsSummary, Folded, Report, Selection
from stages.io.artifacts.subspace import Subspace

# stage name -> artifact kind (what wrote a manifest)
KINDS = {k.Manifest.STAGE: k for k in (Converted, Diagnostics, DiagnosticsSummary, Evaluation, Exported, Features, Folded, Merged,
                                       Report, Selection, Subspace, TaskAdapter)}

__all__ = ["KINDS", "Converted", "Diagnostics", "DiagnosticsSummary", "Evaluation", "Exported", "Features", "Folded", "Merged", "Report",
           "Selection", "Subspace", "TaskAdapter"]
