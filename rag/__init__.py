"""Question answering over news articles, with citations checked against the article text."""
