"""Build-time tools of the repository (never part of the deployed app: `.funcignore` keeps them out)."""
