"""Briefing notes over every article that matches a topic and the filters: the records
(`types`), the extractive steps (`select`), LLM map-reduce with checked citations (`llm`),
Markdown (`render`), and the `Briefer` that runs them in order (`briefer`)."""
