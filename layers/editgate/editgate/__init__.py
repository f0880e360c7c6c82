"""editgate: OpenAI-compatible image edits on fal, deployed into your own AWS account."""

# The one place the version is written: pyproject.toml reads it, and so do the API's answers
# (the OpenAPI document, GET /v1/health), which cannot read package metadata in Lambda's layer.
__version__ = "0.1.0"
