"""`osrm submit`'s SLURM orchestration, beside `stages/` (docs/slurm.md): render (sbatch scripts, pure), dag (DVC
stages -> SLURM jobs, pure), dvc (reads the DVC pipeline), submit (what `osrm submit` submits, from the config) and
jobs (the only module that calls sbatch/squeue). It reads the pipeline's config; osrm_core never imports it."""
