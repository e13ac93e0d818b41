"""The offline extractive reader: what the question asks (`questions`), where an answer can come
from (`candidates`), the numbers a decision reads (`features`), learned linear scorers over them
(`model`, fitted by `training`), and the answerer that puts them together (`answerer`)."""
