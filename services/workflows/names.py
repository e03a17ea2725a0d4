"""The names of the workflow orchestrator and its activity, importable without loading the workflow code
(the app indexes its Functions by these names before any workflow runs)."""

ORCHESTRATOR = "aos_workflow"
ACTIVITY = "aos_workflow_step"
