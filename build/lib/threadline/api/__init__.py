"""The JSON API under /api: routers (one module per resource) and their schemas; `threadline.app` mounts them."""
