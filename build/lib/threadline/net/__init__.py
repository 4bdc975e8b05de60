"""Outbound network plumbing shared by every HTTP client (connectors, LLM, exporters); imports no higher layer."""
