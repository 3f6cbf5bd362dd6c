"""OpenAI's chat completions, models and image generations."""
