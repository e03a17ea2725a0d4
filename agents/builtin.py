"""The agent types this app ships, by type name: every kernel knows them, with no install step.

A Functions deployment installs `requirements.txt` and copies the app's files; this repository is never
pip-installed there, so it has no package metadata and no entry points of its own. The types that live in
`agents/` are therefore named here, in code. Entry points (`aos.agents`) stay the way a separately installed
plugin package adds types.
"""

from __future__ import annotations

# Import paths, not classes: importing `agents` stays cheap, and the kernel loads them when it starts.
BUILTIN_TYPES: dict[str, str] = {
    "tally": "agents.tally:TallyAgent",
    "ceo": "agents.business.ceo:CEOAgent",
    "cfo": "agents.business.cfo:CFOAgent",
    "cto": "agents.business.cto:CTOAgent",
}
