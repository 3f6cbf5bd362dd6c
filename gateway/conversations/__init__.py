"""What a request sends: which arena thread it continues, the transcript of its turns, and the
images it carries."""
