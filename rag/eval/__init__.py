"""Measuring answer quality: SQuAD 2.0 scoring as the official script computes it (`squad`), and
the runner that asks every question through the service and scores it (`runner`)."""
