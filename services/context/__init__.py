"""Agent context: the storage-backed ContextMCPServer."""

from services.context.server import ContextMCPServer, merge_patch

__all__ = ["ContextMCPServer", "merge_patch"]
