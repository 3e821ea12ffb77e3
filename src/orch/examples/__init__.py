"""Small handler modules used by the example assistants and pipelines in this repository."""
