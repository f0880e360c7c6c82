"""editgate: OpenAI-compatible image edits on fal, deployed into your own AWS account."""
