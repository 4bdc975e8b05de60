"""Intercom connector: thin async client, date-range backfill and incremental sync.

Modules, one job each:
- `client`   async httpx client (auth, regions, pacing, retries) for the few endpoints we use
- `ratelimit` pacing from Intercom's 10-second-window headers
- `mapping`  Intercom payloads -> `threadline.sources.records` dataclasses
- `sync`     watermark/overlap sync loop writing through a `SyncSink`
- `contract` openapi-core validation of traffic against Intercom's published 2.16 description
- `standin`  local ASGI stand-in of the Intercom API for tests and benchmarks
- `cli`      Typer sub-app (`sources add intercom`, `sync`)
"""
