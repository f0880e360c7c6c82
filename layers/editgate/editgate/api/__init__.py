"""The HTTP edge: routes, bodies, OpenAI's shapes, the OpenAPI document and the pages."""
