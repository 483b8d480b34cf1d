"""What a task is (``spec``: text fields, labels, metric, or a prompt and target), how a row becomes a prompt
(``prompt``) and how each kind of task trains and scores (``kinds``). Where tasks come from — suite files,
own data, packaged text, GLUE — is the pipeline's: ``osrm_pipeline.suites``."""
