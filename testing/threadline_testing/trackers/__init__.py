"""Stand-ins of the issue trackers Threadline exports to (GitHub Issues, Jira Cloud, Linear).

Each is an ASGI app speaking the vendor's real protocol, checked in tests against the vendor's
published description (`threadline_testing.trackers.specs`): `github.create_app`,
`jira.create_app`, `linear.create_app`.
"""
