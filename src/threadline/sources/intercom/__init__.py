"""Intercom connector: thin async client, date-range backfill and incremental sync.

Modules, one job each:
- `client`    async httpx client (auth, regions, version pin, retries) for the endpoints we use
- `ratelimit` pacing from Intercom's 10-second-window rate-limit headers
- `mapping`   Intercom payloads -> `threadline.sources.records` dataclasses
- `sync`      watermark/overlap sync loop writing through a `SyncSink`
- `sinks`     in-memory sink (tests, benchmark); `pgsink`: PostgreSQL sink (store + sync state)
- `contract`  openapi-core validation against Intercom's published 2.16 description (tests)
- `standin`   local ASGI stand-in of the Intercom API for tests and benchmarks
- `cli`       Typer sub-app (`sources add intercom`, `sync`) and `sync_source()` for runs
"""
