"""Ingest: files, folders and JSON records → cleaned `Article`s (or `IngestFailure`s saying why).

Readers for .txt (BBC layout: title line, body, category from the folder), .html/.htm (hidden
text removed, main text by trafilatura), .json and .jsonl records; page-furniture removal for
scraped plain text; stable, readable article ids.
"""

from rag.ingest.cleaning import clean_text, normalize_text
from rag.ingest.html import html_to_text
from rag.ingest.readers import SUFFIXES, find_files, read_file, read_upload
from rag.ingest.records import article_from_record

__all__ = [
    "SUFFIXES",
    "article_from_record",
    "clean_text",
    "find_files",
    "html_to_text",
    "normalize_text",
    "read_file",
    "read_upload",
]
