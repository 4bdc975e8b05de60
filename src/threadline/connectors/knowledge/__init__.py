"""Knowledge connectors: help-center articles and documentation beside the conversations.

They follow the conversation connectors' contract (`threadline.connectors.base.Connector`,
registered under `threadline.connectors`) with their own record type, `ArticleRecord`, and
their own sink (`sink.KnowledgeSink`): articles upserted by content hash, split at headings
into passages, embedded with the conversation embedder and stored with pgvector.

Modules:
- `common`   what a knowledge sync sees of its sink, and the report it returns
- `sink`     PostgreSQL sink: hashes, passages, vectors, removals, dead letters, the HNSW index
- `sources`  add / list / sync knowledge sources (the one code path of the CLI)
- `folder`   a folder of Markdown and HTML files
- `html`     HTML -> Markdown main text (trafilatura)
- `site`     a documentation site crawled from its sitemap or a start URL
"""
